/**
 * A unit's task list in the work dir, `<unit>.tasks.tsv` (task lines as protocol/tasks.ts
 * writes them, mode 0600): written while the manifest is read, then read back a chunk at a
 * time as workers take tasks, so a unit's URLs are never all in memory.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type Task, encodeTask, parseTaskLine } from '../protocol/index.js';

const WRITE_TASKS = 4096;
const READ_CHUNK = 1024 * 1024;
/** Tries at creating the file whose folder a concurrent prune of the work dir may remove (see journal.ts). */
const CREATE_TRIES = 10;

/**
 * Writes a unit's task file, a new one for each run: whatever an earlier run left (whole, or
 * cut short by a kill) is removed first, and the file is read back through the descriptor it
 * was written with (`commit`), so another run of the unit replacing it meanwhile changes
 * nothing for this one.
 */
export class TaskFileWriter {
  private chunk: string[] = [];

  private constructor(
    private readonly file: string,
    private readonly fd: number,
  ) {}

  static async create(file: string): Promise<TaskFileWriter> {
    for (let tries = 1; ; tries++) {
      await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await fsp.rm(file, { force: true });
      try {
        // Created here, so 0600 whatever an earlier file's mode was.
        return new TaskFileWriter(file, fs.openSync(file, 'wx+', 0o600));
      } catch (e) {
        // ENOENT: a concurrent prune removed the folder; EEXIST: another run of the unit wrote one.
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'EEXIST') || tries >= CREATE_TRIES) throw e;
      }
    }
  }

  async add(task: Task): Promise<void> {
    this.chunk.push(encodeTask(task));
    if (this.chunk.length >= WRITE_TASKS) await this.write();
  }

  private async write(): Promise<void> {
    const text = this.chunk.splice(0).join('');
    await new Promise<void>((resolve, reject) => fs.write(this.fd, text, (e) => (e ? reject(Object.assign(e, { path: e.path ?? this.file })) : resolve())));
  }

  /** Every task is added: the file, to be read from its start. */
  async commit(): Promise<TaskFileReader> {
    await this.write();
    return new TaskFileReader(this.file, this.fd);
  }

  /** A failed plan: nothing is left behind. */
  async abort(): Promise<void> {
    fs.closeSync(this.fd);
    await fsp.rm(this.file, { force: true });
  }
}

/** Reads a task file from its start, a chunk at a time: `next` gives its tasks in order, then undefined. */
export class TaskFileReader {
  private readonly buf = Buffer.allocUnsafe(READ_CHUNK);
  private pos = 0;
  private rest: Buffer[] = [];
  private batch: Task[] = [];
  private taken = 0;
  private ended = false;
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly fd: number,
  ) {}

  next(): Task | undefined {
    while (this.taken >= this.batch.length) {
      if (this.ended) return undefined;
      this.read();
    }
    return this.batch[this.taken++];
  }

  private read(): void {
    const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
    this.pos += n;
    this.batch = [];
    this.taken = 0;
    if (n === 0) {
      this.ended = true;
      if (this.rest.length > 0) throw new Error(`internal: ${this.file} ends inside a line`);
      return;
    }
    let start = 0;
    for (let nl = this.buf.indexOf(10); nl >= 0 && nl < n; nl = this.buf.indexOf(10, start)) {
      const line = this.rest.length > 0 ? Buffer.concat([...this.rest.splice(0), this.buf.subarray(start, nl)]) : this.buf.subarray(start, nl);
      const parsed = parseTaskLine(line.toString('utf8'));
      if (parsed?.kind !== 'task') throw new Error(`internal: ${this.file} holds a line that is not a task`);
      this.batch.push(parsed.task);
      start = nl + 1;
    }
    if (start < n) this.rest.push(Buffer.from(this.buf.subarray(start, n))); // a copy: the buffer is read into again
  }

  /** Closes the file; `next` gives nothing more. */
  close(): void {
    if (this.closed) return;
    this.closed = this.ended = true;
    fs.closeSync(this.fd);
  }
}
