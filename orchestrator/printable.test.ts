import stringWidth from 'string-width';
import { describe, expect, it } from 'vitest';
import { fitColumns, printable } from './printable.js';
import { shellWord } from './summary.js';

describe('printable', () => {
  it.each([
    ['2024/batch-01', '2024/batch-01'],
    ['évian/日本', 'évian/日本'],
    ['a\nb', 'a\\nb'],
    ['a\r\tb', 'a\\r\\tb'],
    ['x\u001b[2Jy', 'x\\x1b[2Jy'],
    ['\u0000\u007f\u009b', '\\x00\\x7f\\x9b'],
  ])('%j is shown as %j', (text, shown) => {
    expect(printable(text)).toBe(shown);
  });
});

describe('shellWord', () => {
  it.each([
    ['/data/out/a.ledger.tsv', '/data/out/a.ledger.tsv'],
    ['s3://b/p/x.ledger.tsv', 's3://b/p/x.ledger.tsv'],
    ["/o 7/it's", `'/o 7/it'\\''s'`],
    ["/a\nb'\\c", `$'/a\\nb\\'\\\\c'`],
  ])('%j is written %j', (word, written) => {
    expect(shellWord(word)).toBe(written);
  });
});

describe('fitColumns', () => {
  it('cuts a line to the terminal columns, a wide character counting two, never in the middle of one', () => {
    expect(fitColumns('abcdef', 4, stringWidth)).toBe('abcd');
    expect(fitColumns('abc', 4, stringWidth)).toBe('abc');
    // 写真 (2 columns each): 'u/写真' is 6 columns wide.
    expect(fitColumns('u/写真  12/40', 5, stringWidth)).toBe('u/写');
    expect(fitColumns('u/写真  12/40', 6, stringWidth)).toBe('u/写真');
    expect(fitColumns('写真', 3, stringWidth)).toBe('写'); // not half of 真
    // A flag (two code points, one grapheme, two columns) and a combining accent (no column).
    expect(fitColumns('🇯🇵x', 2, stringWidth)).toBe('🇯🇵');
    expect(fitColumns('e\u0301e\u0301e\u0301', 2, stringWidth)).toBe('e\u0301e\u0301');
  });
});
