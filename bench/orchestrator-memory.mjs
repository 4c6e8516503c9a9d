// The orchestrator's memory per row: compiles one manifest of N rows (default 1,000,000)
// from a local source (`file://` under --local-source-root: no HTTP, so the worker is as fast
// as it gets) into a folder, and reports the peak RSS (VmHWM) of the orchestrator process
// and, apart, of its worker processes, sampled from /proc. Most rows migrate; 2 % name a
// missing file (NOT_FOUND ledger rows, with a detail) and 0.5 % repeat an earlier id
// (DUPLICATE_ID), so every kind of outcome is held.
//
//   npm run build && node bench/orchestrator-memory.mjs [--rows N] [--dir DIR] [--keep]
//     [--node-flag=--trace-gc ...]  (flags for the orchestrator's node) [--timeline] (its RSS every second)
//
// DIR (default /tmp/ferry-bench-memory) holds the manifest, the objects and the outputs;
// objects are tiny (the source is 100 files of ~100 bytes), so 1,000,000 rows need ~4 GB of
// disk blocks on ext4. Runs against the build, with `node`, not `npx` (see FACTS.md).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { clearInterval, setInterval } from 'node:timers';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    dir: { type: 'string', default: '/tmp/ferry-bench-memory' },
    keep: { type: 'boolean', default: false },
    'node-flag': { type: 'string', multiple: true, default: [] },
    timeline: { type: 'boolean', default: false },
  },
});
const rows = Number(values.rows);
const dir = resolve(values.dir);
const FERRY = process.env.FERRY_BIN ?? fileURLToPath(new URL('../bin/ferry.js', import.meta.url));
const SOURCES = 100;

const src = join(dir, 'src');
const prefix = join(dir, `manifests-${rows}`);
await mkdir(src, { recursive: true });
for (let i = 0; i < SOURCES; i++) await writeFile(join(src, `object-${String(i).padStart(3, '0')}.bin`), `ferry bench object ${i} `.repeat(4));

if (!existsSync(join(prefix, 'unit.parquet'))) {
  await mkdir(prefix, { recursive: true });
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  // ids like a real catalogue's; one row in 200 repeats the id of the row before it; one in 50
  // names a file that does not exist.
  await conn.run(`COPY (
    SELECT
      'img-' || lpad(CAST(CASE WHEN i % 200 = 199 THEN i - 1 ELSE i END AS VARCHAR), 9, '0') AS id,
      'file://${src}/' || CASE WHEN i % 50 = 7 THEN 'missing-' || CAST(i AS VARCHAR) ELSE 'object-' || lpad(CAST(i % ${SOURCES} AS VARCHAR), 3, '0') END || '.bin' AS url,
      i AS row_no
    FROM range(${rows}) t(i)
  ) TO '${join(prefix, 'unit.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 100000)`);
  conn.closeSync();
  db.closeSync();
}

const dest = join(dir, 'dest');
const out = join(dir, 'out');
const work = join(dir, 'work');
await Promise.all([dest, out, work].map((d) => rm(d, { recursive: true, force: true })));

const args = [...values['node-flag'], FERRY, 'compile', prefix, '--dest', dest, '--out', out, '--work-dir', work,
  '--local-source-root', src, '--profile', 'any', '--url-column', 'url', '--progress', 'none', '--jobs', '1'];
const started = Date.now();
const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: dir });

/** VmHWM and VmRSS of a process, in kB; null once it is gone. */
function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0), rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) };
  } catch {
    return null;
  }
}
function childrenOf(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return [];
  }
}
let orchestratorHwm = 0;
const workerHwm = new Map();
let treePeak = 0;
let ticks = 0;
const sample = () => {
  const o = memOf(child.pid);
  if (!o) return;
  orchestratorHwm = Math.max(orchestratorHwm, o.hwm);
  if (values.timeline && ++ticks % 10 === 0) process.stderr.write(`t=${((Date.now() - started) / 1000).toFixed(0)}s orchestrator rss ${mb(o.rss)} MB, peak ${mb(o.hwm)} MB\n`);
  let tree = o.rss;
  for (const pid of childrenOf(child.pid)) {
    const w = memOf(pid);
    if (!w) continue;
    workerHwm.set(pid, Math.max(workerHwm.get(pid) ?? 0, w.hwm));
    tree += w.rss;
  }
  treePeak = Math.max(treePeak, tree);
};
const mb = (kb) => Math.round(kb / 1024);
const timer = setInterval(sample, 100);
const code = await new Promise((res) => child.on('exit', (c) => res(c)));
clearInterval(timer);

const manifest = JSON.parse(readFileSync(join(out, 'unit.manifest.json'), 'utf8'));
const result = {
  rows,
  exit: code,
  seconds: Math.round((Date.now() - started) / 1000),
  orchestratorPeakMB: mb(orchestratorHwm),
  orchestratorBytesPerRow: Math.round((orchestratorHwm * 1024) / rows),
  workerPeakMB: [...workerHwm.values()].map(mb),
  treePeakMB: mb(treePeak),
  counts: { migrated: manifest.counts.migrated, failed: manifest.counts.failed, byReason: manifest.counts.byReason },
};
process.stdout.write(JSON.stringify(result) + '\n');
if (!values.keep) await Promise.all([dest, work].map((d) => rm(d, { recursive: true, force: true })));
