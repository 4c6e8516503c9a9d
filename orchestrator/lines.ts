/**
 * Lines of a byte stream (a worker's stdout or stderr), split on LF over the stream's
 * Buffer chunks: cheaper than node:readline, which emits an event per line through a
 * string decoder. Each chunk's complete lines are decoded at once and sliced; the bytes
 * after its last LF wait for the next chunk, so a UTF-8 character split between chunks
 * decodes whole. A CR before the LF is dropped, as readline's `crlfDelay: Infinity` did;
 * an unterminated last line still counts. `onChunk` runs after each chunk's lines, so
 * that work done once per batch of events (sending more tasks) is done once per read.
 */
import type { Readable } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;

export function eachLine(stream: Readable, onLine: (line: string) => void, onChunk?: () => void): void {
  let rest: Buffer | null = null;
  /** Every line of `text`, which ends with a LF. */
  const lines = (text: string) => {
    for (let start = 0, nl = text.indexOf('\n'); nl >= 0; start = nl + 1, nl = text.indexOf('\n', start)) {
      onLine(text.slice(start, nl > start && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl));
    }
  };
  stream.on('data', (chunk: Buffer) => {
    const last = chunk.lastIndexOf(LF);
    if (last < 0) {
      rest = rest ? Buffer.concat([rest, chunk]) : chunk;
      return;
    }
    const whole: Buffer = rest ? Buffer.concat([rest, chunk.subarray(0, last + 1)]) : chunk.subarray(0, last + 1);
    rest = last + 1 < chunk.length ? chunk.subarray(last + 1) : null;
    lines(whole.toString('utf8'));
    onChunk?.();
  });
  stream.on('end', () => {
    if (rest) lines(rest.toString('utf8') + '\n');
    rest = null;
  });
}
