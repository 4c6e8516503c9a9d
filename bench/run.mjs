// `npm run bench`: the benchmarks of issue 7, then BENCHMARKS.md with the figures, the
// ratios against the targets, the machine, SVG charts and the command to reproduce them.
// Speed and memory goals live here, never in timed unit tests.
//
//   node bench/run.mjs [--quick] [--only latency,cpu,startup,s3,large,control,knee,profile] [--report]
//                      [--reps N] [--objects N] [--concurrency 256,512] [--jobs N] [--tools ferry,rclone,bare]
//                      [--work-dir DIR] [--dest-dir DIR] [--out-dir DIR]
//
// Runs against the build (`npm run build` first; `npm run bench` does it). Sets up what it
// needs: nginx-light, libnginx-mod-http-echo and rclone with apt-get when missing, and a
// corpus cached under --work-dir (bench/out/). Runs write their destinations, --out and
// journals under --dest-dir (default /dev/shm when a run fits there: see lib/dest-dir.mjs). A full run rewrites BENCHMARKS.md and
// bench/charts/; `--quick` (a small smoke) and `--out-dir` write under another dir instead.
// `--only` re-runs some scenarios: the others' last results (bench/out/results/) are kept;
// `--report` runs nothing and rewrites BENCHMARKS.md and the charts from those results. A
// scenario that fails (or is skipped for want of nginx) keeps its last results too, and
// BENCHMARKS.md says that its last attempt measured nothing; every target of issue 7 is
// listed, those without results as not measured, and the bench exits 1.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureCorpus } from './lib/corpus.mjs';
import { runFailure } from './lib/failure.mjs';
import { profileFerry } from './lib/profile.mjs';
import { charts, markdown, targets } from './lib/report.mjs';
import { ensureTools, toolsPresent, versions } from './lib/setup.mjs';
import { defaultDestDir, runDirBytes } from './lib/dest-dir.mjs';
import { runScenario, scenarios } from './lib/transfer.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const ROOT = here('../');
const ALL = ['control', 'large', 'latency', 'cpu', 'startup', 's3', 'knee', 'profile'];
const TRANSFER = ['latency', 'cpu', 'startup', 's3', 'knee'];

const OPTIONS = {
  help: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  report: { type: 'boolean', default: false },
  only: { type: 'string', multiple: true },
  reps: { type: 'string' },
  objects: { type: 'string' },
  concurrency: { type: 'string' },
  jobs: { type: 'string' },
  tools: { type: 'string' },
  'work-dir': { type: 'string' },
  'dest-dir': { type: 'string' },
  'out-dir': { type: 'string' },
};
const USAGE = `usage: node bench/run.mjs [--quick] [--only ${ALL.join(',')}] [--report]
                         [--reps N] [--objects N] [--concurrency 256,512] [--jobs N] [--tools ferry,rclone,bare]
                         [--work-dir DIR] [--dest-dir DIR] [--out-dir DIR]`;
/** A bad option: one line, exit 2, before anything runs (a run of nothing would replace the last results). */
function usage(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}
let parsed;
try {
  parsed = parseArgs({ options: OPTIONS });
} catch (err) {
  usage(`${err.message} (--help lists the options)`);
}
if (parsed.values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const opt = parsed.values;
/** A list of whole numbers ≥ 1. */
function counts(flag, text) {
  const list = text.split(',').map((t) => Number(t.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1)) usage(`--${flag} ${text}: expected whole numbers ≥ 1`);
  return list;
}
/** One whole number ≥ 1, or `fallback` when the option is absent. */
function count(flag, text, fallback) {
  if (text === undefined) return fallback;
  const [n, ...more] = counts(flag, text);
  if (more.length) usage(`--${flag} ${text}: expected one number`);
  return n;
}
const TOOLS = ['ferry', 'rclone', 'bare'];

const quick = opt.quick;
const only = opt.only ? opt.only.flatMap((s) => s.split(',')).filter(Boolean) : ALL;
for (const name of only) if (!ALL.includes(name)) usage(`--only ${name}: expected one of ${ALL.join(', ')}`);
const selected = opt.report ? [] : ALL.filter((n) => only.includes(n));
const reps = count('reps', opt.reps, quick ? 1 : 3);
const objects = count('objects', opt.objects, quick ? 2000 : 20000);
// ferry's --jobs: its own default unless given.
const jobs = count('jobs', opt.jobs, undefined);
const concurrencyList = opt.concurrency === undefined ? undefined : counts('concurrency', opt.concurrency);
const wantedTools = opt.tools === undefined ? undefined : opt.tools.split(',').filter(Boolean);
for (const t of wantedTools ?? []) if (!TOOLS.includes(t)) usage(`--tools ${opt.tools}: expected some of ${TOOLS.join(', ')}`);
const workDir = opt['work-dir'] ?? here('./out');
const outDir = opt['out-dir'] ?? (quick ? join(workDir, 'quick') : ROOT);
const inRepo = outDir === ROOT;
const resultsDir = inRepo ? join(workDir, 'results') : join(outDir, 'results');
const chartsDir = inRepo ? here('./charts') : join(outDir, 'charts');
const log = (line) => process.stdout.write(`${line}\n`);
const argv = process.argv.slice(2);
const command = argv.length === 0 ? 'npm run bench' : `node bench/run.mjs ${argv.join(' ')}`;

/** The run with the median MB/s (the lower middle one of an even count). */
function medianRun(runs) {
  const sorted = [...runs].sort((a, b) => a.mbPerSecond - b.mbPerSecond);
  return sorted[(sorted.length - 1) >> 1];
}

function runScript(script, args) {
  const r = spawnSync(process.execPath, [here(script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout);
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function machine() {
  const git = (...a) => {
    try {
      return execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  // Porcelain lines are 'XY path', X often a space: the path starts at column 3 (so no trim).
  let status = '';
  try {
    status = execFileSync('git', ['status', '--porcelain', '--', 'bin', 'protocol', 'storage', 'ledger', 'worker', 'orchestrator', 'package.json'], { cwd: ROOT, encoding: 'utf8' });
  } catch {
    // not a git checkout
  }
  const dirty = [...new Set(status.split('\n').filter(Boolean).map((l) => `${l.slice(3).split('/')[0]}/`))];
  const rev = git('rev-parse', '--short', 'HEAD') || 'unknown';
  return {
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.platform()} ${os.release()}`,
    loadavg: os.loadavg().map((l) => l.toFixed(2)).join(', '),
    versions: versions(),
    command,
    commit: dirty.length ? `${rev} with uncommitted changes in ${dirty.join(', ')}` : rev,
  };
}

/** Writes a result, dated and with the ferry it measured: `--only` mixes runs of several builds in one report. */
async function save(name, result) {
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, `${name}.json`), JSON.stringify({ date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC', commit: machineAtStart?.commit, ...result }, null, 1));
}

async function load(name) {
  const f = join(resultsDir, `${name}.json`);
  return existsSync(f) ? JSON.parse(await readFile(f, 'utf8')) : undefined;
}

if (!existsSync(join(ROOT, 'dist/worker/main.js'))) throw new Error('no build: run `npm run build` first (npm run bench does)');
// A scenario that measured nothing this time keeps its last results (dated in BENCHMARKS.md)
// and leaves `<name>.failed.json` beside them, so the report says that this attempt failed.
const failures = [];
const measuredNothing = async (name, why) => {
  failures.push(name);
  log(`${name}: ${why}`);
  await save(`${name}.failed`, { error: why.split('\n')[0].slice(0, 300) });
};
const attempt = async (name, fn) => {
  log(`== ${name}`);
  try {
    const result = await fn();
    await save(name, result);
    await rm(join(resultsDir, `${name}.failed.json`), { force: true });
    // Some runs of a transfer scenario failed (left out of its figures): the exit code says so
    // too. Not the knee's: tools giving up on refused objects is what it shows.
    const failedRuns = TRANSFER.includes(name) && name !== 'knee' ? result.runs.filter((r) => runFailure(r)).length : 0;
    if (failedRuns) failures.push(`${name} (${failedRuns} of ${result.runs.length} runs)`);
  } catch (e) {
    await measuredNothing(name, `failed: ${e.stack ?? e}`);
  }
};

const needsOrigin = selected.some((n) => TRANSFER.includes(n) || n === 'profile');
let tools = toolsPresent();
if (needsOrigin) {
  tools = ensureTools(log);
  log(`tools: nginx ${tools.nginx ? 'ok' : 'missing'}, rclone ${tools.rclone ? 'ok' : 'missing'} (${tools.note})`);
}
// What ran, taken before any scenario: the build is this tree's now (npm run bench built it).
const machineAtStart = opt.report ? undefined : machine();
const corpus = needsOrigin && tools.nginx ? await ensureCorpus(workDir, { count: objects, units: 4, log }) : undefined;
const corpusInfo = corpus && { count: corpus.count, units: corpus.units, totalBytes: corpus.totalBytes };
let destDir = opt['dest-dir'];
if (corpus && destDir === undefined) {
  const pick = defaultDestDir(workDir, runDirBytes(corpus));
  destDir = pick.dir;
  log(`runs write under ${destDir} (${pick.why})`);
}
const all = scenarios();
if (quick) {
  all.latency.concurrencies = [64, 256];
  all.latency.extend = false;
  all.s3.concurrencies = [64];
  all.knee.concurrencies = [32, 128];
}
if (concurrencyList) for (const n of TRANSFER) Object.assign(all[n], { concurrencies: concurrencyList, extend: false });
if (!tools.rclone) for (const n of TRANSFER) all[n].tools = all[n].tools.filter((t) => t.name !== 'rclone');
if (wantedTools) for (const n of TRANSFER) all[n].tools = all[n].tools.filter((t) => wantedTools.some((w) => t.name === w || t.name.startsWith(`${w} `)));

for (const name of selected) {
  if (name === 'control') {
    await attempt(name, async () => ({
      events: runScript('./control-plane.mjs', [quick ? '100000' : '1000000']),
      parquet: runScript('./parquet-renew.mjs', [quick ? '200000' : '2000000']),
    }));
  } else if (name === 'large') {
    const size = String(quick ? 256 * 2 ** 20 : 2 * 2 ** 30);
    // Alternating, as the transfer scenarios: ferry, bare, bare, ferry, … (each pair in turn
    // goes first); the medians by MB/s are reported, with every run kept.
    await attempt(name, async () => {
      const runs = { ferry: [], bare: [] };
      for (let rep = 1; rep <= reps; rep++) {
        const order = rep % 2 ? ['ferry', 'bare'] : ['bare', 'ferry'];
        for (const tool of order) runs[tool].push(runScript(tool === 'ferry' ? './large-object.mjs' : './large-bare.mjs', [size]));
      }
      return { reps, ferry: medianRun(runs.ferry), bare: medianRun(runs.bare), runs };
    });
  } else if (!corpus) {
    await measuredNothing(name, 'skipped: nginx (nginx-light, libnginx-mod-http-echo) is not installed and could not be installed');
  } else if (name === 'profile') {
    await attempt(name, () => profileFerry({ corpus, workDir, destDir, jobs, log }));
  } else {
    await attempt(name, async () => {
      const result = await runScenario(name, all[name], { corpus, workDir, destDir, reps, jobs, log });
      // Nothing measured: the scenario's earlier results are kept, as when it throws.
      const failed = result.runs.filter((r) => runFailure(r));
      if (failed.length === result.runs.length) throw new Error(`every run failed, the first: ${failed[0]?.tool} c=${failed[0]?.concurrency}: ${failed[0]?.error}`);
      return { corpus: corpusInfo, rclone: tools.rclone, ...result };
    });
  }
}

await mkdir(outDir, { recursive: true });
if (machineAtStart) await save('machine', machineAtStart);
const results = { notMeasured: {} };
for (const name of [...ALL, 'machine']) {
  const r = await load(name);
  // (`skipped`: a marker earlier versions of the bench wrote in place of the results.)
  if (r && !r.skipped) results[name] = r;
  const failed = await load(`${name}.failed`);
  if (failed) results.notMeasured[name] = failed;
}
if (!results.machine) usage(`--report: no results under ${resultsDir} (run some scenarios first)`);
results.corpus = results.latency?.corpus ?? results.cpu?.corpus ?? results.s3?.corpus ?? corpusInfo;
await mkdir(chartsDir, { recursive: true });
for (const [file, svg] of Object.entries(charts(results))) await writeFile(join(chartsDir, file), svg);
const history = await readFile(here('./HISTORY.md'), 'utf8').catch(() => '');
const md = markdown(results, { chartsPath: inRepo ? 'bench/charts' : 'charts', command, history });
await writeFile(join(outDir, 'BENCHMARKS.md'), md);
log(`\nwrote ${join(outDir, 'BENCHMARKS.md')} and ${chartsDir}/`);
for (const t of targets(results)) log(`  ${t.what}: ${typeof t.value === 'number' ? t.value.toFixed(2) : t.measured} — ${t.verdict.replace(/\*/g, '')}`);
if (failures.length) {
  log(`failed: ${failures.join(', ')}`);
  process.exitCode = 1;
}
