/**
 * The one writer of the worker's stdout (after s5cmd's log writer): event lines are
 * batched and written in order, so concurrent tasks never interleave a line. It also
 * keeps the counters that PROGRESS reports on stderr.
 */
import { type Event, encodeEvent, encodeProgress } from '../protocol/index.js';

type Sink = { write(chunk: string): boolean; once(event: 'drain', cb: () => void): unknown };

export class Emitter {
  private batch = '';
  private scheduled = false;
  private readonly start = Date.now();
  private lastTick = { t: Date.now(), down: 0, up: 0 };
  readonly counts = { DlOk: 0, DlErr: 0, Bad: 0, UpOk: 0, UpErr: 0 };
  downBytes = 0;
  upBytes = 0;

  constructor(
    private readonly out: Sink,
    private readonly err: Sink,
    /** live figures owned by the task runner */
    private readonly live: () => { inflight: number; conc: number },
  ) {}

  emit(e: Event): void {
    switch (e.kind) {
      case 'DL_OK':
        this.counts.DlOk++;
        this.downBytes += e.bytes;
        break;
      case 'DL_ERR':
        this.counts.DlErr++;
        break;
      case 'BAD_IMAGE':
        this.counts.Bad++;
        break;
      case 'UP_OK':
        this.counts.UpOk++;
        if (!e.existed) this.upBytes += e.bytes;
        break;
      case 'UP_ERR':
        this.counts.UpErr++;
        break;
    }
    this.batch += encodeEvent(e);
    if (this.batch.length > 64 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Bytes of a streamed body as they pass (down and up at once), or taken back (`n < 0`). */
  flowed(n: number): void {
    this.downBytes += n;
    this.upBytes += n;
  }

  flush(): void {
    this.scheduled = false;
    if (this.batch === '') return;
    const chunk = this.batch;
    this.batch = '';
    this.out.write(chunk);
  }

  /** Resolves once everything written so far has left the process. */
  drained(): Promise<void> {
    this.flush();
    return new Promise((resolve) => {
      if (this.out.write('')) resolve();
      else this.out.once('drain', resolve);
    });
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
