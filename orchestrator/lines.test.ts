import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { eachLine } from './lines.js';

async function split(chunks: Buffer[]): Promise<{ lines: string[]; chunks: number }> {
  const stream = new PassThrough();
  const lines: string[] = [];
  let calls = 0;
  eachLine(stream, (l) => lines.push(l), () => calls++);
  for (const c of chunks) stream.write(c);
  stream.end();
  await once(stream, 'close');
  return { lines, chunks: calls };
}

const text = 'UP_OK\tä\tfile:///x/ä.jpg\nDL_OK\tb\t12\r\n\nlast';

describe('eachLine', () => {
  it.each([1, 2, 3, 7, 1000])('gives the same lines whatever the chunk size (%i bytes)', async (size) => {
    const bytes = Buffer.from(text);
    const chunks = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size)); // splits 'ä' too
    expect((await split(chunks)).lines).toEqual(['UP_OK\tä\tfile:///x/ä.jpg', 'DL_OK\tb\t12', '', 'last']);
  });

  it('calls onChunk once per chunk that completes lines', async () => {
    expect(await split([Buffer.from('a\nb\n'), Buffer.from('c'), Buffer.from('d\n')])).toEqual({ lines: ['a', 'b', 'cd'], chunks: 2 });
  });
});
