import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type InputLine, taskLines } from './task-lines.js';

/** The lines of `bytes` read in chunks of `size` bytes, so that every split point is tried, none longer than `max` bytes. */
async function linesOf(bytes: Buffer, size: number, max = 1 << 20): Promise<InputLine[]> {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  const out: InputLine[] = [];
  for await (const line of taskLines(Readable.from(chunks), max)) out.push(line);
  return out;
}

const sizes = [1, 2, 3, 7, 1 << 16];

describe('taskLines', () => {
  it.each(sizes)('splits on LF only, drops a CR before it, keeps a lone CR inside its line (chunks of %i)', async (size) => {
    const lines = await linesOf(Buffer.from('a\tu1\r\nb\rc\tu2\n\r\n\nlast\tu3'), size);
    expect(lines).toEqual([
      { text: 'a\tu1', utf8: true },
      { text: 'b\rc\tu2', utf8: true },
      { text: '', utf8: true },
      { text: '', utf8: true },
      { text: 'last\tu3', utf8: true },
    ]);
  });

  it.each(sizes)('marks a line that is not UTF-8 instead of decoding its bytes as U+FFFD, and decodes characters split between chunks (chunks of %i)', async (size) => {
    const bytes = Buffer.concat([Buffer.from('x\xff\tu\n', 'latin1'), Buffer.from('é€😀\tu\n'), Buffer.from('\uFEFFbom\tu\n')]);
    const lines = await linesOf(bytes, size);
    expect(lines.map((l) => 'utf8' in l && l.utf8)).toEqual([false, true, true]);
    expect(lines[1]).toEqual({ text: 'é€😀\tu', utf8: true });
    // a byte-order mark is kept: whether it is one is the reader's to say (only the first line's is)
    expect(lines[2]).toEqual({ text: '\uFEFFbom\tu', utf8: true });
  });

  it('an empty input has no line; a NUL byte is text', async () => {
    expect(await linesOf(Buffer.alloc(0), 4)).toEqual([]);
    expect(await linesOf(Buffer.from('a\0b\tu'), 4)).toEqual([{ text: 'a\0b\tu', utf8: true }]);
  });

  it.each(sizes)('gives a line longer than the maximum as its length and first bytes, and the lines around it whole (chunks of %i)', async (size) => {
    const long = `\tunit\t"${'x'.repeat(30)}"`;
    const bytes = Buffer.from(`a\tu\n${'b'.repeat(25)}\r\n${'c'.repeat(24)}\n${long}\n\xff${'d'.repeat(30)}\nlast\t${'e'.repeat(30)}`, 'latin1');
    expect(await linesOf(bytes, size, 24)).toEqual([
      { text: 'a\tu', utf8: true },
      { overlong: 26, head: 'b'.repeat(16) },
      { text: 'c'.repeat(24), utf8: true },
      { overlong: long.length, head: long.slice(0, 16) },
      { overlong: 31, head: `\uFFFD${'d'.repeat(15)}` },
      { overlong: 35, head: `last\t${'e'.repeat(11)}` },
    ]);
  });
});
