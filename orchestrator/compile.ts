/**
 * `ferry compile`: every selected unit, `--jobs` at a time, each compiled from its
 * manifest into objects (by its worker) and the three outputs (here). A unit already
 * complete for the same source and content options is skipped without a download.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { type Task, encodeTask, isTerminal, workerFlagsToArgv } from '../protocol/index.js';
import { type Place, describePlace, openStore, unitPrefix, uriOf } from '../storage/index.js';
import { type CompileConfig, contentOptions, fingerprint } from './config.js';
import { UnitError } from './errors.js';
import { Journal } from './journal.js';
import { type Counts, unitPaths, writeJsonAtomic, writeOutputs } from './materialize.js';
import { ManifestError, scanManifest } from './parquet/index.js';
import type { Board } from './progress.js';
import { UnitState, outcomeOf, refuseRow } from './state.js';
import { SuperviseError, superviseTasks } from './supervise.js';
import { type Unit, listUnits, selectUnits } from './units.js';

export type UnitReport = { unit: string; status: 'complete' | 'skipped' | 'failed' | 'interrupted'; counts?: Counts; error?: string };

const RunRecord = z.object({ runId: z.string(), startedAt: z.string(), finishedAt: z.string(), sent: z.number() });
export const UnitManifest = z.looseObject({
  ferry: z.literal(1),
  status: z.literal('complete'),
  unit: z.string(),
  source: z.looseObject({ uri: z.string(), path: z.string(), fingerprint: z.string(), rows: z.number() }),
  options: z.record(z.string(), z.union([z.string(), z.number()])),
  optionsFingerprint: z.string(),
  runs: z.array(RunRecord),
});
export type UnitManifest = z.infer<typeof UnitManifest>;

export type RunContext = { runId: string; startedAt: string; workDir: string; board: Board; signal: AbortSignal; concurrencyPerUnit: number };

/** A hash of what decides a migration's outputs, so different migrations never share a journal. */
export function runKey(cfg: CompileConfig): string {
  return fingerprint({ prefix: describePlace(cfg.prefix), out: describePlace(cfg.out), ...contentOptions(cfg) }).slice(0, 16);
}

export async function readUnitManifest(file: string): Promise<UnitManifest | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const r = UnitManifest.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

function outDir(out: Place): string {
  if (out.scheme !== 'file') throw new Error('internal: only folder outputs in this version');
  return out.path;
}

export type JournalFiles = { root: string; events: string; tasks: string };

export function journalFiles(workDir: string, unit: string): JournalFiles {
  const base = path.join(workDir, ...unit.split('/'));
  return { root: workDir, events: `${base}.events`, tasks: `${base}.tasks.tsv` };
}

/** Deletes a unit's journal and tasks (the outputs are the truth now), and the folders they leave empty. */
export async function discardJournal(files: JournalFiles): Promise<void> {
  await fs.rm(files.events, { force: true });
  await fs.rm(files.tasks, { force: true });
  const top = path.dirname(files.root);
  for (let dir = path.dirname(files.events); dir.startsWith(files.root) && dir !== top; dir = path.dirname(dir)) {
    if (!(await fs.rmdir(dir).then(() => true, () => false))) break;
  }
}

/** Reads the manifest's id and url columns: the unit's tasks, and its compile-time refusals. */
async function planUnit(source: string, cfg: CompileConfig): Promise<{ tasks: Task[]; rows: number }> {
  const tasks: Task[] = [];
  const seen = new Set<string>();
  let row = 0;
  const info = await scanManifest(source, { id: cfg.idColumn, url: cfg.urlColumn }, { path: cfg.pathColumn, bad: cfg.badColumn }, (ids, urls) => {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] ?? null;
      const url = urls[i] ?? null;
      if (refuseRow(id, url, ++row, seen) === null) tasks.push({ id: id as string, url: url as string });
    }
  });
  return { tasks, rows: info.rows };
}

/** Runs the given tasks through workers, journaling every fact, until each has its outcome. */
export async function runUnitTasks(
  unit: string,
  pending: Task[],
  state: UnitState,
  journal: Journal,
  cfg: CompileConfig,
  ctx: RunContext,
): Promise<void> {
  const flags = { ...cfg.flags, concurrency: ctx.concurrencyPerUnit };
  const args = ['--dest', uriOf(cfg.dest, ''), '--unit', unit, '--run-id', ctx.runId, ...workerFlagsToArgv(flags)];
  if (pending.length > 0) {
    ctx.board.start(unit, pending.length);
    await superviseTasks(pending, { args, concurrency: flags.concurrency }, {
      onEvent: (e, line) => {
        journal.append(line);
        if (isTerminal(e)) state.set(e.id, outcomeOf(e));
        ctx.board.event(unit, e);
      },
      onProgress: (p) => ctx.board.progress(unit, p),
      onLog: (line) => ctx.board.log(`${unit}: ${line}`),
    }, ctx.signal);
  }
  // No writer of ours is active under the unit now: what killed ones left can go.
  if (!ctx.signal.aborted) await openStore(cfg.dest).cleanup(unitPrefix(unit));
}

export async function compileUnit(unit: Unit, cfg: CompileConfig, ctx: RunContext): Promise<UnitReport> {
  try {
    return await compileUnitOrThrow(unit, cfg, ctx);
  } catch (e) {
    if (e instanceof ManifestError || e instanceof SuperviseError) throw new UnitError(unit.name, e.message);
    const err = e as NodeJS.ErrnoException;
    if (typeof err?.code === 'string' && typeof err.path === 'string') throw new UnitError(unit.name, `cannot write ${err.path}: ${err.code}`);
    throw e;
  }
}

async function compileUnitOrThrow(unit: Unit, cfg: CompileConfig, ctx: RunContext): Promise<UnitReport> {
  const source = path.join((cfg.prefix as { path: string }).path, ...unit.key.split('/'));
  const paths = unitPaths(outDir(cfg.out), unit.name);
  const options = contentOptions(cfg);
  const optionsFingerprint = fingerprint(options);
  const previous = await readUnitManifest(paths.manifest);
  if (!cfg.force && previous && previous.source.fingerprint === unit.version && previous.optionsFingerprint === optionsFingerprint) {
    ctx.board.skip(unit.name);
    return { unit: unit.name, status: 'skipped' };
  }
  const started = new Date().toISOString();
  const files = journalFiles(ctx.workDir, unit.name);
  if (cfg.force) await fs.rm(files.events, { force: true });
  const { tasks, rows } = await planUnit(source, cfg);
  const ids = new Set(tasks.map((t) => t.id));
  const { journal, replayed } = Journal.open(files.events, unit.version);
  try {
    const state = new UnitState();
    for (const e of replayed.events) if (isTerminal(e) && ids.has(e.id)) state.set(e.id, outcomeOf(e));
    await writeTasksFile(files.tasks, tasks);
    const pending = tasks.filter((t) => !state.has(t.id));
    await runUnitTasks(unit.name, pending, state, journal, cfg, ctx);
    journal.flush(true);
    if (ctx.signal.aborted) return { unit: unit.name, status: 'interrupted' };
    const missing = tasks.find((t) => !state.has(t.id));
    if (missing) throw new Error(`internal: task "${missing.id}" has no outcome`);
    const { counts, int96 } = await writeOutputs(source, paths, state, { id: cfg.idColumn, url: cfg.urlColumn, path: cfg.pathColumn, bad: cfg.badColumn });
    await writeJsonAtomic(paths.manifest, {
      ferry: 1,
      status: 'complete',
      unit: unit.name,
      source: { uri: uriOf(cfg.prefix, unit.key), path: source, fingerprint: unit.version, rows },
      outputs: { parquet: path.basename(paths.parquet), ledger: path.basename(paths.ledger) },
      options,
      optionsFingerprint,
      counts: { ...counts, tasks: tasks.length, sentThisRun: pending.length, resumedFromJournal: tasks.length - pending.length },
      int96: { columns: int96.columns, writtenAs: 'INT64 timestamp (microseconds)', subMicrosecondValues: int96.subMicrosecondValues },
      runs: [...(previous?.runs ?? []), { runId: ctx.runId, startedAt: started, finishedAt: new Date().toISOString(), sent: pending.length }],
    });
    journal.close();
    await discardJournal(files);
    ctx.board.done(unit.name, counts);
    return { unit: unit.name, status: 'complete', counts };
  } finally {
    journal.close();
  }
}

async function writeTasksFile(file: string, tasks: Task[]): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const handle = await fs.open(tmp, 'w', 0o600);
  try {
    const chunk: string[] = [];
    for (const t of tasks) {
      chunk.push(encodeTask(t));
      if (chunk.length >= 4096) await handle.write(chunk.splice(0).join(''));
    }
    await handle.write(chunk.join(''));
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
}

export type CompileSummary = { reports: UnitReport[]; runId: string };

/** Compiles the selected units, `--jobs` at a time. A failing unit never stops the others. */
export async function compileAll(cfg: CompileConfig, board: Board, signal: AbortSignal): Promise<CompileSummary> {
  const units = selectUnits(await listUnits(cfg.prefix), cfg.only);
  const runId = randomUUID();
  const workDir = path.resolve(cfg.workDir, runKey(cfg));
  const jobs = Math.min(cfg.jobs, units.length);
  const ctx: RunContext = {
    runId,
    startedAt: new Date().toISOString(),
    workDir,
    board,
    signal,
    concurrencyPerUnit: Math.max(1, Math.floor(cfg.flags.concurrency / jobs)),
  };
  const reports: UnitReport[] = [];
  let next = 0;
  const lane = async () => {
    while (next < units.length && !signal.aborted) {
      const unit = units[next++]!;
      try {
        reports.push(await compileUnit(unit, cfg, ctx));
      } catch (e) {
        if (!(e instanceof UnitError)) throw e;
        board.fail(unit.name, e.message);
        reports.push({ unit: unit.name, status: 'failed', error: e.message });
      }
    }
  };
  await Promise.all(Array.from({ length: jobs }, lane));
  return { reports, runId };
}
