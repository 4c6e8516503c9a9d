// Where ferry spends its CPU: one ferry compile of the cpu, s3 and latency scenarios with a
// sampling profiler in each of its processes (cpu-prof.mjs, preloaded through NODE_OPTIONS,
// which the orchestrator passes on to its workers; NODE_OPTIONS refuses --cpu-prof itself),
// then the workers' profiles summed: self time by package or ferry file, the top functions,
// ferry's functions inclusive; and the orchestrator's, summed apart. Not timed against
// anything: profiling slows the run.
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeManifests } from './corpus.mjs';
import { runMeasured } from './measure.mjs';
import { startNginx } from './nginx.mjs';
import { FAKE_AWS, startS3 } from './s3.mjs';
import { defaultDestDir, runDirBytes } from './dest-dir.mjs';

const FERRY = fileURLToPath(new URL('../../bin/ferry.js', import.meta.url));
const PRELOAD = new URL('./cpu-prof.mjs', import.meta.url).href;

/** The area a frame's self time is charged to: an npm package, a ferry file, node's own code, or V8's pseudo-frames. */
function areaOf(url, name) {
  if (!url) return name.startsWith('(') ? name : 'native calls (fs, crypto, sockets…)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 13).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist) return `ferry ${dist[1].replace(/\.js$/, '')}`;
  if (url.startsWith('node:internal')) return 'node internals';
  return url;
}

/** Sums self time over profiles: { totalMs, idleMs, areas: [[name, ms]], functions: [[name, ms]] }. */
export function summarize(profiles) {
  const areas = new Map();
  const functions = new Map();
  const ferryInclusive = new Map();
  let totalMs = 0;
  let idleMs = 0;
  for (const p of profiles) {
    const samples = p.samples.length || 1;
    const msPerSample = (p.endTime - p.startTime) / 1000 / samples;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const hits = new Map();
    for (const s of p.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
    for (const [id, n] of hits) {
      const node = byId.get(id);
      const { functionName, url, lineNumber } = node.callFrame;
      const ms = n * msPerSample;
      const name = functionName || '(anonymous)';
      if (name === '(idle)') {
        idleMs += ms;
        continue;
      }
      totalMs += ms;
      const area = areaOf(url, name);
      areas.set(area, (areas.get(area) ?? 0) + ms);
      const short = url ? `${url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'ferry ').replace(/^file:\/\//, '')}:${lineNumber + 1}` : '';
      const fn = `${name}${short ? ` (${short})` : ''}`;
      functions.set(fn, (functions.get(fn) ?? 0) + ms);
      // Inclusive time of ferry's own functions: each ferry frame on the stack, once.
      const onStack = new Set();
      for (let at = id; at !== undefined; at = parent.get(at)) {
        const f = byId.get(at).callFrame;
        const m = /\/dist\/(.+)\.js$/.exec(f.url);
        if (m) onStack.add(`${f.functionName || '(anonymous)'} (${m[1]}:${f.lineNumber + 1})`);
      }
      for (const k of onStack) ferryInclusive.set(k, (ferryInclusive.get(k) ?? 0) + ms);
    }
  }
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  const sdkMs = [...areas].filter(([a]) => a.startsWith('@aws-sdk/') || a.startsWith('@smithy/')).reduce((a, [, ms]) => a + ms, 0);
  return { totalMs, idleMs, sdkMs, areas: top(areas, 15), functions: top(functions, 15), ferryInclusive: top(ferryInclusive, 15) };
}

/** The profiles cpu-prof.mjs wrote for `role` (worker or orchestrator). */
async function profilesOf(dir, role) {
  const out = [];
  for (const f of await readdir(dir)) {
    if (f.startsWith(`${role}-`) && f.endsWith('.cpuprofile')) out.push(JSON.parse(await readFile(join(dir, f), 'utf8')));
  }
  return out;
}

const PROFILED = [
  { name: 'cpu', concurrency: 64, latencyMs: 0, s3: false },
  { name: 's3', concurrency: 256, latencyMs: 0, s3: true },
  { name: 'latency', concurrency: 1024, latencyMs: 50, s3: false },
];

/** Profiles ferry in the cpu (folder, c=64), s3 (fauxqs, c=256) and latency (+50 ms, c=1024) scenarios. */
export async function profileFerry({ corpus, workDir, destDir = defaultDestDir(workDir, runDirBytes(corpus)).dir, jobs, log }) {
  const dir = join(destDir, `ferry-bench-profile-${process.pid}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const result = {};
  try {
    for (const { name, concurrency, latencyMs, s3: toS3 } of PROFILED) {
      const run = join(dir, name);
      const profDir = join(run, 'prof');
      await mkdir(profDir, { recursive: true });
      const origin = await startNginx({ root: corpus.www, probePath: corpus.files[0].rel, latencyMs });
      const s3 = toS3 ? await startS3('bench') : null;
      try {
        const manifests = await writeManifests(corpus, origin.url, join(run, 'manifests'));
        const args = [FERRY, 'compile', manifests, '--dest', s3 ? 's3://bench/ferry' : join(run, 'dest'), '--out', join(run, 'renewed'), '--work-dir', join(run, 'journal')];
        args.push('--concurrency', String(concurrency), ...(jobs === undefined ? [] : ['--jobs', String(jobs)]), '--allow-private-network', '--progress', 'none');
        if (s3) args.push('--s3-endpoint', s3.endpoint, '--s3-path-style', '--conditional-writes', 'on');
        const env = { ...process.env, ...FAKE_AWS, FERRY_BENCH_PROF_DIR: profDir, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${PRELOAD}`.trim() };
        const m = await runMeasured(process.execPath, args, { env });
        if (m.code !== 0) throw new Error(`profiled ferry failed: ${m.stderr.slice(-500)}`);
        const profiles = await profilesOf(profDir, 'worker');
        const orchestrator = summarize(await profilesOf(profDir, 'orchestrator'));
        result[name] = { concurrency, latencyMs, seconds: m.seconds, objects: corpus.count, workers: profiles.length, ...summarize(profiles), orchestrator };
        const r = result[name];
        log(`  profile ${name}: ${profiles.length} worker profiles, ${(r.totalMs / 1000).toFixed(1)} s of worker CPU sampled; top: ${r.areas.slice(0, 4).map(([a, ms]) => `${a} ${((ms / r.totalMs) * 100).toFixed(0)}%`).join(', ')}`);
      } finally {
        await s3?.stop();
        await origin.stop();
        await rm(run, { recursive: true, force: true });
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return result;
}
