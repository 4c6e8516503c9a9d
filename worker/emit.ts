/**
 * The one writer of the worker's stdout (after s5cmd's log writer): event lines are
 * batched and written in order, so concurrent tasks never interleave a line. It also
 * keeps the counters that PROGRESS reports on stderr.
 */
import { type Event, encodeEvent, encodeProgress } from '../protocol/index.js';

type Sink = {
  write(chunk: string, cb?: () => void): boolean;
  on(event: 'drain' | 'close', cb: () => void): unknown;
  off(event: 'drain' | 'close', cb: () => void): unknown;
  readonly writableLength?: number;
  readonly destroyed?: boolean;
};

/** Whether more than MAX_BACKLOG_BYTES written to `sink` wait for its reader. */
function behind(sink: Sink): boolean {
  return !sink.destroyed && (sink.writableLength ?? 0) > MAX_BACKLOG_BYTES;
}

/** Resolves when `sink` has passed on what it held, or closed (its reader gone: nothing more will pass). */
function drainedOrClosed(sink: Sink): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('close', done);
  });
}

/**
 * Resolves once what was written to `sink` before has left the process (an empty write's
 * callback comes after every earlier chunk's), or can never (a closed stream).
 */
function passedOn(sink: Sink): Promise<void> {
  return new Promise((resolve) => {
    if (sink.destroyed) resolve();
    else sink.write('', () => resolve());
  });
}

/**
 * The bytes written to stdout, or stderr, but not yet taken by its reader past which the
 * worker reads no more tasks: a pipe takes a write whatever its reader does, and holds what
 * it cannot pass on in memory (~500 bytes an event, ~400 a message naming a bad line,
 * measured), so a reader that stalls (`| less`, a script busy with each event, a log
 * shipper) would have them all held.
 */
const MAX_BACKLOG_BYTES = 1 << 20;

export class Emitter {
  private batch = '';
  private scheduled = false;
  /** After stop(): no event is written any more. */
  private stopped = false;
  private readonly start = Date.now();
  private lastTick = { t: Date.now(), down: 0, up: 0 };
  readonly counts = { DlOk: 0, DlErr: 0, Bad: 0, UpOk: 0, UpErr: 0 };
  /** Bytes moved so far, only ever growing: the rates are their differences. */
  downBytes = 0;
  upBytes = 0;
  /** Bytes of streamed bodies counted as they passed, by task, that its DL_OK and UP_OK must not count again. */
  private readonly passed = new Map<string, { down: number; up: number }>();

  constructor(
    private readonly out: Sink,
    private readonly err: Sink,
    /** live figures owned by the task runner */
    private readonly live: () => { inflight: number; conc: number },
  ) {}

  emit(e: Event): void {
    if (this.stopped) return;
    switch (e.kind) {
      case 'DL_OK':
        this.counts.DlOk++;
        this.downBytes += this.uncounted(e.id, 'down', e.bytes);
        break;
      case 'DL_ERR':
        this.counts.DlErr++;
        break;
      case 'BAD_IMAGE':
        this.counts.Bad++;
        break;
      case 'UP_OK':
        this.counts.UpOk++;
        if (!e.existed) this.upBytes += this.uncounted(e.id, 'up', e.bytes);
        break;
      case 'UP_ERR':
        this.counts.UpErr++;
        break;
    }
    if (e.kind !== 'DL_OK') this.passed.delete(e.id); // its terminal event: nothing of it is left to count
    this.batch += encodeEvent(e);
    if (this.batch.length > 64 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Bytes of task `id`'s streamed body as they pass: downloaded, and uploaded (`up`, 0 while
   * a body is only hashed). They stay counted when the transfer then fails, since they did
   * move: a rate is never negative.
   */
  flowed(id: string, down: number, up: number): void {
    this.downBytes += down;
    this.upBytes += up;
    const p = this.passed.get(id);
    if (p) {
      p.down += down;
      p.up += up;
    } else this.passed.set(id, { down, up });
  }

  /** What an event's `bytes` add to a total, once the bytes already counted as they passed are set against them. */
  private uncounted(id: string, side: 'down' | 'up', bytes: number): number {
    const p = this.passed.get(id);
    if (!p) return bytes;
    const already = Math.min(p[side], bytes);
    p[side] -= already;
    return bytes - already;
  }

  /** Writes the events so far, and no later one: what a stopped worker says has ended is what had ended when it stopped. */
  stop(): void {
    this.flush();
    this.stopped = true;
  }

  flush(): void {
    this.scheduled = false;
    if (this.batch === '') return;
    const chunk = this.batch;
    this.batch = '';
    this.out.write(chunk);
  }

  /** Whether stdout or stderr holds more than MAX_BACKLOG_BYTES its reader has not taken (then await caughtUp before reading on). */
  backedUp(): boolean {
    return behind(this.out) || behind(this.err);
  }

  /** Resolves once stdout and stderr hold at most MAX_BACKLOG_BYTES each, waiting for their readers to take the rest. */
  async caughtUp(): Promise<void> {
    for (const sink of [this.out, this.err]) while (behind(sink)) await drainedOrClosed(sink);
  }

  /**
   * Resolves once everything written so far, on stdout and stderr, has left the process:
   * process.exit() drops what a pipe has not taken yet (the last PROGRESS, the messages
   * naming malformed lines, for a reader that is a little late).
   */
  async drained(): Promise<void> {
    this.flush();
    await Promise.all([passedOn(this.out), passedOn(this.err)]);
  }

  progress(): void {
    const now = Date.now();
    const dt = Math.max((now - this.lastTick.t) / 1000, 0.001);
    const { inflight, conc } = this.live();
    this.err.write(
      encodeProgress({
        t: (now - this.start) / 1000,
        ...this.counts,
        Inflight: inflight,
        Conc: conc,
        DownRate: (this.downBytes - this.lastTick.down) / dt,
        UpRate: (this.upBytes - this.lastTick.up) / dt,
      }),
    );
    this.lastTick = { t: now, down: this.downBytes, up: this.upBytes };
  }
}
