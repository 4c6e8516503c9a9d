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

describe('--origin-header values', () => {
  it('reach their origin from the command line or FERRY_ORIGIN_HEADERS, and never a worker command line that ps shows', async () => {
    const host = new URL(origin.url).host;
    const m = path.join(dir, 'hdr-manifests');
    await fs.mkdir(m);
    const db = await duck();
    await db.run(`COPY (SELECT * FROM (VALUES ('slow', ${lit(`${origin.url}/stall-headers/h1?ms=1500`)}), ('echo', ${lit(`${origin.url}/echo-headers/h2`)})) t(id, media_path)) TO '${path.join(m, 'h.parquet')}' (FORMAT parquet)`);
    db.close();
    const child = ferrySpawn(['compile', m, '--dest', path.join(dir, 'hdr-objects'), '--out', path.join(dir, 'hdr-out'), '--work-dir', path.join(dir, 'work'), '--allow-private-network', '--profile', 'any', '--progress', 'none', '--origin-header', `${host}=X-Flag-Token: HDRFLAGSECRET`], {
      env: { FERRY_ORIGIN_HEADERS: `${host}=X-Env-Token: HDRENVSECRET` },
    });
    const exited = once(child, 'exit');
    // While the slow row holds the worker: every process's command line but the user's own.
    let seen = '';
    for (let i = 0; i < 50 && !seen.includes('ferry.js worker'); i++) {
      await new Promise((r) => setTimeout(r, 40));
      for (const pid of await fs.readdir('/proc')) {
        const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmd.includes('ferry.js\0worker')) seen += cmd.replaceAll('\0', ' ') + '\n';
      }
    }
    expect(seen).toContain('ferry.js worker');
    expect(seen).not.toContain('HDRFLAGSECRET');
    expect(seen).not.toContain('HDRENVSECRET');
    expect((await exited)[0]).toBe(0);
    const echoed = await allFiles(path.join(dir, 'hdr-objects'));
    const headers = JSON.parse(await fs.readFile(echoed.find((f) => f.includes('echo'))!, 'utf8')) as Record<string, string>;
    expect(headers['x-flag-token']).toBe('HDRFLAGSECRET');
    expect(headers['x-env-token']).toBe('HDRENVSECRET');
  }, 60_000);
});
