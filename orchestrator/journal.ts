/**
 * A unit's event journal: the worker's event lines appended as they arrive, flushed in
 * small batches and fsynced on a short cadence, so a crash loses at most the last few
 * milliseconds of facts (those tasks are simply re-sent). The first line names the source
 * fingerprint; a journal for another version of the manifest is discarded. A torn last
 * line is never cut (another live run of the unit may be appending): the next run's first
 * line starts on a line of its own, and the torn one is read as a bad line.
 *
 * The journal is also where a unit's outcomes are kept until its outputs are written: each
 * event is handed over with the offset of its line, and `eventsAt` reads lines back by
 * offset, so the orchestrator holds a number per row, not the row's URI or detail.
 */
import fs from 'node:fs';
import { readdir, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { type Event, ProtocolError, isTerminal, parseEvent } from '../protocol/index.js';
import { WRITE_CHECK_MARKER, abandonedMarker, processGone, writerGone, writerTag } from '../storage/index.js';

const MAGIC = '#ferry-journal v1';
const FLUSH_MS = 50;
const FSYNC_MS = 1000;
const FLUSH_BYTES = 256 * 1024;

/** A run that appended to a journal before this one, and how many outcomes it journaled. */
export type EarlierRun = { runId: string; startedAt: string; outcomes: number };
/** An event and the offset in the journal where its line starts. */
export type OnJournaled = (e: Event, at: number) => void;
/**
 * What a journal held: its events went to the caller one by one, as they were read.
 * `discarded`: a journal was there for another source (its events were not read, and it
 * was started afresh), so the run sends every task again.
 */
export type Replayed = { events: number; badLines: number; runs: EarlierRun[]; discarded: boolean };

const RUN_MARK = '#run ';

/** What a journal with no event held (absent, or for another source: `discarded`). */
function nothingReplayed(discarded = false): Replayed {
  return { events: 0, badLines: 0, runs: [], discarded };
}

/** A journal's first line: it names the source fingerprint it is for. */
function headerOf(source: string): string {
  return `${MAGIC} source=${source}\n`;
}
/** A journal is read this much at a time: a unit of millions of tasks journals gigabytes. */
const READ_CHUNK = 1024 * 1024;
/** Far longer than any event line (ids ≤ 1 KiB, details a line): past it, a line is garbage. */
const MAX_LINE = 1024 * 1024;
/** Lines read back by offset are read this much at a time (they are mostly near each other). */
const AT_CHUNK = 256 * 1024;

export class Journal {
  private buffer: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastSync = Date.now();
  private dirty = false;
  private closed = false;
  /** eventsAt's read buffer, kept: it is called for every slice of every row group. */
  private atBuf: Buffer | null = null;
  /** Where the file ends after this run's writes, had no other process appended. */
  private end: number;
  /**
   * Another process (a second run of the unit) appended to the file since `open`: the
   * offsets `append` gave may be off, and `readAppended` reads the true ones back.
   */
  private othersAppended = false;
  /**
   * The write that failed (a full or read-only work dir), with the file's path: kept, and the
   * lines after it dropped, since a flush runs from a timer or a worker's event, where a throw
   * would take the process down; thrown by readAppended and close, which the unit waits for,
   * so the unit fails naming the file and the others go on.
   */
  private failure: NodeJS.ErrnoException | null = null;

  /** Whether a write failed: nothing more is journaled, so nothing more is worth sending. */
  get failed(): boolean {
    return this.failure !== null;
  }

  private constructor(
    readonly file: string,
    private readonly fd: number,
    /** Where the lines that `open` did not read start: this run's, and any another run appends meanwhile. */
    private readonly unread: number,
    /** Where the file ended after this run's first write (its run mark). */
    end: number,
  ) {
    this.end = end;
    this.checkEnd();
  }

  /**
   * Opens (or starts) the journal of a unit, giving each event it already holds to
   * `onEvent` in order, with its line's offset, and returns the runs that wrote them. `run`,
   * when given, is marked before this run's events, so a run interrupted before the unit
   * completed is still listed by the run that completes it.
   */
  static open(file: string, source: string, onEvent: OnJournaled, run?: { runId: string; startedAt: string }): { journal: Journal; replayed: Replayed } {
    const header = headerOf(source);
    const read = Journal.read(file, header, onEvent);
    if (typeof read === 'string') {
      createWithFolders(file, header);
      fs.chmodSync(file, 0o600); // a file that was there keeps its mode otherwise
    }
    // Read as well as appended: outcomes are read back from it, through this descriptor, so
    // a journal another run of the unit removes (it completed first) is still there for this one.
    const fd = fs.openSync(file, 'a+', 0o600);
    const whole = typeof read === 'string' ? Buffer.byteLength(header) : read.whole;
    // A torn tail (a killed run's last write) is left where it is, never cut: the file may be
    // another live run's, and cutting would drop the lines it appends meanwhile. This run's
    // first line starts on a line of its own; the torn one reads as a bad line, and skipped.
    const size = fs.fstatSync(fd).size;
    const first = Buffer.from(`${size > whole ? '\n' : ''}${run ? `${RUN_MARK}${run.runId} ${run.startedAt}\n` : ''}`);
    try {
      if (first.length > 0) fs.writeSync(fd, first);
    } catch (e) {
      fs.closeSync(fd);
      throw Object.assign(e as NodeJS.ErrnoException, { path: file }); // fs.writeSync names no file
    }
    const journal = new Journal(file, fd, whole, size + first.length);
    return { journal, replayed: typeof read === 'string' ? nothingReplayed(read === 'other') : read.replayed };
  }

  /**
   * The runs that wrote a unit's journal for `source`, each with the outcomes it journaled;
   * null when there is none, or one for another source. Nothing is appended.
   */
  static runsIn(file: string, source: string): EarlierRun[] | null {
    const read = Journal.read(file, headerOf(source), () => {});
    return typeof read === 'string' ? null : read.replayed.runs;
  }

  /**
   * Reads a journal line by line (never whole: it may exceed what one string can hold), up
   * to its last whole line (`whole`: where the lines not read start); 'absent', or 'other'
   * when it is for another source. It writes nothing.
   */
  private static read(file: string, header: string, onEvent: OnJournaled): { replayed: Replayed; whole: number } | 'absent' | 'other' {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
      throw e;
    }
    const replayed = nothingReplayed();
    let whole: number;
    try {
      const want = Buffer.from(header);
      const got = Buffer.alloc(want.length);
      if (fs.readSync(fd, got, 0, got.length, 0) < want.length || !got.equals(want)) return 'other';
      whole = readLines(fd, want.length, (line, at) => Journal.take(line, at, replayed, onEvent));
    } finally {
      fs.closeSync(fd);
    }
    return { replayed, whole };
  }

  /** One whole line of a journal: a run mark, a comment, an event, or a bad line (null: overlong). */
  private static take(line: string | null, at: number, replayed: Replayed, onEvent: OnJournaled): void {
    if (line === null) {
      replayed.badLines++;
      return;
    }
    if (line.startsWith(RUN_MARK)) {
      const [runId = '', startedAt = ''] = line.slice(RUN_MARK.length).split(' ');
      replayed.runs.push({ runId, startedAt, outcomes: 0 });
    }
    if (line === '' || line.startsWith('#')) return;
    let e: Event;
    try {
      e = parseEvent(line);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      replayed.badLines++;
      return;
    }
    replayed.events++;
    if (isTerminal(e) && replayed.runs.length > 0) replayed.runs[replayed.runs.length - 1]!.outcomes++;
    onEvent(e, at);
  }

  /**
   * Appends one event line (with its newline); returns the offset where it will start,
   * true unless another process appends to the file meanwhile (then see `readAppended`).
   */
  append(line: string): number {
    if (this.closed) throw new Error('internal: append to a closed journal');
    const at = this.end + this.bytes;
    this.buffer.push(line);
    this.bytes += Buffer.byteLength(line);
    if (this.bytes >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
    return at;
  }

  /** Writes buffered lines; fsyncs when the last sync is older than the cadence (or when forced). A failure is kept (`failure`). */
  flush(sync = false): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    try {
      this.write(sync);
    } catch (e) {
      this.failure ??= Object.assign(e as NodeJS.ErrnoException, { path: (e as NodeJS.ErrnoException).path ?? this.file });
    }
    if (this.failure) {
      this.buffer = [];
      this.bytes = 0;
    }
  }

  private write(sync: boolean): void {
    if (this.failure) return;
    if (this.buffer.length > 0) {
      fs.writeSync(this.fd, this.buffer.join(''));
      this.end += this.bytes;
      this.buffer = [];
      this.bytes = 0;
      this.dirty = true;
      this.checkEnd();
    }
    if (this.dirty && (sync || Date.now() - this.lastSync >= FSYNC_MS)) {
      fs.fsyncSync(this.fd);
      this.lastSync = Date.now();
      this.dirty = false;
    }
  }

  /** Whether the file ends where this run's writes alone would have ended it (appends only grow it). */
  private checkEnd(): void {
    if (!this.othersAppended && fs.fstatSync(this.fd).size !== this.end) this.othersAppended = true;
  }

  /**
   * Writes what is buffered; then, when another process appended to the file since `open`
   * (so the offsets `append` gave may be off), gives each event appended since then to
   * `onEvent`, read from the file with its true offset: this run's, and the other run's.
   */
  readAppended(onEvent: OnJournaled): void {
    this.flush(true);
    if (this.failure) throw this.failure;
    if (!this.othersAppended) return;
    readLines(this.fd, this.unread, (line, at) => Journal.take(line, at, nothingReplayed(), onEvent));
  }

  /**
   * The events whose lines start at `offsets` (offsets given to an `OnJournaled`), in the
   * order asked. They are read in file order, a chunk at a time, so lines near each other
   * (events arrive about in task order) cost one read.
   */
  eventsAt(offsets: readonly number[]): Event[] {
    this.flush();
    const order = offsets.map((_, i) => i).sort((a, b) => offsets[a]! - offsets[b]!);
    const events = new Array<Event>(offsets.length);
    let buf = (this.atBuf ??= Buffer.allocUnsafe(AT_CHUNK));
    let bufAt = 0;
    let bufLen = 0;
    for (const i of order) {
      const at = offsets[i]!;
      let nl = at >= bufAt && at < bufAt + bufLen ? buf.subarray(0, bufLen).indexOf(10, at - bufAt) : -1;
      for (let size = AT_CHUNK; nl < 0; size *= 2) {
        if (size > 2 * MAX_LINE) throw new Error(`internal: no event line at offset ${at} of ${this.file}`);
        if (buf.length < size) buf = this.atBuf = Buffer.allocUnsafe(size);
        bufAt = at;
        bufLen = fs.readSync(this.fd, buf, 0, size, at);
        nl = buf.subarray(0, bufLen).indexOf(10);
        if (nl < 0 && bufLen < size) throw new Error(`internal: no whole line at offset ${at} of ${this.file}`);
      }
      events[i] = parseEvent(buf.toString('utf8', at - bufAt, nl));
    }
    return events;
  }

  close(): void {
    if (!this.closed) {
      this.flush(true);
      this.closed = true;
      fs.closeSync(this.fd);
    }
    if (this.failure) throw this.failure;
  }
}

/** Tries at creating a file whose folder a concurrent prune keeps removing: one more is rare. */
const CREATE_TRIES = 10;

/**
 * Writes a new file (0600), making its folders (0700). Another unit's discardJournal, or
 * another command's tidy, removes folders it leaves empty, and may remove this one between
 * the mkdir and the write: the file is then written again, into a folder made again. Once
 * the file exists its folder is not empty, so it stays.
 */
function createWithFolders(file: string, text: string): void {
  for (let tries = 1; ; tries++) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(file, text, { mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || tries >= CREATE_TRIES) throw e;
    }
  }
}

export type JournalFiles = { root: string; events: string; tasks: string };

/** Where a unit's journal and task list live under a run's work dir. */
export function journalFiles(workDir: string, unit: string): JournalFiles {
  const base = path.join(workDir, ...unit.split('/'));
  return { root: workDir, events: `${base}.events`, tasks: `${base}.tasks.tsv` };
}

/**
 * Deletes a unit's journal and tasks (the outputs are the truth now), and the folders they
 * leave empty. The tasks first: a run killed in between leaves the journal, which the next
 * run recognises as a finished one and discards (discardFinishedJournal); a task file left
 * without its journal was kept for good (chaos found one).
 */
export async function discardJournal(files: JournalFiles): Promise<void> {
  await rm(files.tasks, { force: true });
  await rm(files.events, { force: true });
  const top = path.dirname(files.root);
  for (let dir = path.dirname(files.events); dir.startsWith(files.root) && dir !== top; dir = path.dirname(dir)) {
    if (!(await rmdir(dir).then(() => true, () => false))) break;
  }
}

/**
 * Removes a unit's journal for `source` left by runs that complete outputs list (`listed`,
 * from their manifest.json): the run that completed them was killed between publishing them
 * and removing its journal. The outputs are the truth; a later run must not take their
 * outcomes back instead of sending its tasks. A journal with outcomes of a run not listed
 * (one interrupted since) is kept, to be resumed. A task file without any journal is a run's
 * killed while it planned the unit (a --force recompile), before it sent a task: nothing to
 * resume, and it goes too (it holds the URLs as given).
 */
export async function discardFinishedJournal(files: JournalFiles, source: string, listed: readonly { runId: string }[]): Promise<void> {
  const runs = Journal.runsIn(files.events, source);
  if (runs === null) {
    if (!fs.existsSync(files.events) && fs.existsSync(files.tasks)) await discardJournal(files);
    return;
  }
  const ids = new Set(listed.map((r) => r.runId));
  if (runs.some((r) => ids.has(r.runId)) && runs.every((r) => r.outcomes === 0 || ids.has(r.runId))) await discardJournal(files);
}

/**
 * This process's staging folder: `<work-dir>/<run-key>/staging/<writer>` (storage/process.ts:
 * writerTag). Two commands may share a work dir (a CI job per unit, containers sharing a
 * volume), so each stages, and tidies, only its own.
 */
export function stagingDir(workDir: string): string {
  return path.join(workDir, 'staging', writerTag(process.pid));
}

/** A run folder under --work-dir: a compile's run key, or a replay's. */
const RUN_FOLDER = /^(?:replay-)?[0-9a-f]{16}$/;

/**
 * At the end of a command: this process's staged copies go, and those of processes gone
 * (killed) that this process can see (of its own host and PID namespace; earlier versions
 * named the folder with the bare pid), then the staging and run folders if nothing is left in
 * them. So too in the other run folders of the same --work-dir: a command killed while it
 * staged a manifest or a renewed Parquet (gigabytes, maybe), then run again with other
 * options (another run key) or never again, left a copy that no run of its own key would remove;
 * one killed during its work dir's write check (io.ts: checkWorkDir) left the check's marker,
 * and with it the run folder.
 */
export async function tidyWorkDir(workDir: string): Promise<void> {
  await tidyStaging(workDir, true);
  const root = path.dirname(workDir);
  const others = (await readdir(root).catch(() => [] as string[])).filter((name) => RUN_FOLDER.test(name) && path.join(root, name) !== workDir);
  await Promise.all(others.map((name) => tidyStaging(path.join(root, name), false)));
}

/** A staging folder's writer is gone: a tag's, or an earlier version's bare pid's. */
function stagerGone(name: string): boolean {
  return /^\d+$/.test(name) ? processGone(Number(name)) : writerGone(name);
}

/**
 * The pids of the other commands staging in a run folder now: every command stages there from
 * its start to its end, so a replay finds another replay of its ledger this way.
 */
export async function otherStagers(runDir: string): Promise<number[]> {
  const root = path.join(runDir, 'staging');
  const mine = stagingDir(runDir);
  const all = await readdir(root).catch(() => [] as string[]);
  return all.filter((name) => path.join(root, name) !== mine && !stagerGone(name)).map((name) => Number(/(?:^|p)(\d+)(?:s\d+)?$/.exec(name)?.[1] ?? NaN));
}

/**
 * Removes the staging folders of gone processes in a run folder (and this process's, when it
 * is `ours`) and the write-check markers of gone ones, and the folders left empty.
 */
async function tidyStaging(runDir: string, ours: boolean): Promise<void> {
  const root = path.join(runDir, 'staging');
  const mine = stagingDir(runDir);
  const all = await readdir(root).catch(() => [] as string[]);
  const gone = all.filter((name) => path.join(root, name) !== mine && stagerGone(name));
  const markers = (await readdir(runDir).catch(() => [] as string[])).filter((name) => abandonedMarker(name, WRITE_CHECK_MARKER));
  if (!ours && gone.length === 0 && markers.length === 0) return; // another command's run folder, with nothing to tidy: left alone
  const doomed = [...(ours ? [mine] : []), ...gone.map((name) => path.join(root, name)), ...markers.map((name) => path.join(runDir, name))];
  await Promise.all(doomed.map((p) => rm(p, { recursive: true, force: true })));
  await rmdir(root).catch(() => {}); // another command still stages here
  await rmdir(runDir).catch(() => {}); // journals of unfinished units stay
}

/**
 * Calls `onLine` with each newline-terminated line of the file from byte `from` (without its
 * newline) and the offset where it starts, reading a chunk at a time, or with null for a line
 * longer than any event (bytes a crash or a disk left: skipped, never held whole); returns the
 * offset just past the last whole line.
 */
function readLines(fd: number, from: number, onLine: (line: string | null, at: number) => void): number {
  const chunk = Buffer.allocUnsafe(READ_CHUNK);
  let rest: Buffer[] = []; // the current line's bytes from earlier chunks
  let restBytes = 0;
  let overlong = false;
  let pos = from;
  let whole = from;
  for (;;) {
    const n = fs.readSync(fd, chunk, 0, chunk.length, pos);
    if (n === 0) return whole;
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0 && nl < n; nl = chunk.indexOf(10, start)) {
      if (overlong) onLine(null, whole);
      else if (restBytes > 0) onLine(Buffer.concat([...rest, chunk.subarray(start, nl)]).toString('utf8'), whole);
      else onLine(chunk.toString('utf8', start, nl), whole);
      rest = [];
      restBytes = 0;
      overlong = false;
      start = nl + 1;
      whole = pos + start;
    }
    restBytes += n - start;
    if (restBytes > MAX_LINE) {
      overlong = true;
      rest = [];
    } else if (start < n) rest.push(Buffer.from(chunk.subarray(start, n))); // a copy: the chunk is read into again
    pos += n;
  }
}
