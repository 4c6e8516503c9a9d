/**
 * What is known of one unit's rows: the compile-time verdict of each row and the terminal
 * event of each task. Ids are kept in memory (DESIGN.md allows the unit's set of ids);
 * bytes and non-terminal events are not.
 */
import type { LedgerRow, Stage } from '../ledger/index.js';
import { type Reason, type TerminalEvent, idProblem, notUtf8Bytes } from '../protocol/index.js';

export type Outcome =
  | { ok: true; uri: string }
  | { ok: false; reason: Reason; stage: Stage; attempts: number; detail: string; bad: boolean };

/** A row refused before any fetch, or null when it becomes a task. */
export type Refusal = { reason: Reason; detail: string };

/**
 * Row verdicts are decided in manifest order: the first row with an id is migrated and
 * later rows with the same id are DUPLICATE_ID (`seen` carries the ids so far).
 */
export function refuseRow(id: string | null, url: string | null, row: number, seen: Set<string>): Refusal | null {
  if (id === null) return { reason: 'NULL_ID', detail: `row ${row}: id is null` };
  const problem = idProblem(id);
  if (problem) return { reason: 'INVALID_ID', detail: `row ${row}: ${problem}` };
  if (seen.has(id)) return { reason: 'DUPLICATE_ID', detail: `row ${row}: id already used by an earlier row` };
  seen.add(id);
  if (url === null) return { reason: 'NULL_URL', detail: `row ${row}: url is null` };
  if (/[\t\r\n]/.test(url)) return { reason: 'BAD_URL', detail: `row ${row}: url contains TAB, CR or LF` };
  if (notUtf8Bytes(url) !== null) return { reason: 'BAD_URL', detail: `row ${row}: url is not UTF-8 text` };
  return null;
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

/** Outcomes by id for one unit, and the per-row outputs derived from them. */
export class UnitState {
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
      const outcome: Outcome | undefined = refusal
        ? { ok: false, reason: refusal.reason, stage: 'compile', attempts: 0, detail: refusal.detail, bad: false }
        : this.outcomes.get(id as string);
      if (outcome === undefined) throw new Error(`internal: no outcome for id "${id}" at row ${this.verdicts.row}`);
      if (outcome.ok) {
        out.paths.push(outcome.uri);
        out.bad.push(false);
      } else {
        out.paths.push(null);
        out.bad.push(outcome.bad);
        out.ledger.push({ id, reason: outcome.reason, stage: outcome.stage, attempts: outcome.attempts, url: url === null ? null : redact(url), detail: outcome.detail });
      }
    }
    return out;
  }
}
