/**
 * `ferry replay <ledger.tsv>`: re-runs a ledger's selected failures (transient ones by
 * default) with the unit's own content options, read from the manifest.json beside the
 * ledger, and merges the results: repaired ids get their destination URI in the renewed
 * Parquet and leave the ledger; the rest stay, with their newest reason.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { type LedgerRow, parseLedger, parseReasonSelector, replayable } from '../ledger/index.js';
import { type Task, type WorkerFlags, isTerminal, parseDecode, parseWorkerFlags } from '../protocol/index.js';
import { parsePlace } from '../storage/index.js';
import { type UnitManifest, discardJournal, journalFiles, readUnitManifest, runUnitTasks } from './compile.js';
import { type CompileConfig, fingerprint } from './config.js';
import { EXIT, UsageError } from './errors.js';
import { Journal } from './journal.js';
import { writeJsonAtomic, writeOutputs } from './materialize.js';
import { scanManifest } from './parquet/index.js';
import { Board, type BoardMode } from './progress.js';
import { type Outcome, UnitState, outcomeOf } from './state.js';

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

export async function replayLedger(ledgerFile: string, raw: Record<string, unknown>, mode: BoardMode, signal: AbortSignal): Promise<number> {
  if (!ledgerFile.endsWith(LEDGER_SUFFIX)) throw new UsageError(`${ledgerFile}: a ledger's name ends in ${LEDGER_SUFFIX}`);
  const base = ledgerFile.slice(0, -LEDGER_SUFFIX.length);
  const text = await fs.readFile(ledgerFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`${ledgerFile}: cannot read (${e.code ?? e.message})`);
  });
  const rows = parseLedger(text, ledgerFile);
  const manifestFile = `${base}.manifest.json`;
  const m = await readUnitManifest(manifestFile);
  if (!m) throw new UsageError(`${manifestFile}: missing or not a complete unit manifest (replay needs the manifest.json beside the ledger)`);
  const sel = parseReasonSelector(String(raw.reasons ?? 'transient'));
  const chosen = replayable(rows, sel);
  if (chosen.length === 0) {
    process.stderr.write(`ferry replay: no ledger row matches --reasons ${String(raw.reasons ?? 'transient')}; nothing to do\n`);
    return EXIT.OK;
  }
  const source = m.source.path;
  const stat = await fs.stat(source).catch(() => null);
  if (!stat) throw new UsageError(`${source}: the unit's source manifest is gone`);
  const cols = { id: String(m.options.idColumn), url: String(m.options.urlColumn), path: String(m.options.pathColumn), bad: String(m.options.badColumn) };
  const flags = flagsFor(m, raw);
  const cfg = {
    dest: parsePlace(String(m.options.dest)),
    flags,
    workDir: String(raw['work-dir'] ?? '.ferry'),
  } as Pick<CompileConfig, 'dest' | 'flags' | 'workDir'>;
  const parquetFile = `${base}.parquet`;

  // The unit as it stands: successes from the renewed Parquet, failures from the ledger.
  const state = new UnitState();
  await scanManifest(parquetFile, { id: cols.id, url: cols.path }, { path: '\u0000', bad: '\u0000' }, (ids, paths) => {
    ids.forEach((id, i) => {
      const uri = paths[i];
      if (id !== null && uri) state.set(id, { ok: true, uri });
    });
  });
  for (const r of rows) if (r.id !== null && r.stage !== 'compile') state.set(r.id, outcomeFromLedger(r));

  // The selected ids' real URLs come from the source manifest (the ledger's are redacted).
  const wanted = new Set(chosen.map((r) => r.id as string));
  const tasks: Task[] = [];
  await scanManifest(source, { id: cols.id, url: cols.url }, { path: cols.path, bad: cols.bad }, (ids, urls) => {
    ids.forEach((id, i) => {
      const url = urls[i];
      if (id !== null && url && wanted.delete(id)) tasks.push({ id, url });
    });
  });

  const runId = randomUUID();
  const board = new Board(mode);
  const files = journalFiles(path.resolve(cfg.workDir, 'replay-' + fingerprint({ base: path.resolve(base) }).slice(0, 16)), m.unit);
  const { journal, replayed } = Journal.open(files.events, `${m.source.fingerprint}:${fingerprint(chosen.map((r) => r.id))}`);
  const started = new Date().toISOString();
  try {
    // A replay interrupted earlier resumes from its own journal.
    const selected = new Set(tasks.map((t) => t.id));
    const done = new Set<string>();
    for (const e of replayed.events)
      if (isTerminal(e) && selected.has(e.id)) {
        state.set(e.id, outcomeOf(e));
        done.add(e.id);
      }
    const pending = tasks.filter((t) => !done.has(t.id));
    board.log(`ferry replay: ${tasks.length} of ${rows.length} ledger row(s) selected (${String(raw.reasons ?? 'transient')})`);
    const ctx = { runId, startedAt: started, workDir: cfg.workDir, board, signal, concurrencyPerUnit: flags.concurrency };
    await runUnitTasks(m.unit, pending, state, journal, cfg as CompileConfig, ctx);
    journal.flush(true);
    board.stop();
    if (signal.aborted) {
      process.stderr.write('ferry replay: interrupted; run the same command again to resume\n');
      return EXIT.SIGINT;
    }
    const { counts, int96 } = await writeOutputs(source, { parquet: parquetFile, ledger: ledgerFile, manifest: manifestFile }, state, cols);
    await writeJsonAtomic(manifestFile, {
      ...m,
      counts: { ...(m as Record<string, unknown>).counts as object, ...counts },
      int96: { columns: int96.columns, writtenAs: 'INT64 timestamp (microseconds)', subMicrosecondValues: int96.subMicrosecondValues },
      runs: [...m.runs, { runId, startedAt: started, finishedAt: new Date().toISOString(), sent: pending.length, replay: true }],
    });
    journal.close();
    await discardJournal(files);
    const repaired = tasks.filter((t) => state.get(t.id)?.ok).length;
    process.stderr.write(`ferry replay: ${repaired} of ${tasks.length} repaired; ${counts.failed} row(s) remain in ${ledgerFile}\n`);
    return EXIT.OK;
  } finally {
    board.stop();
    journal.close();
  }
}
