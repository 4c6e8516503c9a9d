/**
 * `--concurrency` is the number of requests in flight for the whole compile, shared by its
 * `--jobs` workers (DESIGN.md): the origin (a knee far above these figures, so it never
 * refuses) counts the most requests it ever held at once.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { duck } from '../helpers/duckdb.js';
import { ferry } from '../helpers/run.js';
import { scratchAndOrigin } from '../helpers/scratch.js';

const scratch = scratchAndOrigin('ferry-concurrency-');

/** Compiles `units` manifests of `rows` rows, all on one knee; returns the exit code and the origin's peak in flight. */
async function compile(name: string, units: number, rows: number, flags: string[]): Promise<{ code: number | null; requests: number; refused: number; peak: number }> {
  const manifests = path.join(scratch.dir, name, 'manifests');
  await fs.mkdir(manifests, { recursive: true });
  const db = await duck();
  try {
    for (let u = 0; u < units; u++) {
      const url = `'${scratch.origin.url}/knee/${name}/${u}-' || x || '?limit=1000&delay=150'`;
      await db.run(`COPY (SELECT 'u${u}-' || x AS id, ${url} AS media_path FROM range(${rows}) t(x)) TO '${path.join(manifests, `u${u}.parquet`)}' (FORMAT parquet)`);
    }
  } finally {
    db.close();
  }
  const r = await ferry([
    'compile', manifests, '--dest', path.join(scratch.dir, name, 'objects'), '--out', path.join(scratch.dir, name, 'out'), '--work-dir', path.join(scratch.dir, name, '.ferry'),
    '--allow-private-network', '--min-dim', '1', '--progress', 'none', ...flags,
  ]);
  expect(r.stderr).toContain(`${units} unit(s) compiled`);
  const knee = (await (await fetch(`${scratch.origin.url}/__knee/${name}`)).json()) as { requests: number; refused: number; peak: number };
  return { code: r.code, ...knee };
}

describe('--concurrency over --jobs', () => {
  it('--concurrency 1 --jobs 3: one request at a time, not one per worker', async () => {
    const r = await compile('one', 3, 3, ['--concurrency', '1', '--jobs', '3']);
    expect(r).toEqual({ code: 0, requests: 9, refused: 0, peak: 1 });
  }, 60_000);
});

describe('--concurrency after a resume', () => {
  it('a compile whose other units are complete already gives the unit left all of --concurrency, not a --jobs share', async () => {
    const manifests = path.join(scratch.dir, 'resumed', 'manifests');
    await fs.mkdir(manifests, { recursive: true });
    const db = await duck();
    try {
      // u0 and u1 on one knee, u2 on another, so u2's peak in flight is its own.
      for (const [u, knee] of [['u0', 'resumed-a'], ['u1', 'resumed-a'], ['u2', 'resumed-b']]) {
        const url = `'${scratch.origin.url}/knee/${knee}/${u}-' || x || '?limit=1000&delay=150'`;
        await db.run(`COPY (SELECT '${u}-' || x AS id, ${url} AS media_path FROM range(40) t(x)) TO '${path.join(manifests, `${u}.parquet`)}' (FORMAT parquet)`);
      }
    } finally {
      db.close();
    }
    const args = (...flags: string[]) => [
      'compile', manifests, '--dest', path.join(scratch.dir, 'resumed', 'objects'), '--out', path.join(scratch.dir, 'resumed', 'out'), '--work-dir', path.join(scratch.dir, 'resumed', '.ferry'),
      '--allow-private-network', '--min-dim', '1', '--progress', 'none', '--jobs', '3', '--concurrency', '12', ...flags,
    ];
    expect((await ferry(args('--only', 'u0', '--only', 'u1'))).code).toBe(0);
    const r = await ferry(args());
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('1 unit(s) compiled, 2 already complete');
    const knee = (await (await fetch(`${scratch.origin.url}/__knee/resumed-b`)).json()) as { requests: number; peak: number };
    // A --jobs share would be 12 / 3 = 4; the per-host limit starts at 8 and grows from there.
    expect(knee.requests).toBe(40);
    expect(knee.peak).toBeGreaterThan(4);
    expect(knee.peak).toBeLessThanOrEqual(12);
  }, 60_000);
});

describe('--concurrency at the end of a run', () => {
  it('a worker whose units are done helps the unit still running, so it is not held to one worker\'s share', async () => {
    const manifests = path.join(scratch.dir, 'tail', 'manifests');
    await fs.mkdir(manifests, { recursive: true });
    const db = await duck();
    try {
      // u0: a few quick rows; u1: many slow ones on a knee of its own, so its peak in flight is its own.
      await db.run(`COPY (SELECT 'a-' || x AS id, '${scratch.origin.url}/knee/tail-a/' || x || '?limit=1000&delay=10' AS media_path FROM range(4) t(x)) TO '${path.join(manifests, 'u0.parquet')}' (FORMAT parquet)`);
      await db.run(`COPY (SELECT 'b-' || x AS id, '${scratch.origin.url}/knee/tail-b/' || x || '?limit=1000&delay=150' AS media_path FROM range(160) t(x)) TO '${path.join(manifests, 'u1.parquet')}' (FORMAT parquet)`);
    } finally {
      db.close();
    }
    const r = await ferry([
      'compile', manifests, '--dest', path.join(scratch.dir, 'tail', 'objects'), '--out', path.join(scratch.dir, 'tail', 'out'), '--work-dir', path.join(scratch.dir, 'tail', '.ferry'),
      '--allow-private-network', '--min-dim', '1', '--progress', 'none', '--jobs', '2', '--concurrency', '8',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('2 unit(s) compiled');
    const knee = (await (await fetch(`${scratch.origin.url}/__knee/tail-b`)).json()) as { requests: number; peak: number };
    // One worker's share is 8 / 2 = 4; both workers together hold up to 8.
    expect(knee.requests).toBe(160);
    expect(knee.peak).toBeGreaterThan(4);
    expect(knee.peak).toBeLessThanOrEqual(8);
  }, 60_000);
});
