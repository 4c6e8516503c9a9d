// The transfer scenarios of issue 7 (latency, cpu, s3, knee): each tool — ferry, rclone, the
// bare Node loop — copies the same corpus from the same nginx origin, alternating, rep after
// rep, each run into a fresh destination, measured as a process tree (measure.mjs), then
// checked: every object landed (count and bytes, by walking the folder or listing the bucket).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOOP_BOUND_IN_FLIGHT, defaultJobs } from '../../dist/orchestrator/config.js';
import { writeList, writeManifests } from './corpus.mjs';
import { defaultDestDir, fsType, runDirBytes } from './dest-dir.mjs';
import { runFailure } from './failure.mjs';
import { runMeasured } from './measure.mjs';
import { startNginx } from './nginx.mjs';
import { FAKE_AWS, startS3 } from './s3.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FERRY = join(ROOT, 'bin/ferry.js');
const BARE = join(ROOT, 'bench/bare.mjs');
const BUCKET = 'bench';

/** The measures of a run that never started. */
const NOT_STARTED = { seconds: NaN, cpuSeconds: NaN, sampledCpuSeconds: NaN, workerCpuSeconds: undefined, otherCpuSeconds: NaN, peakRssBytes: NaN, processes: 0, code: null, signal: null, stdout: '', timedOut: false };

/** Whether `ferry <args…>` accepts its flags (yargs is strict: an unknown one is a usage error). */
function accepts(args) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-flag-'));
  try {
    mkdirSync(join(dir, 'm'));
    const r = spawnSync(process.execPath, [FERRY, ...args.map((a) => a.replaceAll('$DIR', dir))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return !/unknown (argument|flag)/i.test(r.stderr) && r.status !== null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * How to run ferry without adaptive concurrency, for the knee's A/B (the flag is being added):
 * `compile --no-adaptive` if compile takes it, else the data plane alone, `ferry worker
 * --no-adaptive` (a hidden flag), else nothing.
 */
export function ferryAdaptiveOff() {
  if (accepts(['compile', '$DIR/m', '--dest', '$DIR/d', '--out', '$DIR/o', '--work-dir', '$DIR/w', '--progress', 'none', '--no-adaptive'])) return { via: 'compile', flag: '--no-adaptive' };
  if (accepts(['worker', '--tasks', '/dev/null', '--dest', '$DIR/d', '--no-adaptive'])) return { via: 'worker', flag: '--no-adaptive' };
  return null;
}

function ferry(name, extra = []) {
  return {
    name,
    command({ manifests, dest, runDir, concurrency, s3, jobs }) {
      const args = [FERRY, 'compile', manifests, '--dest', s3 ? `s3://${BUCKET}/ferry` : dest, '--out', join(runDir, 'renewed'), '--work-dir', join(runDir, 'journal')];
      args.push('--concurrency', String(concurrency), ...(jobs === undefined ? [] : ['--jobs', String(jobs)]), '--allow-private-network', '--progress', 'none', ...extra);
      // As on AWS (where `auto` turns it on): one conditional PUT per object, no HEAD first.
      if (s3) args.push('--s3-endpoint', s3.endpoint, '--s3-path-style', '--conditional-writes', 'on');
      return { cmd: process.execPath, args, env: { ...process.env, ...FAKE_AWS } };
    },
    destPrefix: 'ferry/',
  };
}

const rclone = {
  name: 'rclone',
  command({ origin, list, dest, runDir, concurrency, s3 }) {
    const env = { ...process.env, RCLONE_CONFIG: join(runDir, 'rclone.conf') };
    delete env.AWS_CA_BUNDLE;
    if (s3) {
      Object.assign(env, {
        RCLONE_S3_PROVIDER: 'Other',
        RCLONE_S3_ENDPOINT: s3.endpoint,
        RCLONE_S3_ACCESS_KEY_ID: FAKE_AWS.AWS_ACCESS_KEY_ID,
        RCLONE_S3_SECRET_ACCESS_KEY: FAKE_AWS.AWS_SECRET_ACCESS_KEY,
        RCLONE_S3_FORCE_PATH_STYLE: 'true',
      });
    }
    const target = s3 ? `:s3:${BUCKET}/rclone` : dest;
    const args = ['copy', '--http-url', origin, ':http:', target, '--files-from', list, '--http-no-head', '--no-traverse', '--no-check-dest'];
    args.push('--transfers', String(concurrency), '--checkers', String(concurrency), '-q');
    return { cmd: 'rclone', args, env };
  },
  destPrefix: 'rclone/',
};

/** The data plane alone: `ferry worker` reading the unit's tasks (id TAB url) from a file. */
function ferryWorker(name, extra = []) {
  return {
    name,
    command({ tasks, dest, concurrency }) {
      const args = [FERRY, 'worker', '--tasks', tasks, '--dest', dest, '--concurrency', String(concurrency), '--allow-private-network', ...extra];
      return { cmd: process.execPath, args, env: { ...process.env, ...FAKE_AWS } };
    },
  };
}

const bare = {
  name: 'bare',
  command({ origin, list, dest, concurrency, s3 }) {
    const args = [BARE, '--base', origin, '--list', list, '--dest', s3 ? `s3://${BUCKET}/bare` : dest, '--concurrency', String(concurrency)];
    if (s3) args.push('--s3-endpoint', s3.endpoint);
    return { cmd: process.execPath, args, env: { ...process.env, ...FAKE_AWS } };
  },
  destPrefix: 'bare/',
};

/**
 * The scenarios. `concurrencies` and sizes are the full run's; run.mjs shrinks them for --quick.
 * `extend`: while ferry's objects/s still rises at the highest concurrency, double it.
 */
export function scenarios({ adaptiveOff = ferryAdaptiveOff(), kneeLimit = 64 } = {}) {
  const fixed = !adaptiveOff ? [] : adaptiveOff.via === 'compile' ? [ferry(`ferry ${adaptiveOff.flag}`, [adaptiveOff.flag])] : [ferryWorker(`ferry worker ${adaptiveOff.flag}`, [adaptiveOff.flag])];
  return {
    latency: {
      title: 'Latency: origin +50 ms per response, to a local folder',
      origin: { latencyMs: 50 },
      dest: 'folder',
      concurrencies: [256, 512, 1024],
      extend: true,
      tools: [ferry('ferry'), rclone, bare],
    },
    cpu: {
      title: 'CPU: no added latency, concurrency 64, to a local folder',
      origin: {},
      dest: 'folder',
      concurrencies: [64],
      tools: [ferry('ferry'), ferry('ferry --profile any', ['--profile', 'any']), rclone, bare],
    },
    // The cpu scenario's runs on a few objects: what each tool spends before and around its
    // first transfers (processes, modules, the JIT's warm-up), set apart from what each
    // further object costs.
    startup: {
      title: 'Start-up: the cpu scenario on the first 200 objects of one unit',
      origin: {},
      dest: 'folder',
      unitsWanted: [0],
      limit: 200,
      concurrencies: [64],
      tools: [ferry('ferry'), ferry('ferry --profile any', ['--profile', 'any']), rclone, bare],
    },
    s3: {
      title: 'S3: no added latency, concurrency 256, to fauxqs (a fresh one per run)',
      origin: {},
      dest: 's3',
      concurrencies: [256],
      tools: [ferry('ferry'), rclone, bare],
    },
    knee: {
      title: `Knee: origin +50 ms, answering 429 above ${kneeLimit} requests in flight, one unit, to a local folder`,
      origin: { latencyMs: 50, limitConn: kneeLimit },
      kneeLimit,
      dest: 'folder',
      unitsWanted: [0],
      concurrencies: [32, 64, 128, 256, 512],
      tools: [ferry('ferry'), ...fixed, rclone, bare],
      adaptiveOff,
    },
  };
}

async function folderTotals(dir) {
  let count = 0;
  let bytes = 0;
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile()) continue;
    count++;
    bytes += (await stat(join(e.parentPath ?? e.path, e.name))).size;
  }
  return { count, bytes };
}

/**
 * Runs one scenario: every tool × concurrency × rep, alternating the tools' order each rep.
 * Returns { scenario, title, params, runs: [...] }.
 */
export async function runScenario(name, sc, { corpus, workDir, destDir = defaultDestDir(workDir, runDirBytes(corpus)).dir, reps, jobs, maxConcurrency = 2048, log, timeoutMs = 10 * 60_000 }) {
  const units = sc.unitsWanted ?? null;
  // `limit`: the first files of the units wanted (the start-up scenario's few objects).
  const files = corpus.files.filter((f) => !units || units.includes(f.unit)).slice(0, sc.limit ?? Infinity);
  const chosen = new Set(files);
  const expected = files.length;
  const expectedBytes = files.reduce((a, f) => a + f.bytes, 0);
  const scDir = join(workDir, 'runs', `${name}-${process.pid}`);
  await rm(scDir, { recursive: true, force: true });
  await mkdir(scDir, { recursive: true });
  const origin = await startNginx({ root: corpus.www, probePath: files[0].rel, ...sc.origin });
  const runs = [];
  try {
    const manifests = await writeManifests(corpus, origin.url, join(scDir, 'manifests'), units, (f) => chosen.has(f));
    const list = await writeList(corpus, join(scDir, 'files.txt'), (f) => chosen.has(f));
    const tasks = join(scDir, 'tasks.tsv');
    await writeFile(tasks, files.map((f) => `${f.id}\t${origin.url}/${f.rel}\n`).join(''));
    if (sc.origin.limitConn) await origin.statusCounts();
    const one = async (tool, concurrency, rep) => {
      const runDir = join(destDir, `ferry-bench-run-${process.pid}`);
      await rm(runDir, { recursive: true, force: true });
      await mkdir(runDir, { recursive: true });
      const s3 = sc.dest === 's3' ? await startS3(BUCKET) : null;
      try {
        const dest = join(runDir, 'dest');
        const c = tool.command({ origin: origin.url, manifests, list, tasks, dest, runDir, concurrency, s3, jobs });
        // A tool that cannot be started (not found, not executable) is a failed run of that tool:
        // the other tools' runs stand.
        const m = await runMeasured(c.cmd, c.args, { env: c.env, timeoutMs }).catch((e) => ({ ...NOT_STARTED, startError: e.code ?? e.message, stderr: String(e.message) }));
        const landed = s3 ? await s3.list(tool.destPrefix) : await folderTotals(dest);
        const statuses = sc.origin.limitConn ? await origin.statusCounts() : undefined;
        const r = {
          tool: tool.name,
          concurrency,
          rep,
          seconds: m.seconds,
          cpuSeconds: m.cpuSeconds,
          sampledCpuSeconds: m.sampledCpuSeconds,
          workerCpuSeconds: m.workerCpuSeconds,
          otherCores: m.otherCpuSeconds / m.seconds,
          peakRssMB: m.peakRssBytes / 2 ** 20,
          processes: m.processes,
          code: m.code,
          signal: m.signal,
          startError: m.startError,
          timedOut: m.timedOut,
          expected,
          expectedBytes,
          landed: landed.count,
          landedBytes: landed.bytes,
          allLanded: landed.count === expected && landed.bytes === expectedBytes,
          objectsPerSecond: landed.count / m.seconds,
          mbPerSecond: landed.bytes / 1e6 / m.seconds,
          cpuPer1k: landed.count ? (m.cpuSeconds / landed.count) * 1000 : NaN,
          workerCpuPer1k: landed.count && m.workerCpuSeconds !== undefined ? (m.workerCpuSeconds / landed.count) * 1000 : undefined,
          statuses,
          errorRate: statuses && statuses.total ? (statuses.total - (statuses['200'] ?? 0)) / statuses.total : undefined,
          // Requests being served at once by the origin, from its log (Little's law with the real durations).
          originInFlight: statuses?.inFlight,
        };
        // A failed run keeps what the tool last said, whatever made it fail (rclone -q says nothing).
        r.failure = runFailure(r);
        if (r.failure) r.error = `${r.failure}: ${(m.stderr || m.stdout).trim().split('\n').slice(-5).join(' | ').slice(0, 600) || '(no output)'}`;
        log(
          `  ${name} ${tool.name} c=${concurrency} rep ${rep}: ${r.objectsPerSecond.toFixed(0)}/s, ${r.mbPerSecond.toFixed(1)} MB/s, ` +
            `${r.cpuPer1k.toFixed(2)} CPU-s/1k, RSS ${r.peakRssMB.toFixed(0)} MB, ${r.landed}/${expected} landed, other load ${r.otherCores.toFixed(2)} cores` +
            (r.errorRate !== undefined ? `, ${(r.errorRate * 100).toFixed(1)}% of ${statuses.total} requests refused, ~${(r.originInFlight ?? 0).toFixed(0)} in flight` : '') +
            (r.error ? `, FAILED (${r.error})` : ''),
        );
        runs.push(r);
      } finally {
        await s3?.stop();
        await rm(runDir, { recursive: true, force: true });
      }
    };
    const pass = async (concurrencies) => {
      for (let rep = 1; rep <= reps; rep++) {
        const order = sc.tools.map((_, i) => sc.tools[(i + rep - 1) % sc.tools.length]);
        for (const c of concurrencies) for (const tool of order) await one(tool, c, rep);
      }
    };
    const concurrencies = [...sc.concurrencies];
    await pass(concurrencies);
    // "more if ferry keeps rising": double the top concurrency while ferry gains > 5 %.
    while (sc.extend && concurrencies.length >= 2) {
      const [prev, top] = concurrencies.slice(-2).map((c) => medianOf(runs, 'ferry', c, 'objectsPerSecond'));
      const next = concurrencies.at(-1) * 2;
      if (!(top > prev * 1.05) || next > maxConcurrency) break;
      log(`  ferry still rises at c=${concurrencies.at(-1)} (${prev.toFixed(0)} → ${top.toFixed(0)}/s): adding c=${next}`);
      concurrencies.push(next);
      await pass([next]);
    }
    return { scenario: name, title: sc.title, params: { concurrencies, reps, jobs: jobs ?? 'default', defaultJobs: Object.fromEntries(concurrencies.map((c) => [c, Math.min(defaultJobs(availableParallelism(), c), units?.length ?? corpus.units)])), loopBound: LOOP_BOUND_IN_FLIGHT, expected, expectedBytes, destDir, destFs: fsType(destDir), origin: sc.origin, kneeLimit: sc.kneeLimit, adaptiveOff: sc.adaptiveOff ?? null, dest: sc.dest }, runs };
  } finally {
    await origin.stop();
    await rm(scDir, { recursive: true, force: true });
  }
}

function medianOf(runs, tool, concurrency, key) {
  const v = runs.filter((r) => r.tool === tool && r.concurrency === concurrency && !runFailure(r)).map((r) => r[key]).sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
