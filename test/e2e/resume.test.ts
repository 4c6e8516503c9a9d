/**
 * Crash-proofing, broken for real: the orchestrator and its workers killed with SIGKILL
 * mid-run (together, the orchestrator alone, a worker alone), and SIGINT. Each time the
 * next run must end with the same outputs and objects as a run never interrupted, and the
 * rework must stay bounded by what was in flight.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { writerTag } from '../../storage/process.js';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, ferry, ferrySpawn, startOrigin } from '../helpers/run.js';

const N = 120;
const CONCURRENCY = 8;
let dir: string;
let origin: Origin;
let db: Awaited<ReturnType<typeof duck>>;

const layout = (name: string) => ({ dest: path.join(dir, name, 'objects'), out: path.join(dir, name, 'out'), work: path.join(dir, name, 'work') });
const args = (name: string) => {
  const l = layout(name);
  return ['compile', path.join(dir, 'manifests'), '--dest', l.dest, '--out', l.out, '--work-dir', l.work, '--allow-private-network', '--concurrency', String(CONCURRENCY), '--jobs', '1', '--progress', 'none', '--retries', '1'];
};

/** What a run leaves behind, made comparable across destinations. */
async function snapshot(name: string) {
  const l = layout(name);
  const rows = await db.rows(`SELECT id, replace(updated_media_path, 'file://${l.dest}', '') AS p, bad_image FROM '${path.join(l.out, 'm.parquet')}'`);
  const ledger = parseLedger(await fs.readFile(path.join(l.out, 'm.ledger.tsv'), 'utf8')).map((r) => `${r.id}:${r.reason}`);
  const objects: string[] = [];
  for (const f of (await fs.readdir(l.dest, { recursive: true, withFileTypes: true })).filter((e) => e.isFile())) {
    const abs = path.join(f.parentPath, f.name);
    objects.push(`${path.relative(l.dest, abs)}:${createHash('sha256').update(await fs.readFile(abs)).digest('hex')}`);
  }
  return { rows, ledger, objects: objects.sort() };
}

async function eventsJournaled(name: string): Promise<number> {
  const work = layout(name).work;
  let n = 0;
  for (const f of await fs.readdir(work, { recursive: true }).catch(() => [] as string[])) {
    if (String(f).endsWith('.events')) n += (await fs.readFile(path.join(work, String(f)), 'utf8')).split('\n').filter((l) => l.startsWith('UP_OK')).length;
  }
  return n;
}

async function until(cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function workerPids(dest: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `worker --tasks=- --dest ${new URL('file://' + dest).href}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-resume-'));
  await fs.mkdir(path.join(dir, 'origin'));
  await fs.mkdir(path.join(dir, 'manifests'));
  const img = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer();
  await fs.writeFile(path.join(dir, 'origin', 'a.png'), img);
  await fs.writeFile(path.join(dir, 'origin', 'half.png'), img.subarray(0, 50));
  origin = await startOrigin(path.join(dir, 'origin'));
  db = await duck();
  const values = Array.from({ length: N }, (_, i) => {
    const file = i % 10 === 3 ? 'half.png' : 'a.png';
    const url = i % 17 === 5 ? `${origin.url}/status/404/r${i}` : `${origin.url}/file/r${i}/${file}?delay=30`;
    return `(${lit(`r-${i}`)}, ${lit(url)}, ${i})`;
  }).join(',');
  await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path, n)) TO '${path.join(dir, 'manifests', 'm.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 16)`);
  const base = await ferry(args('baseline'));
  expect(base.code, base.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  db?.close();
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('resume after SIGKILL', () => {
  it('orchestrator and workers killed together, three times, end as an uninterrupted run', async () => {
    const before = await origin.stats();
    for (let kill = 1; kill <= 3; kill++) {
      const child = ferrySpawn(args('killed'));
      await until(async () => (await eventsJournaled('killed')) >= kill * 25);
      process.kill(-child.pid!, 'SIGKILL');
      await once(child, 'exit');
    }
    const last = await ferry(args('killed'));
    expect(last.code, last.stderr).toBe(0);
    expect(await snapshot('killed')).toEqual(await snapshot('baseline'));
    const after = await origin.stats();
    const redone = Object.keys(after).reduce((sum, k) => sum + (after[k]! - (before[k] ?? 0)), 0);
    // Every task once, plus at most what was in flight at each kill (a window of 2 × concurrency, and a flush interval).
    expect(redone).toBeLessThanOrEqual(N + 2 * 3 * 2 * CONCURRENCY);
    const leftovers = (await fs.readdir(layout('killed').dest, { recursive: true })).filter((f) => String(f).includes('ferry-tmp'));
    expect(leftovers).toEqual([]);
    // (toContain compares with ===: an asymmetric matcher inside it matches nothing.)
    expect((await fs.readdir(layout('killed').work, { recursive: true })).map(String).filter((f) => f.endsWith('.events'))).toEqual([]);
  }, 120_000);

  it('a worker whose orchestrator is killed exits by itself', async () => {
    const child = ferrySpawn(args('orphan'));
    await until(async () => (await eventsJournaled('orphan')) >= 10);
    const workers = workerPids(layout('orphan').dest);
    expect(workers.length).toBeGreaterThan(0);
    process.kill(child.pid!, 'SIGKILL'); // the orchestrator alone
    await until(async () => workerPids(layout('orphan').dest).length === 0, 5_000);
    const last = await ferry(args('orphan'));
    expect(last.code, last.stderr).toBe(0);
    expect(await snapshot('orphan')).toEqual(await snapshot('baseline'));
  }, 60_000);

  it('a worker killed under a live orchestrator is respawned, and no task is ledgered for it', async () => {
    const child = ferrySpawn(args('workerkill'));
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await until(async () => (await eventsJournaled('workerkill')) >= 10);
    for (const pid of workerPids(layout('workerkill').dest)) process.kill(pid, 'SIGKILL');
    const [code] = (await once(child, 'exit')) as [number];
    expect(code, stderr).toBe(0);
    const snap = await snapshot('workerkill');
    expect(snap.ledger.filter((l) => l.includes('WORKER_CRASH'))).toEqual([]);
    expect(snap).toEqual(await snapshot('baseline'));
  }, 60_000);

  it('SIGINT stops gracefully, says how to resume, and the resume completes', async () => {
    const child = ferrySpawn(args('sigint'));
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await until(async () => (await eventsJournaled('sigint')) >= 10);
    process.kill(child.pid!, 'SIGINT');
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(130);
    expect(stderr).toContain('Run the same command again to resume');
    expect(workerPids(layout('sigint').dest)).toEqual([]);
    const last = await ferry(args('sigint'));
    expect(last.code, last.stderr).toBe(0);
    expect(await snapshot('sigint')).toEqual(await snapshot('baseline'));
    // Both runs contributed objects: manifest.json lists both, the interrupted one as such.
    const { runs } = JSON.parse(await fs.readFile(path.join(layout('sigint').out, 'm.manifest.json'), 'utf8')) as { runs: Record<string, unknown>[] };
    expect(runs).toHaveLength(2);
    expect(runs[0]).toMatchObject({ interrupted: true, outcomes: expect.any(Number) });
    expect(Number(runs[0]!.outcomes)).toBeGreaterThanOrEqual(10);
    expect(runs[1]).toMatchObject({ finishedAt: expect.any(String), sent: N - Number(runs[0]!.outcomes) });
  }, 60_000);
});

describe('a stopped worker', () => {
  it('SIGINT while a worker is stopped (SIGSTOP) still stops at once, leaving no worker behind; the resume completes', async () => {
    // A stopped process keeps a SIGTERM pending: the run's stop waited for it for ever.
    const child = ferrySpawn(args('stopped'));
    await until(async () => (await eventsJournaled('stopped')) >= 10);
    const workers = workerPids(layout('stopped').dest);
    expect(workers.length).toBeGreaterThan(0);
    for (const pid of workers) process.kill(pid, 'SIGSTOP');
    process.kill(child.pid!, 'SIGINT');
    expect((await once(child, 'exit'))[0]).toBe(130);
    await until(async () => workerPids(layout('stopped').dest).length === 0);
    const last = await ferry(args('stopped'));
    expect(last.code, last.stderr).toBe(0);
    expect(await snapshot('stopped')).toEqual(await snapshot('baseline'));
  }, 60_000);
});

describe('interrupted recompiles, shared work dirs, manifests that change', () => {
  const manifestOf = async (name: string) => JSON.parse(await fs.readFile(path.join(layout(name).out, 'm.manifest.json'), 'utf8')) as { counts: { resumedFromJournal: number } };

  it('SIGINT during --force, then the same command again: it resumes from the journal', async () => {
    const first = await ferry(args('forced'));
    expect(first.code, first.stderr).toBe(0);
    const child = ferrySpawn([...args('forced'), '--force']);
    await until(async () => (await eventsJournaled('forced')) >= 10);
    process.kill(child.pid!, 'SIGINT');
    expect((await once(child, 'exit'))[0]).toBe(130);
    const again = await ferry([...args('forced'), '--force']);
    expect(again.code, again.stderr).toBe(0);
    expect((await manifestOf('forced')).counts.resumedFromJournal).toBeGreaterThanOrEqual(10);
    expect(await snapshot('forced')).toEqual(await snapshot('baseline'));
  }, 60_000);

  it('a journal left by the runs a complete unit lists (killed after publishing) is removed, and --force fetches again', async () => {
    const name = 'finished-journal';
    const child = ferrySpawn(args(name));
    await until(async () => (await eventsJournaled(name)) >= 10);
    process.kill(-child.pid!, 'SIGKILL');
    await once(child, 'exit');
    const events = (await fs.readdir(layout(name).work, { recursive: true })).map(String).find((f) => f.endsWith('.events'))!;
    const journal = path.join(layout(name).work, events);
    const killedRuns = await fs.readFile(journal);
    const done = await ferry(args(name));
    expect(done.code, done.stderr).toBe(0);
    // What the run that completed the unit leaves when killed between publishing its outputs and
    // removing its journal: a journal of runs that manifest.json lists (here, the killed one).
    const leave = async () => {
      await fs.mkdir(path.dirname(journal), { recursive: true });
      await fs.writeFile(journal, killedRuns, { mode: 0o600 });
    };
    await leave();
    const skipped = await ferry(args(name));
    expect(skipped.code, skipped.stderr).toBe(0);
    expect((await fs.readdir(layout(name).work, { recursive: true })).map(String).filter((f) => f.endsWith('.events'))).toEqual([]);
    await leave();
    const forced = await ferry([...args(name), '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    const m = (await manifestOf(name)) as unknown as { counts: Record<string, number>; runs: { runId: string }[] };
    expect(m.counts).toMatchObject({ resumedFromJournal: 0, sentThisRun: N });
    expect(new Set(m.runs.map((r) => r.runId)).size).toBe(m.runs.length);
    expect(await snapshot(name)).toEqual(await snapshot('baseline'));
  }, 60_000);

  it('a task file that a --force run killed while planning a complete unit left, without a journal, is removed by the next run', async () => {
    const name = 'planned-only';
    const first = await ferry(args(name));
    expect(first.code, first.stderr).toBe(0);
    const files = async () => (await fs.readdir(layout(name).work, { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
    const forced = ferrySpawn([...args(name), '--force']);
    await until(async () => (await files()).some((f) => f.endsWith('.tasks.tsv')));
    process.kill(-forced.pid!, 'SIGKILL');
    await once(forced, 'exit');
    // Killed before it opened the unit's journal: its task file alone (a journal it began would
    // be an interrupted run's, kept to be resumed).
    for (const f of await files()) if (f.endsWith('.events')) await fs.rm(f);
    expect((await files()).filter((f) => f.endsWith('.tasks.tsv'))).toHaveLength(1);
    const skipped = await ferry(args(name));
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stderr).toContain('1 already complete');
    expect(await files()).toEqual([]);
    expect(await snapshot(name)).toEqual(await snapshot('baseline'));
  }, 60_000);

  it('a recompile whose outputs fail to publish leaves no manifest.json saying complete', async () => {
    const first = await ferry(args('republish'));
    expect(first.code, first.stderr).toBe(0);
    const parquet = path.join(layout('republish').out, 'm.parquet');
    await fs.rm(parquet);
    await fs.mkdir(parquet); // the Parquet cannot be written over a folder
    const forced = await ferry([...args('republish'), '--force']);
    expect(forced.code).toBe(1);
    await expect(fs.stat(path.join(layout('republish').out, 'm.manifest.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.rmdir(parquet);
    const again = await ferry(args('republish')); // not skipped: it is not complete
    expect(again.code, again.stderr).toBe(0);
    expect(await snapshot('republish')).toEqual(await snapshot('baseline'));
  }, 60_000);

  it("a run that completes a unit removes what a publish killed midway left under --out", async () => {
    const out = layout('killed-publish').out;
    await fs.mkdir(path.join(out, '.ferry-tmp'), { recursive: true });
    // What a publish SIGKILLed while copying the renewed Parquet leaves: its temporary file (its writer's pid is no process's).
    await fs.writeFile(path.join(out, '.ferry-tmp', `m.parquet.${writerTag(4_194_305)}-0.tmp`), 'PAR1 half a file');
    const run = await ferry(args('killed-publish'));
    expect(run.code, run.stderr).toBe(0);
    expect((await fs.readdir(out)).sort()).toEqual(['m.ledger.tsv', 'm.manifest.json', 'm.parquet']);
    expect(await snapshot('killed-publish')).toEqual(await snapshot('baseline'));
  }, 60_000);

  it('two compiles sharing a work dir both complete, and leave no staging behind', async () => {
    const a = ferrySpawn(args('shared'));
    const exited = once(a, 'exit'); // it may end while the other runs
    let stderr = '';
    a.stderr!.on('data', (d) => (stderr += d));
    await until(async () => (await eventsJournaled('shared')) >= 5);
    const b = await ferry(args('shared'));
    expect(b.code, b.stderr).toBe(0);
    expect((await exited)[0], stderr).toBe(0);
    expect(stderr).not.toContain('internal error');
    expect(await snapshot('shared')).toEqual(await snapshot('baseline'));
    expect(await fs.readdir(layout('shared').work, { recursive: true })).toEqual([]);
  }, 60_000);

  it('a manifest replaced while its unit compiles fails that unit, naming it; the next run compiles the new file', async () => {
    const folder = path.join(dir, 'changing-manifests');
    await fs.mkdir(folder);
    const file = path.join(folder, 'm.parquet');
    await fs.copyFile(path.join(dir, 'manifests', 'm.parquet'), file);
    const run = () => ['compile', folder, ...args('changing').slice(2)];
    const child = ferrySpawn(run());
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await until(async () => (await eventsJournaled('changing')) >= 10);
    await db.run(`COPY (SELECT * FROM '${path.join(dir, 'manifests', 'm.parquet')}' UNION ALL SELECT 'extra', ${lit(`${origin.url}/file/extra/a.png`)}, ${N}) TO '${file}.new' (FORMAT parquet)`);
    await fs.rename(`${file}.new`, file);
    expect((await once(child, 'exit'))[0], stderr).toBe(1);
    expect(stderr).toContain(`${file} changed while its unit was compiled: run the command again to compile the new file (its rows are fetched again;`);
    expect(stderr).not.toContain('not fetched again'); // what it once promised, though the journal of the old file is discarded
    expect(stderr).not.toContain('internal error');
    const again = await ferry(run());
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`m: the journal of an interrupted run is for another version of ${pathToFileURL(file).href}: every task is sent again`);
    const m = JSON.parse(await fs.readFile(path.join(layout('changing').out, 'm.manifest.json'), 'utf8')) as { counts: Record<string, number> };
    expect(m.counts).toMatchObject({ resumedFromJournal: 0, sentThisRun: N + 1 });
    const rows = await db.rows(`SELECT count(*)::INTEGER AS n, count(updated_media_path)::INTEGER AS migrated FROM '${path.join(layout('changing').out, 'm.parquet')}' WHERE id = 'extra'`);
    expect(rows).toEqual([{ n: 1, migrated: 1 }]);
  }, 60_000);
});
