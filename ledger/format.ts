/**
 * The failure ledger, `<unit>.ledger.tsv`: one row per failed manifest row, in manifest
 * order, header `id reason class stage attempts url detail`. Fields escape `\` TAB LF CR
 * as `\\` `\t` `\n` `\r`; a null id or url is `\N`.
 */
import { type Reason, type ReasonClass, classOf, isReason } from '../protocol/index.js';

export const LEDGER_HEADER = ['id', 'reason', 'class', 'stage', 'attempts', 'url', 'detail'] as const;
export const STAGES = ['compile', 'download', 'validate', 'upload', 'verify'] as const;
export type Stage = (typeof STAGES)[number];

export type LedgerRow = {
  id: string | null;
  reason: Reason;
  stage: Stage;
  attempts: number;
  /** redacted */
  url: string | null;
  detail: string;
};

const NULL = '\\N';

export function escapeField(value: string | null): string {
  if (value === null) return NULL;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

export function unescapeField(field: string): string | null {
  if (field === NULL) return null;
  return field.replace(/\\([\\tnr])/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
}

export function ledgerHeaderLine(): string {
  return LEDGER_HEADER.join('\t') + '\n';
}

export function encodeLedgerRow(r: LedgerRow): string {
  const cls: ReasonClass = classOf(r.reason);
  return [escapeField(r.id), r.reason, cls, r.stage, String(r.attempts), escapeField(r.url), escapeField(r.detail)].join('\t') + '\n';
}

export class LedgerError extends Error {
  readonly code = 'LEDGER';
}

/** Parses a whole ledger file's text; throws LedgerError naming the line on anything malformed. */
export function parseLedger(text: string, file = 'ledger'): LedgerRow[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines[0]?.replace(/\r$/, '') !== LEDGER_HEADER.join('\t'))
    throw new LedgerError(`${file}: line 1: expected the header "${LEDGER_HEADER.join(' ')}" (TAB-separated)`);
  const rows: LedgerRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const f = (lines[i] ?? '').replace(/\r$/, '').split('\t');
    const where = `${file}: line ${i + 1}`;
    if (f.length < LEDGER_HEADER.length) throw new LedgerError(`${where}: expected ${LEDGER_HEADER.length} fields, found ${f.length}`);
    const [id, reason, , stage, attempts, url, detail] = f as [string, string, string, string, string, string, string];
    if (!isReason(reason)) throw new LedgerError(`${where}: unknown reason "${reason}"`);
    if (!(STAGES as readonly string[]).includes(stage)) throw new LedgerError(`${where}: unknown stage "${stage}"`);
    const n = Number(attempts);
    if (!Number.isSafeInteger(n) || n < 0) throw new LedgerError(`${where}: bad attempts "${attempts}"`);
    rows.push({ id: unescapeField(id), reason, stage: stage as Stage, attempts: n, url: unescapeField(url), detail: unescapeField(detail) ?? '' });
  }
  return rows;
}
