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
  let rest: Buffer[] = [];
  for await (const read of input) {
    const chunk = typeof read === 'string' ? Buffer.from(read, 'utf8') : read;
    let start = 0;
    for (let nl = chunk.indexOf(LF); nl >= 0; nl = chunk.indexOf(LF, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (rest.length === 0) yield decode(piece);
      else {
        const whole = Buffer.concat([...rest, piece]);
        rest = [];
        yield decode(whole);
      }
    }
    if (start < chunk.length) rest.push(chunk.subarray(start));
  }
  if (rest.length > 0) yield decode(Buffer.concat(rest));
}
