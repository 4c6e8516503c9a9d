import { describe, expect, it } from 'vitest';
import { printable } from './printable.js';
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
