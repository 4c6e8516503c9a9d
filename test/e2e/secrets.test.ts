/**
 * Secrets never leak: URL userinfo and signing parameters in manifests appear in no log
 * line, event, journal, ledger or manifest.json — only in the user's own Parquet column
 * and in the work dir's task list (0600, deleted with the journal), as DESIGN.md says.
 */
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, ferry, ferrySpawn, startOrigin } from '../helpers/run.js';

const SECRETS = ['s3cretPW', 'SIGSECRET123', 'AKIDSECRET9', 'TOKSECRET77', 'SASsigSECRET'];
let dir: string;
let origin: Origin;

async function allFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

function leaks(text: string): string[] {
  return SECRETS.filter((s) => text.includes(s));
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-secrets-'));
  await fs.mkdir(path.join(dir, 'origin'));
  await fs.mkdir(path.join(dir, 'manifests'));
  await fs.writeFile(path.join(dir, 'origin', 'a.png'), await sharp({ create: { width: 40, height: 40, channels: 3, background: 'red' } }).png().toBuffer());
  origin = await startOrigin(path.join(dir, 'origin'));
  const host = new URL(origin.url).host;
  const urls = [
    `http://user:s3cretPW@${host}/file/s1/a.png`,
    `http://${host}/file/s2/a.png?X-Amz-Signature=SIGSECRET123&X-Amz-Credential=AKIDSECRET9&X-Amz-Security-Token=TOKSECRET77`,
    `http://user:s3cretPW@${host}/status/404/s3?sig=SASsigSECRET`,
    `http://${host}/status/500/s4?token=TOKSECRET77&X-Amz-Signature=SIGSECRET123`,
    `http://${host}/file/s5/a.png?delay=400&access_token=TOKSECRET77`,
  ];
  const db = await duck();
  const values = urls.map((u, i) => `(${lit(`id${i}`)}, ${lit(u)})`).join(',');
  await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path)) TO '${path.join(dir, 'manifests', 'm.parquet')}' (FORMAT parquet)`);
  db.close();
}, 60_000);

afterAll(async () => {
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

const args = () => ['compile', path.join(dir, 'manifests'), '--dest', path.join(dir, 'objects'), '--out', path.join(dir, 'out'), '--work-dir', path.join(dir, 'work'), '--allow-private-network', '--retries', '1', '--progress', 'plain'];

describe('secrets in manifest URLs', () => {
  it('appear in no event journal, even mid-run', async () => {
    const child = ferrySpawn(args());
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    // The slow row keeps the unit open: read the journal while it is being written.
    let journal = '';
    for (let i = 0; i < 100 && !journal.includes('DL_ERR'); i++) {
      await new Promise((r) => setTimeout(r, 30));
      for (const f of await allFiles(path.join(dir, 'work'))) if (f.endsWith('.events')) journal = await fs.readFile(f, 'utf8');
    }
    expect(journal).toContain('DL_ERR');
    expect(leaks(journal)).toEqual([]);
    const tasks = (await allFiles(path.join(dir, 'work'))).find((f) => f.endsWith('.tasks.tsv'));
    if (tasks) expect((await fs.stat(tasks)).mode & 0o777).toBe(0o600);
    const [code] = (await once(child, 'exit')) as [number];
    expect(code, stderr).toBe(0);
    expect(leaks(stderr)).toEqual([]);
  }, 60_000);

  it('appear in no ledger, manifest.json, log line or leftover file', async () => {
    const ledger = await fs.readFile(path.join(dir, 'out', 'm.ledger.tsv'), 'utf8');
    expect(ledger).toContain('REDACTED');
    expect(ledger).toContain('id2\tNOT_FOUND');
    for (const f of await allFiles(path.join(dir, 'out'))) if (!f.endsWith('.parquet')) expect(leaks(await fs.readFile(f, 'utf8')), f).toEqual([]);
    expect(await allFiles(path.join(dir, 'work'))).toEqual([]);
    const r = await ferry([...args(), '--force']);
    expect(r.code).toBe(0);
    expect(leaks(r.stdout + r.stderr)).toEqual([]);
  }, 60_000);

  it('the standalone worker redacts its event details too', async () => {
    const host = new URL(origin.url).host;
    const tasks = `x\thttp://u:s3cretPW@${host}/status/403/w?X-Amz-Signature=SIGSECRET123\n`;
    const r = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, 'w'), '--allow-private-network'], { input: tasks });
    expect(r.stdout).toContain('FORBIDDEN');
    expect(leaks(r.stdout + r.stderr)).toEqual([]);
  });
});
