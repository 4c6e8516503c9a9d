// `npm run bench`: runs each benchmark as its own process (after `npm run build`) and
// writes BENCHMARKS.md with the figures, the machine and the command to reproduce them.
// Speed and memory goals live here, never in timed unit tests.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const quick = process.argv.includes('--quick');

function run(script, args) {
  const r = spawnSync(process.execPath, [here(script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout);
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const events = run('./control-plane.mjs', [quick ? '100000' : '1000000']);
const parquet = run('./parquet-renew.mjs', [quick ? '200000' : '2000000']);
const large = run('./large-object.mjs', [String(quick ? 256 * 2 ** 20 : 2 * 2 ** 30)]);

const cpu = os.cpus()[0]?.model ?? 'unknown';
const md = `# Benchmarks

Measured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}.
These machines are shared and noisy: read ratios and orders of magnitude, not the last digit.

## Control plane
| what | figure | target |
|---|---|---|
| event lines parsed | ${events.parsePerSecond.toLocaleString('en')}/s (${events.events.toLocaleString('en')} events) | ≥ 500,000/s |
| parsed and journaled (batched writes, fsync every second) | ${events.parseAndJournalPerSecond.toLocaleString('en')}/s | ≥ 500,000/s |
| peak RSS (1M lines held in memory by the bench itself) | ${events.peakRssMB} MB | |

## Renewed Parquet
DuckDB-written manifest, ${parquet.rows.toLocaleString('en')} rows in ${parquet.rowGroups} row groups (id, url, caption, ints, timestamp, double, list):
| step | time | peak RSS | target |
|---|---|---|---|
| scan id + url columns | ${parquet.scanSeconds.toFixed(1)} s | | |
| renew (every column + 2) | ${parquet.renewSeconds.toFixed(1)} s | ${parquet.peakRssMB} MB | < 30 s, < 1 GB for 2M rows |

## One large object to S3
HTTP origin → \`ferry worker --profile any\` → fauxqs (local S3, request limit raised for 64 MiB parts), default
\`--part-size 64MiB\`, one part uploading while the next fills:
| object | time | MB/s | worker CPU | worker peak RSS | target |
|---|---|---|---|---|---|
| ${(large.bytes / 2 ** 30).toFixed(2)} GiB | ${large.seconds.toFixed(1)} s | ${large.mbPerSecond.toFixed(0)} | ${large.cpuSeconds.toFixed(1)} s | ${large.peakRssMB} MB | < 300 MB |

Transfer throughput against rclone and a bare Node loop is not measured yet (issue 7).

## Reproduce
\`\`\`sh
npm ci && npm run bench            # full sizes
npm run build && node bench/run.mjs --quick
\`\`\`
`;
if (!quick) writeFileSync(here('../BENCHMARKS.md'), md);
process.stdout.write(quick ? md : 'wrote BENCHMARKS.md\n');
