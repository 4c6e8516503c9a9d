import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalSourceError, openLocalSource } from './local-source.js';

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

  it('never reads outside when a folder on the path is swapped for a link out between the check and the open', async () => {
    // root/d is, in turn, a real folder and a link to a folder outside holding a file of the same name.
    const swap = path.join(base, 'swap');
    await mkdir(path.join(swap, 'root', 'd'), { recursive: true });
    await mkdir(path.join(swap, 'outside'));
    await writeFile(path.join(swap, 'root', 'd', 'f.bin'), 'inside');
    await writeFile(path.join(swap, 'outside', 'f.bin'), 'OUTSIDE');
    await symlink(path.join(swap, 'outside'), path.join(swap, 'root', 'e'));
    const r = (n: string) => path.join(swap, 'root', n);
    const swapper = spawn(process.execPath, ['-e', `const fs = require('node:fs'); process.stdout.write('go'); for (;;) { fs.renameSync(${JSON.stringify(r('e'))}, ${JSON.stringify(r('t'))}); fs.renameSync(${JSON.stringify(r('d'))}, ${JSON.stringify(r('e'))}); fs.renameSync(${JSON.stringify(r('t'))}, ${JSON.stringify(r('d'))}); }`], { stdio: ['ignore', 'pipe', 'ignore'] });
    await once(swapper.stdout!, 'data'); // swapping from now on
    const seen = { inside: 0, outside: 0, refused: 0 };
    try {
      for (let round = 0; round < 300; round++) {
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            try {
              const f = await openLocalSource(url(r('d/f.bin')), r(''));
              const chunks: Buffer[] = [];
              for await (const c of f.body) chunks.push(c as Buffer);
              seen[Buffer.concat(chunks).toString() === 'inside' ? 'inside' : 'outside']++;
            } catch (e) {
              if (!(e instanceof LocalSourceError)) throw e;
              seen.refused++;
            }
          }),
        );
      }
    } finally {
      swapper.kill();
      await once(swapper, 'exit');
    }
    expect(seen.outside).toBe(0);
    expect(seen.inside).toBeGreaterThan(0);
  }, 60_000);
});
