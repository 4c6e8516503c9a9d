// Measures the Parquet codec on a large manifest: scan, then renew, of a DuckDB-written
// file (default 2,000,000 rows, DuckDB's default row groups of 122,880 rows), reporting
// wall time and the process's peak RSS (main thread and codec threads share the process).
// Runs against the build: `npm run build && node bench/parquet-renew.mjs [rows]`.
// The manifest is generated in a child process, so DuckDB's memory is not counted.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);

if (process.argv[2] === 'generate') {
  const [, , , file, rows] = process.argv;
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run(`COPY (
    SELECT 'img-' || i AS id,
      'https://images.example.com/' || (i % 997) || '/' || md5(i::VARCHAR) || '.jpg' AS url,
      'a caption of moderate length for row ' || i AS caption,
      (i % 2000)::INTEGER AS width, (i % 1500)::INTEGER AS height,
      TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND AS seen,
      i / 3.0 AS score,
      ['tag' || (i % 10), 'tag' || (i % 7)] AS tags
    FROM range(${Number(rows)}) r(i)) TO '${file}' (FORMAT parquet)`);
  process.exit(0);
}

const rows = Number(process.argv[2] ?? 2_000_000);
const { renewManifest, scanManifest } = await import('../dist/orchestrator/parquet/index.js');
const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-parquet-'));
const input = join(dir, 'manifest.parquet');
const output = join(dir, 'renewed.parquet');
try {
  const gen = spawnSync(process.execPath, [self, 'generate', input, String(rows)], { stdio: 'inherit' });
  if (gen.status !== 0) throw new Error('generating the manifest failed');

  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const keys = { id: 'id', url: 'url' };
  const out = { path: 'updated_media_path', bad: 'bad_image' };

  let t = performance.now();
  let seen = 0;
  const info = await scanManifest(input, keys, out, (ids) => {
    seen += ids.length;
  });
  const scanMs = performance.now() - t;

  t = performance.now();
  const result = await renewManifest(input, output, keys, out, (ids, urls) => ({
    paths: urls.map((u, i) => (i % 10 === 0 ? null : `s3://dest/unit/${ids[i]}.jpg`)),
    bad: ids.map((_, i) => i % 10 === 0),
  }));
  const renewMs = performance.now() - t;
  clearInterval(sampler);

  const mb = (b) => `${(b / 1024 / 1024).toFixed(0)} MB`;
  console.log(`rows ${info.rows} in ${info.rowGroups} row groups (${seen} scanned); input ${mb((await stat(input)).size)}, output ${mb((await stat(output)).size)}`);
  console.log(`scan  ${(scanMs / 1000).toFixed(2)} s`);
  console.log(`renew ${(renewMs / 1000).toFixed(2)} s (${result.rows} rows)`);
  console.log(`peak RSS sampled ${mb(peak)}; maxRSS ${mb(process.resourceUsage().maxRSS * 1024)}`);
  // The last line is for bench/run.mjs.
  console.log(JSON.stringify({ rows: info.rows, rowGroups: info.rowGroups, scanSeconds: scanMs / 1000, renewSeconds: renewMs / 1000, peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }));
} finally {
  await rm(dir, { recursive: true, force: true });
}
