/**
 * `ferry compile`: every selected unit, `--jobs` at a time, each compiled from its
 * manifest into objects (by its worker) and the three outputs (here). A unit already
 * complete for the same source and content options is skipped without a download.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { type Event, type TerminalEvent, isTerminal, workerFlagsToArgv } from '../protocol/index.js';
import { StorageError, type TaskIds, describePlace, objectUrlScheme, unitKeyOwner, unitPrefix, uriOf } from '../storage/index.js';
import { type CompileConfig, contentOptions, fingerprint } from './config.js';
import { UnitError } from './errors.js';
import { type Stores, checkWorkDir, checkWritable, localCopy } from './io.js';
import { type EarlierRun, Journal, discardFinishedJournal, discardJournal, journalFiles, stagingDir, tidyWorkDir } from './journal.js';
import { type Counts, stagedFiles, writeOutputs } from './materialize.js';
import { ManifestError, scanManifest } from './parquet/index.js';
import type { Board, Resumed } from './progress.js';
import { UnitRows } from './state.js';
import { SuperviseError, TaskQueue, WorkerPool, superviseTasks } from './supervise.js';
import { type TaskFileReader, TaskFileWriter } from './task-file.js';
import { type UnitManifest, outputKeys, publishOutputs, readUnitManifest } from './unit-manifest.js';
import { type Unit, checkOutputsOutsidePrefix, listUnits, selectUnits, unitNameProblem } from './units.js';

export type UnitReport = {
  unit: string;
  status: 'complete' | 'skipped' | 'failed' | 'interrupted';
  counts?: Counts;
  /** a skipped unit's ledger rows, from its manifest.json */
  ledgerRows?: number;
  error?: string;
};

export type RunContext = {
  runId: string;
  workDir: string;
  /** where manifests and outputs are staged as local files */
  staging: string;
  stores: Stores;
  board: Board;
  signal: AbortSignal;
  concurrencyPerUnit: number;
  /** the run's worker processes, reused from unit to unit */
  workers: WorkerPool;
};

/** A hash of what decides a migration's outputs, so different migrations never share a journal. */
export function runKey(cfg: CompileConfig): string {
  return fingerprint({ prefix: describePlace(cfg.prefix), out: describePlace(cfg.out), ...contentOptions(cfg) }).slice(0, 16);
}

/**
 * Reads the manifest's id and url columns: the unit's rows judged (its ids, its compile-time
 * refusals), and its tasks written to `tasksFile` as they are found.
 */
async function planUnit(
  source: string,
  cfg: CompileConfig,
  tasksFile: string,
): Promise<{ unitRows: UnitRows; rows: number; tasks: TaskFileReader; stores: Set<'s3' | 'gs'> }> {
  const unitRows = new UnitRows();
  const writer = await TaskFileWriter.create(tasksFile);
  const stores = new Set<'s3' | 'gs'>();
  try {
    const info = await scanManifest(source, { id: cfg.idColumn, url: cfg.urlColumn }, { path: cfg.pathColumn, bad: cfg.badColumn }, async (ids, urls) => {
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] ?? null;
        const url = urls[i] ?? null;
        if (unitRows.judge(id, url) !== null) continue;
        await writer.add({ id: id as string, url: url as string });
        const scheme = objectUrlScheme(url as string);
        if (scheme) stores.add(scheme);
      }
    });
    const tasks = await writer.commit();
    unitRows.planned();
    return { unitRows, rows: info.rows, tasks, stores };
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

/**
 * Fails the unit before any task is sent when its s3:// (or gs://) URLs cannot be fetched at
 * all: with no credentials every one of them would be ledgered FORBIDDEN, a permanent
 * reason, and the unit completed, so a run with credentials would skip it. This is the
 * run's setup to fix, said once, and a run that has it then compiles the unit.
 */
export async function checkSourceCredentials(stores: ReadonlySet<'s3' | 'gs'>, cfg: CompileConfig, ctx: RunContext): Promise<void> {
  for (const scheme of stores) {
    const problem = await ctx.stores.readCredentials(scheme, scheme === 's3' ? cfg.flags.s3NoSignRequest : cfg.flags.gcsNoSignRequest);
    if (problem) throw new StorageError('FORBIDDEN', `${problem.message}: ${CREDENTIALS_FIX[scheme]}`);
  }
}

/** What gives a run the credentials of a scheme, or reads public buckets without. */
const CREDENTIALS_FIX = {
  s3: 'give the run AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, SSO, a role), or pass --s3-no-sign-request to read public buckets unsigned',
  gs: 'give the run Google credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login, a service account), or pass --gcs-no-sign-request to read public buckets without',
} as const;

/** The flags of every worker of a run: the same for each unit, so one process serves them all. */
function workerArgs(cfg: CompileConfig, ctx: RunContext): string[] {
  const flags = { ...cfg.flags, concurrency: ctx.concurrencyPerUnit };
  // PROGRESS every second (the worker's default is 5 s): the board's `conc` follows it.
  return ['--dest', uriOf(cfg.dest, ''), '--run-id', ctx.runId, '--progress-interval', '1000', ...workerFlagsToArgv(flags)];
}

/**
 * Runs `pending.count` tasks through workers, journaling every fact, until each has its
 * outcome; `onOutcome` sees each terminal event with the journal offset of its line.
 * `resumed` are the unit's tasks that earlier runs finished (from the journal):
 * the progress board counts them done, out of all of them.
 */
export async function runUnitTasks(
  unit: string,
  pending: { queue: TaskQueue; count: number },
  journal: Journal,
  cfg: CompileConfig,
  ctx: RunContext,
  resumed: Resumed,
  onOutcome: (e: TerminalEvent, at: number) => void,
  taskIds: TaskIds,
): Promise<void> {
  if (pending.count > 0) {
    ctx.board.start(unit, resumed.done + pending.count, resumed);
    await superviseTasks(pending.queue, { args: workerArgs(cfg, ctx), concurrency: ctx.concurrencyPerUnit, unit }, {
      onEvent: (e, line) => {
        const at = journal.append(line);
        if (isTerminal(e)) onOutcome(e, at);
        ctx.board.event(unit, e);
      },
      onProgress: (p, worker) => ctx.board.progress(unit, p, worker),
      onLog: (line) => ctx.board.log(`${unit}: ${line}`),
    }, ctx.signal, ctx.workers);
  }
  // No writer of ours is active under the unit now: what killed ones left of its tasks' objects can go.
  if (ctx.signal.aborted) return;
  const note = await (await ctx.stores.get(cfg.dest)).cleanup(unitPrefix(unit) + '/', unitKeyOwner(unit, taskIds));
  if (note) ctx.board.log(`${unit}: ${note}`);
}

export async function compileUnit(unit: Unit, cfg: CompileConfig, ctx: RunContext): Promise<UnitReport> {
  const sourceUri = uriOf(cfg.prefix, unit.key);
  try {
    return await compileUnitOrThrow(unit, sourceUri, cfg, ctx);
  } catch (e) {
    throw asUnitError(e, unit.name, sourceUri);
  }
}

/**
 * A unit's own failure (its manifest unreadable, its workers unable to start, a store or the
 * work dir refusing a write) as a UnitError naming it; anything else is returned as it is.
 */
export function asUnitError(e: unknown, unit: string, sourceUri: string): unknown {
  if (e instanceof ManifestError) return new UnitError(unit, e.message.replace(e.file, sourceUri));
  if (e instanceof SuperviseError) return new UnitError(unit, e.message);
  if (e instanceof StorageError) {
    // A folder --out refusing a file name made from the unit's name (its temporary file's, the
    // longest) is the same failure as the work dir's below, and says the same.
    const cause = e.cause as NodeJS.ErrnoException | undefined;
    if (cause?.code === 'ENAMETOOLONG' && typeof cause.path === 'string') return asUnitError(cause, unit, sourceUri);
    return new UnitError(unit, e.message);
  }
  // A file-system error (a full or read-only work dir, a folder removed): the unit's too.
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code !== 'string' || !/^E[A-Z]+$/.test(err.code)) return e;
  if (typeof err.path !== 'string') return new UnitError(unit, err.message);
  // The unit's name makes its files' names (outputs, journal, staging): one too long for the file system is the manifest's to shorten.
  const why = err.code === 'ENAMETOOLONG' ? ' (a file name longer than the file system allows: rename the manifest)' : '';
  return new UnitError(unit, `cannot write ${err.path}: ${err.code}${why}`);
}

/**
 * What a unit's manifest.json says of it: its outputs as they stand (`previous`), and whether
 * they are this compile's already (`skip`: then its ledger rows, which still count for
 * --strict: a re-run must not pass a gate the first failed).
 */
async function unitStanding(unit: Unit, cfg: CompileConfig, optionsFingerprint: string, stores: Stores, workDir: string): Promise<{ previous: UnitManifest | null; skip: number | null }> {
  const previous = await readUnitManifest(await stores.get(cfg.out), unit.name, cfg.flags.timeout);
  const complete = previous?.status === 'complete';
  // A complete unit has no journal, unless the run that completed it was killed after
  // publishing: that one is not an interrupted run's, and is not resumed from.
  if (complete) await discardFinishedJournal(journalFiles(workDir, unit.name), unit.version, previous.runs);
  if (cfg.force || !complete || previous.source.fingerprint !== unit.version || previous.optionsFingerprint !== optionsFingerprint) return { previous, skip: null };
  const failed = Number((previous.counts as Record<string, unknown>).failed ?? 0);
  return { previous, skip: Number.isFinite(failed) ? failed : 0 };
}

/** A unit skipped as complete (unitStanding). */
function skipped(unit: Unit, ledgerRows: number, board: Board): UnitReport {
  board.skip(unit.name);
  return { unit: unit.name, status: 'skipped', ledgerRows };
}

async function compileUnitOrThrow(unit: Unit, sourceUri: string, cfg: CompileConfig, ctx: RunContext): Promise<UnitReport> {
  const problem = unit.unreadable ?? unitNameProblem(unit.name);
  if (problem) throw new UnitError(unit.name, `${sourceUri}: ${problem}`);
  const out = await ctx.stores.get(cfg.out);
  const options = contentOptions(cfg);
  const optionsFingerprint = fingerprint(options);
  const { previous, skip } = await unitStanding(unit, cfg, optionsFingerprint, ctx.stores, ctx.workDir);
  if (skip !== null) return skipped(unit, skip, ctx.board);
  // Another migration's unit of the same name (its manifests elsewhere, one --out for both):
  // compiling this one would replace its outputs, the only record of where its objects went.
  if (previous && !cfg.force && previous.source.uri !== sourceUri) {
    throw new UnitError(unit.name, `${describePlace(cfg.out)} holds the outputs of unit ${unit.name} compiled from ${previous.source.uri}, not from ${sourceUri}: compiling it would replace them. Give this migration its own --out, or pass --force to replace them`);
  }
  const files = journalFiles(ctx.workDir, unit.name);
  // A worker starts (~0.2 s of loading) while the manifest is read: it is needed next.
  ctx.workers.prewarm(workerArgs(cfg, ctx));
  const started = new Date().toISOString();
  // A journal found here is an interrupted run's, --force or not, and resuming from it is
  // what "run the same command again" promises.
  const prefixStore = await ctx.stores.get(cfg.prefix);
  const source = await localCopy(prefixStore, unit.key, ctx.staging, cfg.flags.timeout);
  /** The manifest may not change under a compile: its rows are read twice. */
  const unchanged = async () => {
    if ((await prefixStore.stat(unit.key))?.version === unit.version) return;
    // The journal is for the old file (its ids' URLs may have changed): the next run sends every task again.
    throw new UnitError(unit.name, `${sourceUri} changed while its unit was compiled: run the command again to compile the new file (its rows are fetched again; objects already at their keys with the same bytes are not written again)`);
  };
  const staged = await stagedFiles(ctx.staging, unit.name);
  try {
    const { unitRows, rows, tasks: taskFile, stores } = await planUnit(source.file, cfg, files.tasks);
    const record = (e: Event, at: number) => {
      if (isTerminal(e)) unitRows.record(e.id, at, e.kind === 'UP_OK');
    };
    const tasks = unitRows.tasks;
    let journal: Journal | undefined;
    let earlier: EarlierRun[];
    let pending: number;
    let counts: Counts;
    let int96: { columns: string[]; subMicrosecondValues: number };
    try {
      const opened = Journal.open(files.events, unit.version, record, { runId: ctx.runId, startedAt: started });
      journal = opened.journal;
      earlier = opened.replayed.runs;
      // An interrupted run's journal that no longer applies: say why nothing resumes.
      if (opened.replayed.discarded) ctx.board.log(`${unit.name}: the journal of an interrupted run is for another version of ${sourceUri}: every task is sent again`);
      pending = tasks - unitRows.settled;
      if (pending > 0) await checkSourceCredentials(stores, cfg, ctx);
      // Once its journal cannot be written (a full work dir), the unit sends nothing more: what
      // is in flight settles, and the unit fails naming the journal (readAppended below).
      const j = journal;
      const queue = new TaskQueue(() => {
        if (j.failed) return undefined;
        for (let t = taskFile.next(); t; t = taskFile.next()) if (!unitRows.settledTask(t.id)) return t;
        return undefined;
      });
      await runUnitTasks(unit.name, { queue, count: pending }, journal, cfg, ctx, { done: unitRows.settled, failed: unitRows.failed }, record, unitRows.taskIds);
      if (ctx.signal.aborted) return { unit: unit.name, status: 'interrupted' };
      // The offsets recorded as events came are true unless another run of the unit appended
      // to the journal meanwhile: then every outcome since open is read back from the file.
      journal.readAppended(record);
      if (unitRows.settled < tasks) throw new Error(`internal: ${tasks - unitRows.settled} task(s) have no outcome`);
      await unchanged();
      ({ counts, int96 } = await writeOutputs(source.file, staged, unitRows.outcomes(journal), { id: cfg.idColumn, url: cfg.urlColumn, path: cfg.pathColumn, bad: cfg.badColumn }).catch(async (e: unknown) => {
        await unchanged(); // a row with no outcome: the file changed while it was read
        throw e;
      }));
    } finally {
      taskFile.close();
      journal?.close();
    }
    await unchanged();
    const keys = outputKeys(unit.name);
    // Outputs about to be replaced stop being the truth first: a kill between the files
    // below must not leave an old manifest.json saying "complete" over a new Parquet.
    if (previous) await out.remove(keys.manifest);
    const notes = await publishOutputs(out, unit.name, staged, {
      unit: unit.name,
      source: { uri: sourceUri, fingerprint: unit.version, rows },
      options,
      optionsFingerprint,
      counts: { ...counts, tasks, sentThisRun: pending, resumedFromJournal: tasks - pending },
      int96,
      runs: [
        ...(previous?.runs ?? []),
        ...earlier.filter((r) => r.outcomes > 0).map((r) => ({ runId: r.runId, startedAt: r.startedAt, interrupted: true, outcomes: r.outcomes })),
        { runId: ctx.runId, startedAt: started, finishedAt: new Date().toISOString(), sent: pending },
      ],
    });
    for (const note of notes) ctx.board.log(`${unit.name}: ${note}`);
    await discardJournal(files);
    ctx.board.done(unit.name, counts);
    return { unit: unit.name, status: 'complete', counts };
  } finally {
    await staged.done();
    await source.done();
  }
}

export type CompileSummary = { reports: UnitReport[]; runId: string };

/** manifest.json read this many at a time when the units complete already are found. */
const STANDING_READS = 16;

/**
 * The units complete already for this compile (unitStanding), by name, with their ledger
 * rows, found in order until `enough` units to compile are (the rest are judged as they
 * come: a fresh run reads no more manifest.json up front than it has jobs); and how many
 * units to compile were found. A unit whose manifest.json cannot be read now counts as one
 * to compile: its compile meets the same error, and reports it as the unit's.
 */
async function completeUnits(units: readonly Unit[], cfg: CompileConfig, stores: Stores, workDir: string, enough: number): Promise<{ complete: Map<string, number>; toCompile: number }> {
  const complete = new Map<string, number>();
  let next = 0;
  let toCompile = 0;
  const optionsFingerprint = fingerprint(contentOptions(cfg));
  const reader = async () => {
    while (next < units.length && toCompile < enough) {
      const unit = units[next++]!;
      const { skip } = unitNameProblem(unit.name) ? { skip: null } : await unitStanding(unit, cfg, optionsFingerprint, stores, workDir).catch(() => ({ skip: null }));
      if (skip === null) toCompile++;
      else complete.set(unit.name, skip);
    }
  };
  await Promise.all(Array.from({ length: Math.min(units.length, STANDING_READS, enough) }, reader));
  return { complete, toCompile: toCompile + (units.length - next) };
}

/** Compiles the selected units, `--jobs` at a time. A failing unit never stops the others. */
export async function compileAll(cfg: CompileConfig, stores: Stores, board: Board, signal: AbortSignal): Promise<CompileSummary> {
  const units = selectUnits(await listUnits(cfg.prefix, stores), cfg.only);
  checkOutputsOutsidePrefix(units, cfg.prefix, cfg.out);
  await checkWritable(stores.get(cfg.out), `--out ${describePlace(cfg.out)}`);
  await checkWritable(stores.get(cfg.dest), `--dest ${describePlace(cfg.dest)}`, 'a refusal');
  const runId = randomUUID();
  const workDir = path.resolve(cfg.workDir, runKey(cfg));
  await checkWorkDir(workDir, `--work-dir ${path.resolve(cfg.workDir)}`);
  // Units complete already are found first: --concurrency is shared by the units that compile
  // (a resumed run with one unit left gives it all of it, not a --jobs'th).
  // Each job takes at least one request of --concurrency: never more jobs than either allows.
  const most = Math.max(1, Math.min(cfg.jobs, cfg.flags.concurrency));
  const { complete, toCompile } = await completeUnits(units, cfg, stores, workDir, most);
  const jobs = Math.max(1, Math.min(most, toCompile));
  const ctx: RunContext = {
    runId,
    workDir,
    staging: stagingDir(workDir),
    stores,
    board,
    signal,
    concurrencyPerUnit: Math.max(1, Math.floor(cfg.flags.concurrency / jobs)),
    workers: new WorkerPool(jobs, (line) => board.log(line)),
  };
  const reports: UnitReport[] = [];
  let next = 0;
  const lane = async () => {
    while (next < units.length && !signal.aborted) {
      const unit = units[next++]!;
      const ledgerRows = complete.get(unit.name);
      if (ledgerRows !== undefined) {
        reports.push(skipped(unit, ledgerRows, board));
        continue;
      }
      try {
        reports.push(await compileUnit(unit, cfg, ctx));
      } catch (e) {
        if (!(e instanceof UnitError)) throw e;
        board.fail(unit.name, e.message);
        reports.push({ unit: unit.name, status: 'failed', error: e.message });
      }
    }
  };
  try {
    // One lane more than workers: a unit reads its manifest and writes its outputs while
    // the others keep every worker busy.
    await Promise.all(Array.from({ length: Math.min(Math.max(1, toCompile), jobs + 1) }, lane));
  } finally {
    await ctx.workers.close();
    await tidyWorkDir(workDir);
  }
  return { reports, runId };
}
