/**
 * A reader that goes away: `ferry … | head`, a log shipper that dies. The orchestrator's
 * stdout and stderr carry only messages, so it finishes its work and exits by it; the
 * worker's stdout is its product, so it stops quietly once nobody reads it, and a closed
 * stderr (PROGRESS only) does not stop it. Neither crashes on EPIPE.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duck } from '../helpers/duckdb.js';
import { FERRY, ROOT, type Origin, startOrigin } from '../helpers/run.js';

let dir: string;
let origin: Origin;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-pipes-'));
  origin = await startOrigin();
  const db = await duck();
  await fs.mkdir(path.join(dir, 'manifests'));
  for (const unit of ['a', 'b']) {
    await db.run(
      `COPY (SELECT '${unit}' || i::VARCHAR AS id, '${origin.url}/ok/pipes-${unit}' || i::VARCHAR AS media_path FROM range(30) t(i)) TO '${path.join(dir, 'manifests', `${unit}.parquet`)}' (FORMAT parquet)`,
    );
  }
  db.close();
}, 60_000);

afterAll(async () => {
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** Runs `ferry …` with `closed` ('stdout' or 'stderr') unread from the start; the other is kept. */
async function withClosed(args: string[], closed: 'stdout' | 'stderr', input = ''): Promise<{ code: number | null; kept: string }> {
  const child = spawn(process.execPath, [FERRY, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  child[closed].destroy();
  let kept = '';
  child[closed === 'stdout' ? 'stderr' : 'stdout'].on('data', (d) => (kept += d));
  child.stdin.end(input);
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, kept };
}

describe('a closed stdout or stderr', () => {
  it('compile finishes its units and exits 0 when its stderr is closed', async () => {
    const out = path.join(dir, 'out');
    const args = ['compile', path.join(dir, 'manifests'), '--dest', path.join(dir, 'objects'), '--out', out, '--work-dir', path.join(dir, 'work')];
    const r = await withClosed([...args, '--allow-private-network', '--min-dim', '1', '--progress', 'plain'], 'stderr');
    expect(r.code, r.kept).toBe(0);
    for (const unit of ['a', 'b']) expect(JSON.parse(await fs.readFile(path.join(out, `${unit}.manifest.json`), 'utf8'))).toMatchObject({ status: 'complete' });
  });

  const tasks = () => Array.from({ length: 50 }, (_, i) => `w${i}\t${origin.url}/ok/pipes-w${i}\n`).join('');
  const worker = (name: string) => ['worker', '--tasks', '-', '--dest', path.join(dir, name), '--allow-private-network', '--min-dim', '1'];

  it('the worker stops without a stack when nobody reads its events', async () => {
    const r = await withClosed(worker('w-stdout'), 'stdout', tasks());
    expect(r.code).toBe(1);
    expect(r.kept).not.toMatch(/EPIPE|Unhandled|internal error/);
  });

  it('the worker stops in one line when its events cannot be written (stdout on a full device)', async () => {
    const out = await fs.open('/dev/full', 'w');
    try {
      const child = spawn(process.execPath, [FERRY, ...worker('w-full')], { cwd: ROOT, stdio: ['pipe', out.fd, 'pipe'] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d));
      child.stdin!.end(tasks());
      const [code] = (await once(child, 'close')) as [number | null];
      expect(code).toBe(1);
      expect(err).toContain('ferry worker: cannot write events to stdout (ENOSPC): stopping');
      expect(err).not.toMatch(/^\s+at /m);
    } finally {
      await out.close();
    }
  });

  it('the worker goes on to its end when only its stderr is closed', async () => {
    const r = await withClosed(worker('w-stderr'), 'stderr', tasks());
    expect(r.code).toBe(0);
    expect(r.kept.split('\n').filter((l) => l.startsWith('UP_OK')).length).toBe(50);
  });
});
