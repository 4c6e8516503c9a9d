/**
 * `--concurrency` is the number of requests in flight for the whole compile, shared by its
 * `--jobs` workers (DESIGN.md): the origin (a knee far above these figures, so it never
 * refuses) counts the most requests it ever held at once.
 */
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duck } from '../helpers/duckdb.js';
import { type Origin, ferry, startOrigin } from '../helpers/run.js';

let dir: string;
let origin: Origin;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-concurrency-'));
  origin = await startOrigin();
});

afterAll(async () => {
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** Compiles `units` manifests of `rows` rows, all on one knee; returns the exit code and the origin's peak in flight. */
async function compile(name: string, units: number, rows: number, flags: string[]): Promise<{ code: number | null; requests: number; refused: number; peak: number }> {
  const manifests = path.join(dir, name, 'manifests');
  await fs.mkdir(manifests, { recursive: true });
  const db = await duck();
  try {
    for (let u = 0; u < units; u++) {
      const url = `'${origin.url}/knee/${name}/${u}-' || x || '?limit=1000&delay=150'`;
      await db.run(`COPY (SELECT 'u${u}-' || x AS id, ${url} AS media_path FROM range(${rows}) t(x)) TO '${path.join(manifests, `u${u}.parquet`)}' (FORMAT parquet)`);
    }
  } finally {
    db.close();
  }
  const r = await ferry([
    'compile', manifests, '--dest', path.join(dir, name, 'objects'), '--out', path.join(dir, name, 'out'), '--work-dir', path.join(dir, name, '.ferry'),
    '--allow-private-network', '--min-dim', '1', '--progress', 'none', ...flags,
  ]);
  expect(r.stderr).toContain(`${units} unit(s) compiled`);
  const knee = (await (await fetch(`${origin.url}/__knee/${name}`)).json()) as { requests: number; refused: number; peak: number };
  return { code: r.code, ...knee };
}

describe('--concurrency over --jobs', () => {
  it('--concurrency 1 --jobs 3: one request at a time, not one per worker', async () => {
    const r = await compile('one', 3, 3, ['--concurrency', '1', '--jobs', '3']);
    expect(r).toEqual({ code: 0, requests: 9, refused: 0, peak: 1 });
  }, 60_000);
});
