import { describe, expect, it } from 'vitest';
import { notUtf8 } from '../protocol/index.js';
import { type LedgerRow, encodeLedgerRow, escapeField, ledgerHeaderLine, parseLedger, unescapeField } from './format.js';
import { parseReasonSelector, replayable, selects } from './select.js';

const rows: LedgerRow[] = [
  { id: null, reason: 'NULL_ID', stage: 'compile', attempts: 0, url: 'https://h/a.jpg', detail: 'row 3' },
  { id: 'tab\there', reason: 'INVALID_ID', stage: 'compile', attempts: 0, url: null, detail: '' },
  { id: 'a\\b', reason: 'TIMEOUT', stage: 'download', attempts: 4, url: 'https://h/x?sig=REDACTED', detail: 'idle' },
  { id: 'n', reason: 'NOT_FOUND', stage: 'download', attempts: 1, url: 'https://h/n', detail: 'HTTP 404' },
  { id: 'e', reason: 'EMPTY', stage: 'validate', attempts: 1, url: 'https://h/e', detail: '' },
];

describe('ledger format', () => {
  it.each([
    ['plain', 'plain'],
    ['a\tb', 'a\\tb'],
    ['a\nb\rc', 'a\\nb\\rc'],
    ['back\\slash', 'back\\\\slash'],
    ['\\N', '\\\\N'],
  ])('escapes %j as %j and back', (raw, esc) => {
    expect(escapeField(raw)).toBe(esc);
    expect(unescapeField(esc)).toBe(raw);
  });

  it('writes null as \\N', () => expect(escapeField(null)).toBe('\\N'));

  it.each([
    ['a byte that is not UTF-8 beside ASCII', [0xc3, 0x28], '\\xc3('],
    ['controls, a backslash and a valid sequence, all as bytes', [0xff, 0x09, 0x5c, 0x78, 0xc3, 0xa9], '\\xff\\x09\\\\x\\xc3\\xa9'],
  ])('writes an id that is not UTF-8 (%s) as its bytes, and reads it back as the same value', (_, bytes, esc) => {
    const id = notUtf8(Uint8Array.from(bytes));
    expect(escapeField(id)).toBe(esc);
    expect(unescapeField(esc)).toBe(id);
  });

  it('reads \\x escapes of UTF-8 bytes as text, and a doubled backslash before x as text', () => {
    expect(unescapeField('caf\\xc3\\xa9')).toBe('café');
    expect(unescapeField('a\\\\xff')).toBe('a\\xff');
  });

  it('round-trips rows with their class', () => {
    const text = ledgerHeaderLine() + rows.map(encodeLedgerRow).join('');
    expect(text.split('\n')[0]).toBe('id\treason\tclass\tstage\tattempts\turl\tdetail');
    expect(text.split('\n')[3]).toBe('a\\\\b\tTIMEOUT\ttransient\tdownload\t4\thttps://h/x?sig=REDACTED\tidle');
    expect(parseLedger(text)).toEqual(rows);
  });

  it.each([
    ['', 'line 1'],
    ['id\treason\n', 'line 1'],
    [ledgerHeaderLine() + 'x\tNOPE\tpermanent\tdownload\t1\tu\td\n', 'line 2: unknown reason'],
    [ledgerHeaderLine() + 'x\tTIMEOUT\ttransient\tfly\t1\tu\td\n', 'unknown stage'],
    [ledgerHeaderLine() + 'x\tTIMEOUT\n', 'expected 7 fields'],
  ])('refuses a malformed ledger (%#)', (text, why) => expect(() => parseLedger(text, 'u.ledger.tsv')).toThrow(why));
});

describe('replay selection', () => {
  it('defaults to transient and never re-sends compile-time refusals', () => {
    expect(replayable(rows, parseReasonSelector('transient')).map((r) => r.id)).toEqual(['a\\b']);
    expect(replayable(rows, parseReasonSelector('all')).map((r) => r.id)).toEqual(['a\\b', 'n', 'e']);
    expect(replayable(rows, parseReasonSelector('NOT_FOUND,empty')).map((r) => r.id)).toEqual(['n', 'e']);
  });
  it('takes classes', () => expect(selects(parseReasonSelector('invalid'), 'EMPTY')).toBe(true));
  // Codes are taken in any case (NOT_FOUND,empty): classes and all are too, as README spells them or not.
  it.each(['ALL', 'Transient', 'INVALID,timeout'])('takes %j in any case', (t) => {
    const sel = parseReasonSelector(t);
    expect(sel.classes.size + sel.codes.size).toBeGreaterThan(0);
    expect(selects(sel, 'TIMEOUT')).toBe(true);
  });
  it.each(['', 'bogus', 'TIMEOUT,bogus'])('refuses %j', (t) => expect(() => parseReasonSelector(t)).toThrow('--reasons'));
});
