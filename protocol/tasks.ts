/**
 * The task grammar: the orchestrator hands a worker one task per line, `id<TAB>url`, no
 * header. Ids and URLs never contain TAB, CR or LF (such ids are ledgered at compile time
 * as INVALID_ID and never reach a worker). A line that starts with a TAB (an empty id,
 * so never a task) is a directive: `<TAB>unit<TAB>"name"` (the name as a JSON string)
 * says that the tasks after it belong to that unit, so one worker serves unit after unit.
 */
export type Task = { id: string; url: string };

export const MAX_ID_BYTES = 1024;

/**
 * A URL longer than this is refused at compile time (BAD_URL) and never travels as a task:
 * no HTTP server takes a request line near it (nginx, Apache and CloudFront stop at 8 KiB,
 * Node at 16 KiB of headers), and it bounds a task line, which a worker must hold whole.
 */
export const MAX_URL_BYTES = 65_536;

/**
 * The longest line a worker reads (its LF not counted): the longest id, a TAB, the longest
 * URL and a CR. A longer one is malformed, skipped without being held whole, so a binary
 * file given as tasks by mistake, or a line that never ends, costs no more memory than it.
 */
export const MAX_TASK_LINE_BYTES = MAX_ID_BYTES + 1 + MAX_URL_BYTES + 1;

/**
 * How many tasks a worker of `concurrency` holds at once (read, without a terminal event),
 * and so how many an orchestrator keeps outstanding at it. More than its concurrency: a
 * task holds a request slot only while it talks to a host, so the worker reads ahead past
 * tasks parked at a throttled or saturated host and finds other hosts' work. Bounded:
 * memory (a parked task costs a few KB: 8,000 of them, ~55 MB measured), and the tasks a
 * worker's crash can interrupt.
 */
export function tasksAhead(concurrency: number): number {
  return Math.max(16, Math.min(8 * concurrency, concurrency + 8192));
}

/** Why an id cannot travel as a task, or null when it can. */
/**
 * A binary id or url that is not UTF-8 reaches the row checks as this mark and its bytes in
 * hex: a lone surrogate, which no decoded text holds, so it can never equal a real value
 * (decoding with U+FFFD would make distinct ids collide, and fetch a URL nobody wrote).
 */
const NOT_UTF8 = '\uDBFF';

export function notUtf8(bytes: Uint8Array): string {
  return NOT_UTF8 + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** For a value made by `notUtf8`: its bytes in hex; else null. */
export function notUtf8Bytes(value: string): string | null {
  return value.startsWith(NOT_UTF8) ? value.slice(NOT_UTF8.length) : null;
}

/**
 * A value as text to show: one made by `notUtf8` as its bytes decoded with U+FFFD for each
 * invalid sequence (what a URL redactor can read: the mark's hex would hide a URL's
 * secrets from it), any other as it is.
 */
export function shownText(value: string): string {
  const hex = notUtf8Bytes(value);
  return hex === null ? value : Buffer.from(hex, 'hex').toString('utf8');
}

export function idProblem(id: string): string | null {
  if (id === '') return 'empty id';
  const bytes = notUtf8Bytes(id);
  if (bytes !== null) return `id is not UTF-8 text (bytes ${bytes.slice(0, 64)}${bytes.length > 64 ? '…' : ''})`;
  if (/[\t\r\n]/.test(id)) return 'id contains TAB, CR or LF';
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) return `id longer than ${MAX_ID_BYTES} bytes`;
  return null;
}

/** Why a url cannot travel as a task, or null when it can. */
export function urlProblem(url: string): string | null {
  if (/[\t\r\n]/.test(url)) return 'url contains TAB, CR or LF';
  if (notUtf8Bytes(url) !== null) return 'url is not UTF-8 text';
  // A character takes at most 3 bytes per UTF-16 unit: most urls need no count.
  const bytes = url.length * 3 > MAX_URL_BYTES ? Buffer.byteLength(url, 'utf8') : url.length;
  if (bytes > MAX_URL_BYTES) return `url longer than ${MAX_URL_BYTES} bytes (${bytes})`;
  return null;
}

export function encodeTask(t: Task): string {
  const bad = idProblem(t.id) ?? urlProblem(t.url);
  if (bad) throw new Error(`cannot encode task: ${bad}`);
  return `${t.id}\t${t.url}\n`;
}

/** The directive that switches the unit of the tasks that follow. */
export function encodeUnitSwitch(unit: string): string {
  return `\tunit\t${JSON.stringify(unit)}\n`;
}

export type TaskLine = { kind: 'task'; task: Task } | { kind: 'unit'; unit: string };

/**
 * A unit name: a relative path of non-empty segments (`2024/batch-01`). Its segments name
 * folders and key prefixes, where an empty one would vanish (`a//b` is where `a/b` writes).
 */
export function isUnitName(name: string): boolean {
  return name !== '' && !name.split('/').includes('');
}

/** Parses one line of a task stream: a task, a directive, or null for a blank line; throws on a malformed one. */
export function parseTaskLine(raw: string): TaskLine | null {
  if (!raw.startsWith('\t')) {
    const task = parseTask(raw);
    return task && { kind: 'task', task };
  }
  const [, name, arg, extra] = (raw.endsWith('\r') ? raw.slice(0, -1) : raw).split('\t');
  if (name !== 'unit' || arg === undefined || extra !== undefined) {
    // What follows the TAB is most often a task's URL (its id left empty), which may carry
    // credentials: only a word that could be a directive's name is quoted.
    const quoted = /^[A-Za-z][A-Za-z0-9_-]{0,39}$/.test(name ?? '') ? ` "${name}"` : '';
    throw new Error(`unknown directive${quoted} (a task line needs a non-empty id)`);
  }
  let unit: unknown;
  try {
    unit = JSON.parse(arg);
  } catch {
    unit = undefined;
  }
  if (typeof unit !== 'string') throw new Error('the unit directive needs a JSON string');
  if (!isUnitName(unit)) throw new Error(`the unit directive names "${unit.slice(0, 80)}", not a unit (a relative path: no leading, trailing or doubled /)`);
  return { kind: 'unit', unit };
}

/** Parses one task line (no newline). Returns null for a blank line; throws on a malformed one. */
export function parseTask(raw: string): Task | null {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line === '') return null;
  const tab = line.indexOf('\t');
  if (tab <= 0) throw new Error('task line needs "id<TAB>url"');
  const url = line.slice(tab + 1);
  if (url.includes('\t')) throw new Error('task line has more than two fields');
  return { id: line.slice(0, tab), url };
}
