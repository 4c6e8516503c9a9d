/**
 * Text for one line of a terminal or a log: control characters (a newline, ESC…) that a
 * name may hold — a manifest's key is any bytes its writer chose — are shown escaped, so a
 * name can neither split a line, leaving its second half without the unit it is about, nor
 * send the terminal escape sequences.
 */
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- the control characters are what it finds
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => NAMED[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * `line` cut to at most `columns` terminal columns, whole characters only, as `stringWidth`
 * (string-width's) measures them: a wide one (CJK, most emoji) takes two, a combining mark
 * none. A live line longer than the terminal wraps, and the board, moving up one row per
 * line to redraw, would leave its tail on screen.
 */
export function fitColumns(line: string, columns: number, stringWidth: (text: string) => number): string {
  if (stringWidth(line) <= columns) return line;
  let out = '';
  let width = 0;
  graphemes ??= new Intl.Segmenter();
  for (const { segment } of graphemes.segment(line)) {
    width += stringWidth(segment);
    if (width > columns) break;
    out += segment;
  }
  return out;
}

// Made on first use: building one loads ICU's break rules (~7 ms), and only a live board
// on a terminal cuts lines to its width.
let graphemes: Intl.Segmenter | undefined;
