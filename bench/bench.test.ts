/**
 * Smoke test of the benchmark harness (issue 7): the latency scenario on a tiny corpus, one
 * repetition, one concurrency, written under a temp dir. It checks that the harness runs,
 * produces figures for every tool and that every object landed — never how fast: benchmarks
 * are not tests. Runs against the build (`npm test` builds first). nginx and rclone are
 * installed by the harness when missing (root + apt-get); where they cannot be, the scenario
 * is skipped (nginx) or rclone left out, and so is this check.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultDestDir, fsType, runDirBytes } from './lib/dest-dir.mjs';
import { versions } from './lib/setup.mjs';
import { defaultJobsText, markdown, planesText, startupSplit, summarize, targets } from './lib/report.mjs';

const RUN = fileURLToPath(new URL('./run.mjs', import.meta.url));
const OBJECTS = 240;

type Run = { tool: string; concurrency: number; objectsPerSecond: number; mbPerSecond: number; cpuPer1k: number; workerCpuPer1k?: number; peakRssMB: number; landed: number; landedBytes: number; expected: number; expectedBytes: number; allLanded: boolean; code: number };
type Result = { rclone?: boolean; runs: Run[] };

function runBench(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** A run as transfer.mjs records it: every object landed, exit 0. */
const okRun = (tool: string, objects: number, cpuSeconds: number, seconds: number) => ({ tool, concurrency: 64, rep: 1, seconds, cpuSeconds, objectsPerSecond: objects / seconds, cpuPer1k: (cpuSeconds / objects) * 1000, expected: objects, landed: objects, code: 0, expectedBytes: objects * 20_000, landedBytes: objects * 20_000, processes: 1 });

/** A PATH under `dir` whose rclone cannot be started (its interpreter is missing), with the few tools the harness needs. */
async function brokenRclonePath(dir: string): Promise<string> {
  await chmod(dir, 0o755);
  const bin = join(dir, 'bin');
  await mkdir(bin);
  for (const tool of ['sh', 'git', 'stat', 'chmod']) await symlink(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
  await writeFile(join(bin, 'rclone'), '#!/nonexistent/sh\n', { mode: 0o755 });
  return bin;
}

describe('bench harness (smoke)', () => {
  let out = '';
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('runs the latency scenario on a tiny corpus: figures for every tool, every object landed', async (ctx) => {
    out = await mkdtemp(join(tmpdir(), 'ferry-bench-smoke-'));
    await chmod(out, 0o755); // nginx's workers (nobody) must reach the corpus inside
    // Its own work dir: a full bench may be running from bench/out meanwhile.
    const args = ['--quick', '--only', 'latency', '--objects', String(OBJECTS), '--reps', '1', '--concurrency', '32', '--out-dir', out, '--work-dir', join(out, 'work')];
    const { code, output } = await runBench(args);
    const notMeasured = join(out, 'results', 'latency.failed.json');
    if (existsSync(notMeasured)) {
      const { error } = JSON.parse(readFileSync(notMeasured, 'utf8')) as { error: string };
      if (error.startsWith('skipped:')) ctx.skip(`latency scenario ${error}`);
    }
    expect(code, output).toBe(0);
    const result = JSON.parse(readFileSync(join(out, 'results', 'latency.json'), 'utf8')) as Result;
    const tools = result.runs.map((r) => r.tool).sort();
    expect(tools).toEqual(result.rclone ? ['bare', 'ferry', 'rclone'] : ['bare', 'ferry']);
    for (const r of result.runs) {
      expect(r.code, `${r.tool} exit code`).toBe(0);
      expect(r.expected).toBe(OBJECTS);
      expect(r.landed, `${r.tool}: objects landed`).toBe(OBJECTS);
      expect(r.landedBytes, `${r.tool}: bytes landed`).toBe(r.expectedBytes);
      expect(r.allLanded).toBe(true);
      for (const k of ['objectsPerSecond', 'mbPerSecond', 'cpuPer1k', 'peakRssMB'] as const) expect(r[k], `${r.tool} ${k}`).toBeGreaterThan(0);
      // ferry's workers' CPU set apart from its orchestrator's; the other tools have no workers.
      if (r.tool === 'ferry') {
        expect(r.workerCpuPer1k, 'ferry: its workers\' CPU').toBeGreaterThan(0);
        expect(r.workerCpuPer1k!).toBeLessThan(r.cpuPer1k);
      } else expect(r.workerCpuPer1k).toBeUndefined();
    }
    const md = readFileSync(join(out, 'BENCHMARKS.md'), 'utf8');
    expect(md).toContain('## 1. Latency');
    expect(md).toContain('ferry / rclone');
    for (const chart of ['latency-throughput.svg', 'latency-rss.svg']) {
      expect(existsSync(join(out, 'charts', chart))).toBe(true);
      const svg = readFileSync(join(out, 'charts', chart), 'utf8');
      expect(svg.startsWith('<svg ')).toBe(true);
      expect(svg).toContain('<circle');
    }
  }, 120_000);

  it('a tool that cannot start is a failed run of that tool: the others\' runs stand, and the bench exits 1', async (ctx) => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-nostart-'));
    try {
      const bin = await brokenRclonePath(dir);
      const out = join(dir, 'out');
      const args = ['--quick', '--only', 'cpu', '--objects', '8', '--reps', '1', '--tools', 'bare,rclone', '--out-dir', out, '--work-dir', join(dir, 'work')];
      const { code, output } = await runBench(args, { ...process.env, PATH: bin });
      const notMeasured = join(out, 'results', 'cpu.failed.json');
      if (existsSync(notMeasured) && readFileSync(notMeasured, 'utf8').includes('"skipped: nginx')) ctx.skip('cpu scenario skipped: no nginx');
      expect(code, output).toBe(1);
      expect(output).toContain('failed: cpu (1 of 2 runs)');
      const result = JSON.parse(readFileSync(join(out, 'results', 'cpu.json'), 'utf8')) as Result;
      expect(result.runs.map((r) => [r.tool, r.allLanded])).toEqual(expect.arrayContaining([['bare', true], ['rclone', false]]));
      expect(readFileSync(join(out, 'BENCHMARKS.md'), 'utf8')).toContain('- rclone c=64 rep 1: could not start (ENOENT), 0 of 8 objects landed: spawn rclone ENOENT');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it.each([
    [['--reps', '0'], '--reps 0: expected whole numbers ≥ 1'],
    [['--objects', '2k'], '--objects 2k: expected whole numbers ≥ 1'],
    [['--concurrency', '256,'], '--concurrency 256,: expected whole numbers ≥ 1'],
    [['--tools', 'ferry,rclone2'], '--tools ferry,rclone2: expected some of ferry, rclone, bare'],
    [['--repz', '3'], "Unknown option '--repz' (--help lists the options)"],
  ])('refuses %j before running anything (a run of nothing would replace the last results)', async (flags, message) => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-usage-'));
    try {
      const { code, output } = await runBench(['--only', 'latency', ...flags, '--out-dir', dir, '--work-dir', join(dir, 'work')]);
      expect(code).toBe(2);
      expect(output.trim()).toBe(`bench: ${message}`);
      expect(existsSync(join(dir, 'results'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--report without results says so in one line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-usage-'));
    try {
      const { code, output } = await runBench(['--report', '--out-dir', dir]);
      expect(code).toBe(2);
      expect(output.trim()).toBe(`bench: --report: no results under ${join(dir, 'results')} (run some scenarios first)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a scenario that fails keeps its earlier figures, and BENCHMARKS.md says that its last attempt failed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-fail-'));
    try {
      const bin = await brokenRclonePath(dir);
      const out = join(dir, 'out');
      await mkdir(join(out, 'results'), { recursive: true });
      const earlier = { date: '2026-01-01 00:00 UTC', scenario: 'cpu', params: { expected: 8, reps: 1, concurrencies: [64] }, runs: [{ ...okRun('ferry', 8, 0.1, 0.5), rep: 1 }, { ...okRun('rclone', 8, 0.1, 0.25), rep: 1 }] };
      await writeFile(join(out, 'results', 'cpu.json'), JSON.stringify(earlier));
      const args = ['--quick', '--only', 'cpu', '--objects', '8', '--reps', '1', '--tools', 'rclone', '--out-dir', out, '--work-dir', join(dir, 'work')];
      const { code, output } = await runBench(args, { ...process.env, PATH: bin });
      expect(code, output).toBe(1);
      expect(output).toMatch(/failed: cpu/);
      const md = readFileSync(join(out, 'BENCHMARKS.md'), 'utf8');
      expect(md).toMatch(/\*\*Measured nothing in their last attempt\*\*[^\n]*\n- cpu, \d{4}-\d\d-\d\d \d\d:\d\d UTC: (failed: Error: every run failed, the first: rclone c=64: could not start \(ENOENT\)|skipped: nginx)/);
      expect(md).toMatch(/## 2\. CPU[^\n]*measured 2026-01-01 00:00 UTC; \*\*the attempt of [^*]+ failed\*\*/);
      expect(md).toContain('| 3 s3: ferry / rclone objects/s ≥ 1 | not measured | – | the s3 scenario was not run |');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('bench report', () => {
  const run = okRun;
  const machine = { date: '2026-01-01 00:00 UTC', nproc: 2, cpu: 'cpu', memGiB: 4, os: 'linux', loadavg: '0', versions: { node: 'v20', rclone: 'v1.60', nginx: '1.22' }, command: 'npm run bench', commit: 'abc' };

  it('leaves a failed run out of the figures and the verdicts, and says which and why', () => {
    // rclone lands everything yet exits 1 (with -q it says nothing); the bare loop exits 0 one object short.
    const rcloneFailed = { ...run('rclone', 200, 0.1, 0.2), code: 1, error: 'exit 1: (no output)' };
    const bareShort = { ...run('bare', 200, 0.1, 0.4), rep: 2, landed: 199, landedBytes: 199 * 20_000 };
    const runs = [run('ferry', 200, 0.2, 0.5), run('ferry --profile any', 200, 0.2, 0.5), rcloneFailed, run('rclone', 200, 0.1, 0.25), run('bare', 200, 0.1, 0.4), bareShort];
    const rows = summarize(runs);
    const rclone = rows.find((r) => r.tool === 'rclone')!;
    expect(rclone.objectsPerSecond).toBe(800); // the good run's alone
    expect(rclone.failed).toEqual([{ rep: 1, why: 'exit 1: (no output)' }]);
    expect(rows.find((r) => r.tool === 'bare')!.failed).toEqual([{ rep: 2, why: '199 of 200 objects landed' }]);
    expect(summarize([rcloneFailed])[0]!.objectsPerSecond).toBeNaN();

    const results = { machine, cpu: { params: { expected: 200 }, runs } };
    const verdicts = Object.fromEntries(targets(results).map((t) => [t.what, t.verdict]));
    expect(verdicts['2 cpu: ferry / rclone objects/s ≥ 0.9']).toBe('**not valid**: rclone c=64 failed 1 of 2 runs');
    expect(verdicts['2 cpu: ferry CPU per object / bare ≤ 1.25']).toBe('**not valid**: bare c=64 failed 1 of 2 runs');
    const md = markdown(results, { chartsPath: 'charts', command: 'npm run bench' });
    expect(md).toContain('| rclone | 64 | 800 (800–800) |');
    expect(md).toContain('**✗ 1 of 2 runs failed** (left out)');
    expect(md).toContain('- rclone c=64 rep 1: exit 1: (no output)');
    expect(md).toContain('- bare c=64 rep 2: 199 of 200 objects landed');
    expect(md.split('\n').find((l) => l.startsWith('| rclone |'))).not.toContain('✓');
  });

  it('names the ferry a section measured when it is not the one in the header (--only mixes builds)', () => {
    const runs = [run('ferry', 200, 0.2, 0.5), run('bare', 200, 0.1, 0.4)];
    const section = (commit: string) => markdown({ machine, cpu: { date: '2026-01-01 00:00 UTC', commit, params: { expected: 200 }, runs } }, { chartsPath: 'charts', command: 'npm run bench' }).split('\n').find((l) => l.startsWith('## 2. CPU'));
    expect(section('old1234')).toContain('_(measured 2026-01-01 00:00 UTC with ferry at old1234)_');
    expect(section('abc')).toContain('_(measured 2026-01-01 00:00 UTC)_');
  });

  it('says why a target lacks a tool: rclone not installed, a tool left out, or every run of it failed', () => {
    const latency = (runs: ReturnType<typeof run>[], rclone: boolean) => ({ machine, latency: { rclone, params: { expected: 200, concurrencies: [64] }, runs } });
    const detail = (results: Record<string, unknown>) => targets(results).find((t) => t.what.startsWith('1 latency: ferry best / rclone best'))!;
    expect(detail(latency([run('ferry', 200, 0.2, 0.5), run('bare', 200, 0.1, 0.4)], false)).detail).toMatch(/^rclone is not installed and could not be installed\. /);
    expect(detail(latency([run('ferry', 200, 0.2, 0.5), run('bare', 200, 0.1, 0.4)], true)).detail).toMatch(/^rclone did not run \(--tools\)\. /);
    const crashed = detail(latency([run('ferry', 200, 0.2, 0.5), { ...run('rclone', 200, 0.1, 0.4), code: 2 }], true));
    expect(crashed.verdict).toBe('**not valid**: rclone c=64 failed 1 of 1 run');
  });

  it('gives no verdict on a target set at a size from a smaller (--quick) run', () => {
    const control = (events: number, rows: number) => ({ control: { events: { events, parseAndJournalPerSecond: 900_000 }, parquet: { rows, renewSeconds: 4, peakRssMB: 400 } } });
    const verdicts = (results: Record<string, unknown>) => targets(results).filter((t) => t.what.startsWith('5 ')).map((t) => t.verdict);
    expect(verdicts(control(1_000_000, 2_000_000))).toEqual(['met', 'met', 'met']);
    expect(verdicts(control(100_000, 200_000))).toEqual([
      '– (measured on 100,000 events; the target is for 1,000,000 events)',
      '– (measured on 200,000 rows; the target is for 2,000,000 rows)',
      '– (measured on 200,000 rows; the target is for 2,000,000 rows)',
    ]);
  });

  it('judges the latency RSS target at 1,024 in flight only', () => {
    const at = (c: number) => ({ ...run('ferry', 200, 0.2, 0.5), concurrency: c, peakRssMB: 400 });
    const rclone = (c: number) => ({ ...run('rclone', 200, 0.2, 0.5), concurrency: c, peakRssMB: 100 });
    const rss = (cs: number[]) => targets({ latency: { rclone: true, params: { expected: 200, concurrencies: cs }, runs: cs.flatMap((c) => [at(c), rclone(c)]) } }).find((t) => t.what.startsWith('1 latency: ferry RSS'))!;
    expect(rss([64]).verdict).toBe('– (measured on c=64; the target is for c=1024)');
    expect(rss([256, 1024, 2048])).toMatchObject({ what: '1 latency: ferry RSS / rclone RSS at c=1024 ≤ 0.25', verdict: '**not met** (1500 % over)' });
  });

  it('heads a section with the concurrency and the repetitions it ran (--quick runs s3 at 64, not 256)', () => {
    const runs = [run('ferry', 200, 0.2, 0.5), run('rclone', 200, 0.1, 0.4)];
    const md = markdown({ machine, s3: { params: { expected: 200, concurrencies: [64], reps: 1 }, runs }, cpu: { params: { expected: 200, concurrencies: [64], reps: 3 }, runs } }, { chartsPath: 'charts', command: 'npm run bench' });
    expect(md).toContain('## 3. S3: no added latency, concurrency 64, to fauxqs');
    // Each section says how many repetitions its medians are of: --only mixes runs of other options.
    expect(md).toMatch(/## 3\. S3[^\n]*\n200 objects, 1 repetition\.\n/);
    expect(md).toMatch(/## 2\. CPU[^\n]*\n200 objects, 3 repetitions\.\n/);
    expect(md).toContain('| 400 vs 500/s at c=64;');
  });

  it('sets each tool\'s start-up apart from its CPU per object beyond it', () => {
    const results = {
      cpu: { params: { expected: 20_000 }, runs: [run('ferry', 20_000, 6.2, 4.1), run('ferry', 20_000, 6.0, 4.0), run('ferry', 20_000, 6.4, 4.3), run('bare', 20_000, 4.3, 3.1)] },
      startup: { params: { expected: 200 }, runs: [run('ferry', 200, 1.0, 0.6), run('ferry', 200, 1.2, 0.7), run('ferry', 200, 1.1, 0.5), run('bare', 200, 0.34, 0.25)] },
    };
    const split = startupSplit(results);
    expect(split.map((r) => r.tool)).toEqual(['ferry', 'bare']);
    const [ferry, bare] = split;
    // medians: ferry 6.2 CPU-s for 20,000, 1.1 for 200; the bare loop 4.3 and 0.34
    expect(ferry).toMatchObject({ startupCpu: 1.1, startupSeconds: 0.6, objects: 200 });
    expect(ferry!.beyondPer1k).toBeCloseTo(((6.2 - 1.1) / 19_800) * 1000, 10);
    expect(bare!.beyondPer1k).toBeCloseTo(((4.3 - 0.34) / 19_800) * 1000, 10);
    expect(startupSplit({ cpu: results.cpu })).toEqual([]);
  });

  it('splits ferry\'s CPU per object between its workers and its orchestrator, against the bare loop', () => {
    const rows = [
      { tool: 'ferry', cpuPer1k: 0.24, workerCpuPer1k: 0.18 },
      { tool: 'ferry --profile any', cpuPer1k: 0.22, workerCpuPer1k: 0.16 },
      { tool: 'rclone', cpuPer1k: 0.3 },
    ];
    expect(planesText(rows, { cpuPer1k: 0.2 })).toBe(
      '\nBy process (the workers\' CPU from /proc, the orchestrator\'s the rest; medians): ferry: its workers 0.18 CPU-s per 1k (0.90× the bare loop\'s), its orchestrator 0.06 (0.30×); ferry --profile any: its workers 0.16 CPU-s per 1k (0.80× the bare loop\'s), its orchestrator 0.06 (0.30×).\n',
    );
    expect(planesText([{ tool: 'ferry', cpuPer1k: 0.24 }], { cpuPer1k: 0.16 })).toBe('');
    expect(planesText(rows, undefined)).toBe('');
  });

  it('says which --jobs ferry\'s default gave in each scenario, as the runs recorded it', () => {
    const params = (defaultJobs: Record<number, number>) => ({ params: { jobs: 'default', loopBound: 512, defaultJobs } });
    expect(defaultJobsText({ latency: params({ 256: 1, 512: 2, 1024: 2 }), cpu: params({ 64: 1 }), knee: params({ 256: 1, 512: 1 }) })).toBe(
      'CPU count − 1 (at least 1), and one more, up to the CPU count and the units, when that leaves 512 or more requests in flight per worker (one worker\'s event loop is the limit there, not the cores): here latency 1 at c = 256, 2 at c = 512, 1024; cpu 1; knee 1',
    );
    expect(defaultJobsText({ cpu: { params: { jobs: 3 } } })).toBe('CPU count − 1 (at least 1)');
  });
});

describe('bench destination dir', () => {
  it('writes under /dev/shm only when a run fits there, else under the work dir', (ctx) => {
    if (fsType('/dev/shm') !== 'tmpfs') ctx.skip('no tmpfs at /dev/shm');
    expect(defaultDestDir('/work', 1)).toMatchObject({ dir: '/dev/shm' });
    // A corpus bigger than what /dev/shm has free (a container's /dev/shm is 64 MB): every run would fail.
    const tooBig = defaultDestDir('/work', Number.MAX_SAFE_INTEGER);
    expect(tooBig.dir).toBe('/work');
    expect(tooBig.why).toMatch(/^\/dev\/shm has [\d,]+ MiB free, a run needs [\d,]+ MiB$/);
  });

  it('counts what a run writes in whole pages, with room for ferry\'s Parquet and journals', () => {
    expect(runDirBytes({ files: [{ bytes: 1 }, { bytes: 4097 }] })).toBe((4096 + 8192) * 1.25 + 64 * 2 ** 20);
  });
});

describe('bench machine line', () => {
  it('says a tool\'s version is unknown when it is on PATH but cannot start, instead of a blank', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'ferry-bench-path-'));
    const path = process.env.PATH;
    try {
      await symlink(execFileSync('sh', ['-c', 'command -v sh'], { encoding: 'utf8' }).trim(), join(bin, 'sh'));
      await writeFile(join(bin, 'rclone'), '#!/nonexistent/sh\n', { mode: 0o755 });
      process.env.PATH = bin;
      expect(versions().rclone).toBe('unknown (ENOENT)');
    } finally {
      process.env.PATH = path;
      await rm(bin, { recursive: true, force: true });
    }
  });
});
