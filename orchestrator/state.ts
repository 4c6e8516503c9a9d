/**
 * What is known of one unit's rows: the compile-time verdict of each row and the terminal
 * event of each task. A compile keeps its unit's ids in memory (DESIGN.md allows the unit's
 * set of ids) and, per row, the journal offset of its outcome (UnitRows); the outcomes
 * themselves (URIs, reasons, details) stay in the journal until the outputs are written.
 */
import type { LedgerRow, Stage } from '../ledger/index.js';
import { type Reason, type TerminalEvent, idProblem, isTerminal, shownText, urlProblem } from '../protocol/index.js';
import type { Journal } from './journal.js';

/** Rows whose outcomes are read back from the journal at once. */
const READ_BACK_ROWS = 4096;

export type Outcome =
  | { ok: true; uri: string }
  | { ok: false; reason: Reason; stage: Stage; attempts: number; detail: string; bad: boolean };

/** A row refused before any fetch, or null when it becomes a task. */
export type Refusal = { reason: Reason; detail: string };

/**
 * Row verdicts are decided in manifest order: the first row with an id is migrated and
 * later rows with the same id are DUPLICATE_ID (`seen` carries the ids so far).
 */
export function refuseRow(id: string | null, url: string | null, row: number, seen: { has(id: string): boolean; add(id: string): unknown }): Refusal | null {
  const bad = idRefusal(id, row);
  if (bad) return bad;
  if (seen.has(id as string)) return duplicate(row);
  seen.add(id as string);
  return urlRefusal(url, row);
}

function idRefusal(id: string | null, row: number): Refusal | null {
  if (id === null) return { reason: 'NULL_ID', detail: `row ${row}: id is null` };
  const problem = idProblem(id);
  return problem ? { reason: 'INVALID_ID', detail: `row ${row}: ${problem}` } : null;
}

function duplicate(row: number): Refusal {
  return { reason: 'DUPLICATE_ID', detail: `row ${row}: id already used by an earlier row` };
}

function urlRefusal(url: string | null, row: number): Refusal | null {
  if (url === null) return { reason: 'NULL_URL', detail: `row ${row}: url is null` };
  const problem = urlProblem(url);
  return problem ? { reason: 'BAD_URL', detail: `row ${row}: ${problem}` } : null;
}

/** One pass over a manifest's rows, from row 1: each row's verdict, in order. */
export class RowVerdicts {
  private readonly seen = new Set<string>();
  /** The number of the row judged last. */
  row = 0;

  next(id: string | null, url: string | null): Refusal | null {
    return refuseRow(id, url, ++this.row, this.seen);
  }
}

export function stageOf(e: TerminalEvent): Stage {
  switch (e.kind) {
    case 'UP_OK':
    case 'UP_ERR':
      return 'upload';
    case 'BAD_IMAGE':
      return 'validate';
    case 'DL_ERR':
      return 'download';
  }
}

export function outcomeOf(e: TerminalEvent): Outcome {
  if (e.kind === 'UP_OK') return { ok: true, uri: e.uri };
  return { ok: false, reason: e.reason, stage: stageOf(e), attempts: e.attempts, detail: e.detail, bad: e.kind === 'BAD_IMAGE' };
}

export type RowOutputs = { paths: (string | null)[]; bad: boolean[]; ledger: LedgerRow[] };

/** The per-row outputs of a unit, one row group at a time, in manifest order, from row 1 after `rewind`. */
export interface RowOutcomes {
  rewind(): void;
  /** `redact` cleans URLs for the ledger. Every task must have an outcome by now. */
  outputs(ids: (string | null)[], urls: (string | null)[], redact: (url: string) => string): RowOutputs;
}

function refusalOutcome(r: Refusal): Outcome {
  return { ok: false, reason: r.reason, stage: 'compile', attempts: 0, detail: r.detail, bad: false };
}

function addOutput(out: RowOutputs, id: string | null, url: string | null, outcome: Outcome, redact: (url: string) => string): void {
  if (outcome.ok) {
    out.paths.push(outcome.uri);
    out.bad.push(false);
  } else {
    out.paths.push(null);
    out.bad.push(outcome.bad);
    out.ledger.push({ id, reason: outcome.reason, stage: outcome.stage, attempts: outcome.attempts, url: url === null ? null : redact(shownText(url)), detail: outcome.detail });
  }
}

/**
 * A compile's unit: its ids, each with its first row (DESIGN.md allows the unit's set of
 * ids), and per row the journal offset of its task's terminal event. That is all that is
 * held per row: outcomes are read back from the journal, a row group at a time, by
 * `outcomes`. Rows are judged in one pass over the manifest (`judge`), ended by `planned`.
 */
export class UnitRows {
  /** id → its first row, 1-based: positive when that row became a task, negative when it was refused (a null or bad url). */
  private readonly first = new Map<string, number>();
  /** Per row, where its task's terminal event is journaled; -1 while it has none. */
  private at = new Float64Array(0);
  /** Per row, 1 when its task's outcome is a failure. */
  private failedRow = new Uint8Array(0);
  private row = 0;
  private readonly seen = { has: (id: string) => this.first.has(id), add: (id: string) => this.first.set(id, -this.row) };
  /** Rows that became tasks, how many of those have an outcome, and how many of those failed. */
  tasks = 0;
  settled = 0;
  failed = 0;

  /** The next row's verdict in the planning pass: null when it becomes a task. */
  judge(id: string | null, url: string | null): Refusal | null {
    const refusal = refuseRow(id, url, ++this.row, this.seen);
    if (refusal === null) {
      this.first.set(id as string, this.row);
      this.tasks++;
    }
    return refusal;
  }

  /** The planning pass is over: every row is judged. */
  planned(): void {
    this.at = new Float64Array(this.row + 1).fill(-1);
    this.failedRow = new Uint8Array(this.row + 1);
    this.row = 0;
  }

  /** A task's terminal event (`ok` for an UP_OK), journaled at offset `at`; the last one journaled for an id stands. Other ids are ignored. */
  record(id: string, at: number, ok: boolean): void {
    const row = this.first.get(id);
    if (row === undefined || row < 0) return;
    if (this.at[row]! < 0) this.settled++;
    else this.failed -= this.failedRow[row]!;
    this.at[row] = at;
    this.failedRow[row] = ok ? 0 : 1;
    this.failed += this.failedRow[row]!;
  }

  /** The unit's tasks' ids (their first rows'), to tell the unit's objects from others' under its prefix (unitKeyOwner). */
  readonly taskIds = {
    has: (id: string) => (this.first.get(id) ?? -1) > 0,
    all: () => this.eachTaskId(),
  };

  private *eachTaskId(): Generator<string> {
    for (const [id, row] of this.first) if (row > 0) yield id;
  }

  /** Whether `id` is a task of the unit with an outcome. */
  settledTask(id: string): boolean {
    const row = this.first.get(id) ?? -1;
    return row > 0 && this.at[row]! >= 0;
  }

  /** The renewed columns and ledger rows of the unit, read back from `journal`. */
  outcomes(journal: Pick<Journal, 'eventsAt'>): RowOutcomes {
    return {
      rewind: () => void (this.row = 0),
      outputs: (ids, urls, redact) => this.outputs(journal, ids, urls, redact),
    };
  }

  private outputs(journal: Pick<Journal, 'eventsAt'>, ids: (string | null)[], urls: (string | null)[], redact: (url: string) => string): RowOutputs {
    const out: RowOutputs = { paths: [], bad: [], ledger: [] };
    // A slice of rows at a time: the lines and events read back for it are garbage before
    // the next is read, so they die young instead of filling the old generation with a row
    // group's worth (only its paths and ledger rows are kept until it is written).
    for (let from = 0; from < ids.length; from += READ_BACK_ROWS) this.addSlice(journal, ids, urls, from, Math.min(ids.length, from + READ_BACK_ROWS), redact, out);
    return out;
  }

  private addSlice(journal: Pick<Journal, 'eventsAt'>, ids: (string | null)[], urls: (string | null)[], from: number, to: number, redact: (url: string) => string, out: RowOutputs): void {
    const verdicts: (Refusal | null)[] = [];
    const offsets: number[] = [];
    for (let i = from; i < to; i++) {
      const verdict = this.verdict(ids[i] ?? null, urls[i] ?? null);
      verdicts.push(verdict);
      if (verdict === null) offsets.push(this.at[this.row]!);
    }
    const events = journal.eventsAt(offsets);
    let task = 0;
    for (let i = from; i < to; i++) {
      const id = ids[i] ?? null;
      const verdict = verdicts[i - from]!;
      let outcome: Outcome;
      if (verdict) outcome = refusalOutcome(verdict);
      else {
        const e = events[task++]!;
        if (!isTerminal(e) || e.id !== id) throw new Error(`internal: the journal's outcome for id "${id}" is a ${e.kind} of "${e.id}"`);
        outcome = outcomeOf(e);
      }
      addOutput(out, id, urls[i] ?? null, outcome, redact);
    }
  }

  /**
   * The next row's verdict in a later pass, the same as `judge` gave it: the ids are known,
   * so a duplicate is a row that is not its id's first. Throws for a row unlike the one
   * judged (the manifest changed meanwhile) and for a task without an outcome.
   */
  private verdict(id: string | null, url: string | null): Refusal | null {
    const row = ++this.row;
    const bad = idRefusal(id, row);
    if (bad) return bad;
    const first = this.first.get(id as string);
    if (first === undefined) throw new Error(`internal: no outcome for id "${id}" at row ${row}`);
    if (Math.abs(first) !== row) return duplicate(row);
    const refusal = urlRefusal(url, row);
    if ((refusal === null) !== first > 0 || (first > 0 && this.at[row]! < 0)) throw new Error(`internal: no outcome for id "${id}" at row ${row}`);
    return refusal;
  }
}

/** Outcomes by id for one unit (a replay's, merged from its outputs), and the per-row outputs derived from them. */
export class UnitState implements RowOutcomes {
  private readonly outcomes = new Map<string, Outcome>();
  private verdicts = new RowVerdicts();

  set(id: string, outcome: Outcome): void {
    this.outcomes.set(id, outcome);
  }

  get(id: string): Outcome | undefined {
    return this.outcomes.get(id);
  }

  has(id: string): boolean {
    return this.outcomes.has(id);
  }

  get size(): number {
    return this.outcomes.size;
  }

  /** Starts a new pass over the manifest's rows (verdicts restart from row 1). */
  rewind(): void {
    this.verdicts = new RowVerdicts();
  }

  /**
   * The renewed columns and ledger rows of one row group, in manifest order. `redact`
   * cleans URLs for the ledger. Every task must have an outcome by now.
   */
  outputs(ids: (string | null)[], urls: (string | null)[], redact: (url: string) => string): RowOutputs {
    const out: RowOutputs = { paths: [], bad: [], ledger: [] };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] ?? null;
      const url = urls[i] ?? null;
      const refusal = this.verdicts.next(id, url);
      const outcome: Outcome | undefined = refusal ? refusalOutcome(refusal) : this.outcomes.get(id as string);
      if (outcome === undefined) throw new Error(`internal: no outcome for id "${id}" at row ${this.verdicts.row}`);
      addOutput(out, id, url, outcome, redact);
    }
    return out;
  }
}
