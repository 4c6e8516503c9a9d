/**
 * `ferry replay <ledger>`: re-runs a ledger's selected failures (transient ones by
 * default) with the unit's own content options, read from the manifest.json beside the
 * ledger, and merges the results: repaired ids get their destination URI in the renewed
 * Parquet and leave the ledger; the rest stay, with their newest reason. The ledger may
 * be a path or a URI (s3://, gs://, file://).
 */
import { randomUUID } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { LedgerError, type LedgerRow, type ReasonSelector, LedgerReader, parseReasonSelector, replayable, selects } from '../ledger/index.js';
import { type Task, type WorkerFlags, isTerminal, parseDecode, parseWorkerFlags, storeOptionsOf } from '../protocol/index.js';
import { StorageError, UriError, describePlace, objectUrlScheme, parsePlace, splitObjectUri, uriOf } from '../storage/index.js';
import { asUnitError, checkSourceCredentials, runUnitTasks, type RunContext } from './compile.js';
import { TaskQueue, WorkerPool } from './supervise.js';
import { type CompileConfig, checkLocalSourceRoot, fingerprint } from './config.js';
import { EXIT, PlaceError, UnitError, UsageError } from './errors.js';
import { Stores, checkWorkDir, localCopy, readLines } from './io.js';
import { Journal, discardFinishedJournal, discardJournal, journalFiles, otherStagers, stagingDir, tidyWorkDir } from './journal.js';
import { stagedFiles, writeOutputs } from './materialize.js';
import { ManifestError, scanManifest } from './parquet/index.js';
import type { Board } from './progress.js';
import { type Outcome, RowVerdicts, UnitState, outcomeOf } from './state.js';
import { type UnitManifest, markReplaying, outputKeys, publishOutputs, readUnitManifest } from './unit-manifest.js';

const LEDGER_SUFFIX = '.ledger.tsv';

/** The unit's content flags as recorded, with this run's runtime flags. */
function flagsFor(m: UnitManifest, raw: Record<string, unknown>): WorkerFlags {
  const o = m.options;
  const runtime = parseWorkerFlags(raw);
  const decode = parseDecode(String(o.decode));
  if (!decode || (o.profile !== 'image' && o.profile !== 'any')) throw new UsageError('manifest.json: unreadable content options');
  return { ...runtime, profile: o.profile, minBytes: Number(o.minBytes), maxBytes: Number(o.maxBytes), minDim: Number(o.minDim), maxPixels: Number(o.maxPixels), decode };
}

function outcomeFromLedger(r: LedgerRow): Outcome {
  return { ok: false, reason: r.reason, stage: r.stage, attempts: r.attempts, detail: r.detail, bad: r.stage === 'validate' };
}

/**
 * The ledger's folder and unit name. A local ledger is taken where it really is, symlinks
 * resolved: its manifest.json and renewed Parquet sit beside the file, not beside a link to
 * it, and every spelling of one ledger shares one replay journal.
 */
async function locate(ledgerUri: string) {
  if (ledgerUri.trim() === '') throw new UsageError('replay: the ledger must not be empty');
  let split: ReturnType<typeof splitObjectUri>;
  try {
    split = splitObjectUri(ledgerUri);
    if (split.parent.scheme === 'file') {
      const real = await realpath(path.join(split.parent.path, split.key)).catch(() => null);
      if (real) split = splitObjectUri(real);
    }
  } catch (e) {
    if (e instanceof UriError) throw new UsageError(`${ledgerUri}: ${e.message}`);
    throw e;
  }
  if (!split.key.endsWith(LEDGER_SUFFIX)) throw new UsageError(`${ledgerUri}: a ledger's name ends in ${LEDGER_SUFFIX}`);
  return { parent: split.parent, unitName: split.key.slice(0, -LEDGER_SUFFIX.length) };
}

export async function replayLedger(ledgerUri: string, raw: Record<string, unknown>, board: Board, signal: AbortSignal): Promise<number> {
  const { parent, unitName } = await locate(ledgerUri);
  // '' would resolve to the current folder.
  if (String(raw['work-dir'] ?? '.ferry').trim() === '') throw new UsageError('--work-dir: must not be empty');
  const reasons = String(raw.reasons ?? 'transient');
  const selector = reasonSelector(reasons);
  const flagsNow = parseWorkerFlags(raw);
  await checkLocalSourceRoot(flagsNow);
  const stores = new Stores(storeOptionsOf(flagsNow));
  try {
    const out = await stores.get(parent);
    const reader = new LedgerReader(ledgerUri);
    const found = await readLines(out, outputKeys(unitName).ledger, flagsNow.timeout, (line) => reader.push(line)).catch((e: unknown) => {
      throw e instanceof StorageError ? new UsageError(`${ledgerUri}: cannot read (${e.message})`) : e;
    });
    if (!found) throw new UsageError(`${ledgerUri}: no such ledger`);
    const rows = reader.end();
    const m = await readUnitManifest(out, unitName, flagsNow.timeout);
    if (!m) throw new UsageError(`${outputKeys(unitName).manifest} beside ${ledgerUri}: missing or not a unit manifest`);
    const chosen = replayable(rows, selector);
    // A replay stopped while it published has outputs to finish even with nothing to send.
    if (chosen.length === 0 && m.status === 'complete') {
      // Rows refused at compile time may match: they are never re-sent, which is not "no match".
      const refused = rows.filter((row) => row.stage === 'compile' && selects(selector, row.reason)).length;
      process.stderr.write(
        refused > 0
          ? `ferry replay: the ${refused} ledger row(s) matching --reasons ${reasons} were refused before any fetch (null, invalid or duplicate ids, bad URLs), and replay never re-sends those: fix the manifest and recompile the unit; nothing to do\n`
          : `ferry replay: no ledger row matches --reasons ${reasons}; nothing to do\n`,
      );
      return EXIT.OK;
    }
    // A unit's failure (a write --out or --dest refuses, an unreadable source) is exit 1, named.
    return await replayRows(m, rows, chosen, { out, parent, unitName, ledgerUri, raw, stores, board, signal }).catch((e: unknown) => {
      throw asUnitError(e, m.unit, m.source.uri);
    });
  } catch (e) {
    // A store that refuses or fails before (credentials, a bucket gone, a stalled read) is
    // the operator's to fix, said in one line, not a bug.
    if (e instanceof StorageError) throw new PlaceError(`replay of ${ledgerUri}: ${e.message}`);
    throw e;
  } finally {
    await stores.close();
  }
}

type ReplayContext = {
  out: Awaited<ReturnType<Stores['get']>>;
  parent: ReturnType<typeof parsePlace>;
  unitName: string;
  ledgerUri: string;
  raw: Record<string, unknown>;
  stores: Stores;
  board: Board;
  signal: AbortSignal;
};

async function replayRows(m: UnitManifest, rows: LedgerRow[], chosen: LedgerRow[], r: ReplayContext): Promise<number> {
  const cols = { id: String(m.options.idColumn), url: String(m.options.urlColumn), path: String(m.options.pathColumn), bad: String(m.options.badColumn) };
  const flags = flagsFor(m, r.raw);
  const workRoot = path.resolve(String(r.raw['work-dir'] ?? '.ferry'));
  const workDir = path.join(workRoot, 'replay-' + fingerprint({ ledger: describePlace(r.parent) + r.unitName }).slice(0, 16));
  const cfg = { dest: parsePlace(String(m.options.dest)), flags, workDir } as CompileConfig;
  const staging = stagingDir(workDir);
  const sourceAt = splitObjectUri(m.source.uri);
  const sourceStore = await r.stores.get(sourceAt.parent);
  const now = await sourceStore.stat(sourceAt.key);
  if (!now) throw new UsageError(`${m.source.uri}: the unit's source manifest is gone`);
  if (now.version !== m.source.fingerprint)
    throw new UsageError(`${m.source.uri} changed since the unit was compiled: recompile it (ferry compile … --only ${m.unit} --force) instead of replaying`);
  const renewedKey = outputKeys(r.unitName).parquet;
  if (!(await r.out.stat(renewedKey)))
    throw new UsageError(`${describePlace(r.parent)}: ${renewedKey} is missing beside the ledger: replay merges into the unit's renewed Parquet (recompile the unit with ferry compile … --only ${m.unit} --force)`);
  await checkWorkDir(workDir, `--work-dir ${workRoot}`);
  const source = await localCopy(sourceStore, sourceAt.key, staging, flags.timeout);
  const renewed = await localCopy(r.out, renewedKey, staging, flags.timeout);
  const staged = await stagedFiles(staging, r.unitName);
  try {
    // Two replays of one ledger would share its journal and each publish its own outputs over
    // the other's: the later one is refused (both, when they start together), before any fetch.
    const running = await otherStagers(workDir);
    if (running.length > 0)
      throw new UnitError(m.unit, `another replay of ${r.ledgerUri} is running (pid ${running.join(', ')}; it stages in ${path.join(workDir, 'staging')}): run this one again once it has ended`);
    // The unit as it stands: successes from the renewed Parquet, failures from the ledger.
    const state = new UnitState();
    // A renewed Parquet that cannot be read is named as itself (not as the source manifest
    // that every other ManifestError of the unit is about), with the flag naming its column.
    await scanManifest(renewed.file, { id: cols.id, url: cols.path, flags: { id: '--id-column', url: '--path-column' } }, { path: '\u0000', bad: '\u0000' }, (ids, paths) => {
      ids.forEach((id, i) => {
        const uri = paths[i];
        if (id !== null && uri) state.set(id, { ok: true, uri });
      });
    }).catch((e: unknown) => {
      if (!(e instanceof ManifestError)) throw e;
      throw new UsageError(
        `${e.message.replace(e.file, uriOf(r.parent, renewedKey))} (the unit's renewed Parquet, which replay merges into: recompile the unit with ferry compile … --only ${m.unit} --force)`,
      );
    });
    for (const row of rows) {
      if (row.id === null || row.stage === 'compile') continue;
      const now = state.get(row.id);
      if (now?.ok) {
        // A replay stopped between its publishes (status replaying) published the Parquet
        // first: its destination is newer than the ledger's row, and an object stands there.
        if (m.status === 'replaying') continue;
        throw new UsageError(
          `${r.ledgerUri}: the row of id ${JSON.stringify(row.id)} (${row.reason}) is for an id that ${uriOf(r.parent, renewedKey)} says is migrated, to ${now.uri}: the ledger was edited or comes from another compile; put back the ledger the last compile or replay wrote, or recompile the unit (ferry compile … --only ${m.unit} --force)`,
        );
      }
      state.set(row.id, outcomeFromLedger(row));
    }
    // The selected ids' real URLs come from the source manifest (the ledger's are redacted);
    // an id already migrated is not sent again.
    const wanted = new Set(chosen.filter((row) => state.get(row.id as string)?.ok !== true).map((row) => row.id as string));
    const tasks: Task[] = [];
    // Every row that became a task has an outcome in the ledger or the Parquet: checked now,
    // before any fetch, for a ledger edited by hand or taken from another run.
    const verdicts = new RowVerdicts();
    let orphan: string | null = null;
    await scanManifest(source.file, { id: cols.id, url: cols.url }, { path: cols.path, bad: cols.bad }, (ids, urls) => {
      ids.forEach((id, i) => {
        const url = urls[i] ?? null;
        // Only the row that compile made the id's task is sent (with its URL, even an empty
        // one): a later row of the id is a DUPLICATE_ID whose URL was never the id's.
        if (verdicts.next(id ?? null, url) !== null) return;
        if (!state.has(id as string)) orphan ??= `row ${verdicts.row} (id ${JSON.stringify(id)})`;
        if (wanted.delete(id as string)) tasks.push({ id: id as string, url: url as string });
      });
    });
    if (orphan)
      throw new UsageError(
        `${r.ledgerUri}: ${orphan} has neither a destination in ${renewedKey} nor a ledger row: the ledger was edited or comes from another compile; recompile the unit (ferry compile … --only ${m.unit} --force)`,
      );
    const board = r.board;
    const files = journalFiles(workDir, r.unitName);
    // An interrupted replay's journal is reused only for the same source, content options and
    // selection: a unit recompiled since with another --dest or other gates starts afresh
    // (its journaled UP_OKs name objects under the old destination, judged by the old gates).
    // A replay interrupted earlier resumes from its own journal.
    const selected = new Set(tasks.map((t) => t.id));
    const done = new Set<string>();
    const started = new Date().toISOString();
    const runId = randomUUID();
    // This run is marked in the journal, so a replay interrupted now is listed by the one that
    // finishes (its objects carry its run id), as compile lists its own interrupted runs.
    const journalSource = `${m.source.fingerprint}:${m.optionsFingerprint}:${fingerprint(chosen.map((row) => row.id))}`;
    // A replay killed after publishing leaves its journal: the outputs, complete, list its run.
    if (m.status === 'complete') await discardFinishedJournal(files, journalSource, m.runs);
    const { journal, replayed } = Journal.open(
      files.events,
      journalSource,
      (e) => {
        if (isTerminal(e) && selected.has(e.id)) {
          state.set(e.id, outcomeOf(e));
          done.add(e.id);
        }
      },
      { runId, startedAt: started },
    );
    if (replayed.discarded) board.log(`ferry replay: the journal of an interrupted replay is for another selection, source or compile of the unit: every selected row is sent again`);
    let pending: Task[];
    try {
      pending = tasks.filter((t) => !done.has(t.id));
      board.log(`ferry replay: ${tasks.length} of ${rows.length} ledger row(s) selected (${String(r.raw.reasons ?? 'transient')})`);
      const ctx: RunContext = { runId, workDir, staging, stores: r.stores, board, signal: r.signal, concurrencyPerUnit: flags.concurrency, workers: new WorkerPool(Infinity, (line) => board.log(line)) };
      try {
        const stores = new Set(pending.map((t) => objectUrlScheme(t.url)).filter((s) => s !== null));
        if (pending.length > 0) await checkSourceCredentials(stores, cfg, ctx);
        const failed = [...done].filter((id) => state.get(id)?.ok === false).length;
        await runUnitTasks(m.unit, { queue: TaskQueue.of(pending), count: pending.length }, journal, cfg, ctx, { done: done.size, failed }, (e) => state.set(e.id, outcomeOf(e)), { has: (id) => selected.has(id), all: () => selected });
      } finally {
        await ctx.workers.close();
      }
    } finally {
      journal.close();
      board.stop();
    }
    if (r.signal.aborted) {
      process.stderr.write('ferry replay: interrupted; run the same command again to resume\n');
      return EXIT.SIGINT;
    }
    const { counts, int96 } = await writeOutputs(source.file, staged, state, cols);
    // Until manifest.json is rewritten below, the Parquet and the ledger may disagree: the
    // unit must not read as complete meanwhile (a kill here is finished by replaying again).
    if (m.status === 'complete') await markReplaying(r.out, r.unitName, m);
    const notes = await publishOutputs(r.out, r.unitName, staged, {
      unit: m.unit,
      source: { uri: m.source.uri, fingerprint: m.source.fingerprint, rows: m.source.rows },
      options: m.options,
      optionsFingerprint: m.optionsFingerprint,
      // "This run" is the last one that wrote the manifest: this replay.
      counts: { ...(m.counts as Record<string, unknown>), ...counts, sentThisRun: pending.length, resumedFromJournal: tasks.length - pending.length },
      int96,
      runs: [
        ...m.runs,
        ...replayed.runs.filter((run) => run.outcomes > 0).map((run) => ({ runId: run.runId, startedAt: run.startedAt, interrupted: true, outcomes: run.outcomes, replay: true })),
        { runId, startedAt: started, finishedAt: new Date().toISOString(), sent: pending.length, replay: true },
      ],
    });
    for (const note of notes) process.stderr.write(`ferry replay: ${note}\n`);
    await discardJournal(files);
    const repaired = tasks.filter((t) => state.get(t.id)?.ok).length;
    process.stderr.write(`ferry replay: ${repaired} of ${tasks.length} repaired; ${counts.failed} row(s) remain in ${r.ledgerUri}\n`);
    return EXIT.OK;
  } finally {
    await staged.done();
    await renewed.done();
    await source.done();
    await tidyWorkDir(workDir);
  }
}

/** --reasons, refused as a bad flag value (exit 2), not as a bad ledger. */
function reasonSelector(text: string): ReasonSelector {
  try {
    return parseReasonSelector(text);
  } catch (e) {
    if (e instanceof LedgerError) throw new UsageError(e.message);
    throw e;
  }
}
