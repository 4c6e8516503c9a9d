import { mkdtemp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { openLocalSource } from './local-source.js';

let base: string;
let root: string;
const url = (p: string) => pathToFileURL(p).href;

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'ferry-local-'));
  root = path.join(base, 'root');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await writeFile(path.join(root, 'sub', 'a.bin'), 'inside');
  await writeFile(path.join(base, 'secret.txt'), 'outside');
  await symlink(path.join(base, 'secret.txt'), path.join(root, 'link-out'));
  await symlink(path.join(root, 'sub', 'a.bin'), path.join(root, 'link-in'));
});

describe('file:// sources under --local-source-root', () => {
  it('reads a file inside the root, through a link that stays inside too', async () => {
    for (const p of [path.join(root, 'sub', 'a.bin'), path.join(root, 'link-in')]) {
      const f = await openLocalSource(url(p), root);
      expect(f.size).toBe(6);
      f.body.destroy();
    }
  });

  it.each([
    ['a file outside', () => path.join(base, 'secret.txt'), 'BLOCKED_PATH'],
    ['a ../ escape', () => path.join(root, 'sub', '..', '..', 'secret.txt'), 'BLOCKED_PATH'],
    ['a link out of the root', () => path.join(root, 'link-out'), 'BLOCKED_PATH'],
    ['a missing file outside', () => '/nonexistent/x', 'BLOCKED_PATH'],
    ['a missing file inside', () => path.join(root, 'none.bin'), 'NOT_FOUND'],
    ['the root itself', () => root, 'BLOCKED_PATH'],
    ['a folder inside', () => path.join(root, 'sub'), 'NOT_FOUND'],
  ])('refuses %s', async (_what, p, code) => {
    await expect(openLocalSource(url(p()), root)).rejects.toMatchObject({ code });
  });

  it('refuses what is not a file URL', async () => {
    await expect(openLocalSource('file://host/x', root)).rejects.toMatchObject({ code: 'BAD_URL' });
  });
});
