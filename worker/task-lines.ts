/**
 * The lines of a task stream (protocol/PROTOCOL.md, "Tasks"): split on LF only, a CR just
 * before it dropped, each line decoded as UTF-8 on its own. node:readline did neither: it
 * also ended a line at a lone CR (so `a<CR>b<TAB>url`, an id holding a CR, became the task
 * `b`), and it decoded invalid bytes as U+FFFD (so two ids that differ in their invalid
 * bytes became one id, and a URL nobody wrote was fetched). A line that is not UTF-8 comes
 * back marked, for the reader to report and skip; so does a line longer than the reader's
 * maximum, without its bytes being held (a binary file given as tasks, a line that never
 * ends: `yes | tr -d '\n'`).
 */
const LF = 0x0a;
const CR = 0x0d;

/**
 * One line, without its line end; `utf8` false when its bytes are not UTF-8 (`text` then
 * has U+FFFD for them, for messages only). Or a line longer than the reader's maximum:
 * its length, and its first bytes (`head`, with U+FFFD for invalid ones) to tell what it
 * meant to be, its other bytes dropped as they came.
 */
export type InputLine = { text: string; utf8: boolean } | { overlong: number; head: string };

/** How many of an overlong line's first bytes it keeps. */
const HEAD_BYTES = 16;

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });

/** A line of `length` bytes, too long to hold, that starts with `start`. */
function overlong(length: number, start: Uint8Array): InputLine {
  return { overlong: length, head: lossy.decode(start.subarray(0, HEAD_BYTES)) };
}

function decode(bytes: Uint8Array): InputLine {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
  const body = bytes.subarray(0, end);
  try {
    return { text: strict.decode(body), utf8: true };
  } catch {
    return { text: lossy.decode(body), utf8: false };
  }
}

/** A line read in pieces, held until it passes `max` bytes, then only counted. */
class PartialLine {
  private pieces: Buffer[] = [];
  private head: Buffer | null = null;
  bytes = 0;

  constructor(private readonly max: number) {}

  add(piece: Buffer): void {
    if (piece.length === 0) return;
    this.bytes += piece.length;
    if (this.head) return;
    if (this.bytes <= this.max) {
      this.pieces.push(piece);
      return;
    }
    this.head = Buffer.concat([...this.pieces, piece.subarray(0, HEAD_BYTES)]).subarray(0, HEAD_BYTES);
    this.pieces = [];
  }

  take(): InputLine {
    const line = this.head ? overlong(this.bytes, this.head) : decode(Buffer.concat(this.pieces, this.bytes));
    this.pieces = [];
    this.head = null;
    this.bytes = 0;
    return line;
  }
}

/**
 * Every line of `input`, read as the caller asks for them (the stream is not read ahead of
 * the lines taken, so memory holds one chunk and one line of at most `maxBytes`, its line
 * end not counted); an unterminated last line counts.
 */
export async function* taskLines(input: AsyncIterable<Buffer | string>, maxBytes: number): AsyncGenerator<InputLine> {
  const partial = new PartialLine(maxBytes);
  for await (const read of input) {
    const chunk = typeof read === 'string' ? Buffer.from(read, 'utf8') : read;
    const first = chunk.indexOf(LF);
    if (first < 0) {
      partial.add(chunk);
      continue;
    }
    partial.add(chunk.subarray(0, first));
    yield partial.take();
    const last = chunk.lastIndexOf(LF);
    if (last > first) yield* wholeLines(chunk.subarray(first + 1, last + 1), maxBytes);
    partial.add(chunk.subarray(last + 1));
  }
  if (partial.bytes > 0) yield partial.take();
}

/**
 * The lines of `bytes`, which end with a LF: decoded at once when they are all UTF-8 (a LF
 * never falls inside a character, so the whole is UTF-8 exactly when each line is) and
 * none can be longer than `maxBytes`, else line by line, to mark those that are not UTF-8
 * or too long.
 */
function* wholeLines(bytes: Buffer, maxBytes: number): Generator<InputLine> {
  let text: string | null = null;
  if (bytes.length <= maxBytes) {
    try {
      text = strict.decode(bytes);
    } catch {
      text = null;
    }
  }
  if (text === null) {
    for (let start = 0, nl = bytes.indexOf(LF); nl >= 0; start = nl + 1, nl = bytes.indexOf(LF, start)) {
      const line = bytes.subarray(start, nl);
      yield line.length > maxBytes ? overlong(line.length, line) : decode(line);
    }
    return;
  }
  for (let start = 0, nl = text.indexOf('\n'); nl >= 0; start = nl + 1, nl = text.indexOf('\n', start)) {
    yield { text: text.slice(start, nl > start && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl), utf8: true };
  }
}
