/**
 * The failure ledger, `<unit>.ledger.tsv`: one row per failed manifest row, in manifest
 * order, header `id reason class stage attempts url detail`. Fields escape `\` TAB LF CR
 * as `\\` `\t` `\n` `\r`; a null id or url is `\N`.
 */
import { type Reason, type ReasonClass, classOf, isReason, notUtf8, notUtf8Bytes } from '../protocol/index.js';

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
  const hex = notUtf8Bytes(value);
  if (hex !== null) return escapeBytes(Buffer.from(hex, 'hex'));
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/**
 * A value that is not UTF-8 (a binary id): printable ASCII as itself, `\` as `\\`, every
 * other byte as `\xHH`. A real `\` is always doubled, so `\x` is never text.
 */
function escapeBytes(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function unescapeField(field: string): string | null {
  if (field === NULL) return null;
  if (/\\x[0-9a-fA-F]{2}/.test(field.replace(/\\\\/g, ''))) return unescapeBytes(field);
  return field.replace(/\\([\\tnr])/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A field with `\xHH` bytes: its text, or, when its bytes are not UTF-8, the value `notUtf8` marks. */
function unescapeBytes(field: string): string {
  const parts: Buffer[] = [];
  const escapes = /\\(?:([\\tnr])|x([0-9a-fA-F]{2}))/g;
  let at = 0;
  for (let m = escapes.exec(field); m; m = escapes.exec(field)) {
    parts.push(Buffer.from(field.slice(at, m.index), 'utf8'));
    const c = m[1];
    parts.push(c === undefined ? Buffer.from([parseInt(m[2]!, 16)]) : Buffer.from(c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
    at = escapes.lastIndex;
  }
  parts.push(Buffer.from(field.slice(at), 'utf8'));
  const bytes = Buffer.concat(parts);
  try {
    return utf8.decode(bytes);
  } catch {
    return notUtf8(bytes);
  }
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

/**
 * Parses a ledger line by line, so that a ledger larger than one string can hold (V8's
 * limit is 2^29 characters: a unit of a few million failed rows) is read all the same.
 * Throws LedgerError naming the line on anything malformed.
 */
export class LedgerReader {
  private lineNo = 0;
  private readonly rows: LedgerRow[] = [];

  constructor(private readonly file = 'ledger') {}

  /** One line, without its LF. */
  push(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const where = `${this.file}: line ${++this.lineNo}`;
    if (this.lineNo === 1) {
      if (line !== LEDGER_HEADER.join('\t')) throw this.noHeader();
      return;
    }
    const f = line.split('\t');
    if (f.length < LEDGER_HEADER.length) throw new LedgerError(`${where}: expected ${LEDGER_HEADER.length} fields, found ${f.length}`);
    const [id, reason, , stage, attempts, url, detail] = f as [string, string, string, string, string, string, string];
    if (!isReason(reason)) throw new LedgerError(`${where}: unknown reason "${reason}"`);
    if (!(STAGES as readonly string[]).includes(stage)) throw new LedgerError(`${where}: unknown stage "${stage}"`);
    const n = Number(attempts);
    if (!Number.isSafeInteger(n) || n < 0) throw new LedgerError(`${where}: bad attempts "${attempts}"`);
    this.rows.push({ id: unescapeField(id), reason, stage: stage as Stage, attempts: n, url: unescapeField(url), detail: unescapeField(detail) ?? '' });
  }

  /** The rows, once every line is in. */
  end(): LedgerRow[] {
    if (this.lineNo === 0) throw this.noHeader();
    return this.rows;
  }

  private noHeader(): LedgerError {
    return new LedgerError(`${this.file}: line 1: expected the header "${LEDGER_HEADER.join(' ')}" (TAB-separated)`);
  }
}

/** Parses a whole ledger file's text; throws LedgerError naming the line on anything malformed. */
export function parseLedger(text: string, file = 'ledger'): LedgerRow[] {
  const reader = new LedgerReader(file);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) reader.push(line);
  return reader.end();
}
