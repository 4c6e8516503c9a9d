/**
 * The lines of a task stream (protocol/PROTOCOL.md, "Tasks"): split on LF only, a CR just
 * before it dropped, each line decoded as UTF-8 on its own. node:readline did neither: it
 * also ended a line at a lone CR (so `a<CR>b<TAB>url`, an id holding a CR, became the task
 * `b`), and it decoded invalid bytes as U+FFFD (so two ids that differ in their invalid
 * bytes became one id, and a URL nobody wrote was fetched). A line that is not UTF-8 comes
 * back marked, for the reader to report and skip.
 */
const LF = 0x0a;
const CR = 0x0d;

/** One line, without its line end; `utf8` false when its bytes are not UTF-8 (`text` then has U+FFFD for them, for messages only). */
export type InputLine = { text: string; utf8: boolean };

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });

function decode(bytes: Uint8Array): InputLine {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
  const body = bytes.subarray(0, end);
  try {
    return { text: strict.decode(body), utf8: true };
  } catch {
    return { text: lossy.decode(body), utf8: false };
  }
}

/**
 * Every line of `input`, read as the caller asks for them (the stream is not read ahead of
 * the lines taken, so memory holds one chunk and one line); an unterminated last line counts.
 */
export async function* taskLines(input: AsyncIterable<Buffer | string>): AsyncGenerator<InputLine> {
  let rest: Buffer | null = null;
  for await (const read of input) {
    const chunk = typeof read === 'string' ? Buffer.from(read, 'utf8') : read;
    const last = chunk.lastIndexOf(LF);
    if (last < 0) {
      rest = rest ? Buffer.concat([rest, chunk]) : chunk;
      continue;
    }
    const whole = rest ? Buffer.concat([rest, chunk.subarray(0, last + 1)]) : chunk.subarray(0, last + 1);
    rest = last + 1 < chunk.length ? chunk.subarray(last + 1) : null;
    yield* wholeLines(whole);
  }
  if (rest) yield decode(rest);
}

/**
 * The lines of `bytes`, which end with a LF: decoded at once when they are all UTF-8 (a LF
 * never falls inside a character, so the whole is UTF-8 exactly when each line is), else
 * line by line, to mark those that are not.
 */
function* wholeLines(bytes: Buffer): Generator<InputLine> {
  let text: string | null;
  try {
    text = strict.decode(bytes);
  } catch {
    text = null;
  }
  if (text === null) {
    for (let start = 0, nl = bytes.indexOf(LF); nl >= 0; start = nl + 1, nl = bytes.indexOf(LF, start)) yield decode(bytes.subarray(start, nl));
    return;
  }
  for (let start = 0, nl = text.indexOf('\n'); nl >= 0; start = nl + 1, nl = text.indexOf('\n', start)) {
    yield { text: text.slice(start, nl > start && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl), utf8: true };
  }
}
