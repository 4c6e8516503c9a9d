/** Replay selection: which ledger rows `ferry replay --reasons …` re-runs. */
import { REASON_CLASS_NAMES, type Reason, type ReasonClass, classOf, isReason } from '../protocol/index.js';
import { LedgerError, type LedgerRow } from './format.js';

export type ReasonSelector = { classes: ReadonlySet<ReasonClass>; codes: ReadonlySet<Reason> };

/** Parses `transient` (the default), `all`, a class name, or a comma list of codes and classes, in any case. */
export function parseReasonSelector(text: string): ReasonSelector {
  const classes = new Set<ReasonClass>();
  const codes = new Set<Reason>();
  for (const raw of text.split(',')) {
    const word = raw.trim();
    if (word === '') continue;
    // Any case, as codes are: ALL, Transient.
    const lower = word.toLowerCase();
    if (lower === 'all') REASON_CLASS_NAMES.forEach((c) => classes.add(c));
    else if ((REASON_CLASS_NAMES as readonly string[]).includes(lower)) classes.add(lower as ReasonClass);
    else if (isReason(word.toUpperCase())) codes.add(word.toUpperCase() as Reason);
    else throw new LedgerError(`--reasons: unknown reason or class "${word}" (use all, transient, invalid, permanent or codes such as TIMEOUT,HTTP_5XX)`);
  }
  if (classes.size === 0 && codes.size === 0) throw new LedgerError('--reasons: empty selection');
  return { classes, codes };
}

export function selects(sel: ReasonSelector, reason: Reason): boolean {
  return sel.codes.has(reason) || sel.classes.has(classOf(reason));
}

/**
 * Rows a replay can re-run: selected, with an id and url that could become a task. Rows
 * refused at compile time for their id or url (null, invalid, duplicate) cannot be fixed
 * by fetching again, so they are never re-sent whatever the selection says.
 */
export function replayable(rows: readonly LedgerRow[], sel: ReasonSelector): LedgerRow[] {
  return rows.filter((r) => r.stage !== 'compile' && r.id !== null && r.url !== null && selects(sel, r.reason));
}
