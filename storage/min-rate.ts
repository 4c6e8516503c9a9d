/**
 * The minimum-rate cut (`--min-rate`): a body that fewer than `minRate` bytes/s were read
 * from over the last `windowMs` is destroyed with FERRY_MIN_RATE. The idle timeout alone
 * never ends a body that sends one byte just before each timeout.
 *
 * One timer serves every body of a client: a Transform, a pipeline and an interval per
 * body cost more CPU than the download of a 20 KB image itself. Counting is the reader's
 * job (`add` per chunk, or `metered()` for a reader that takes a stream), so the rate is
 * of bytes read: a reader that stops reading is cut too.
 */
import { Transform, type Readable, pipeline } from 'node:stream';

/**
 * Bytes a reader took from one body. `pause` while ferry itself holds a body unread (it
 * waits for a large-body slot): the origin is not slow then, and its window starts again on
 * `resume`.
 */
export interface BodyMeter {
  add(n: number): void;
  pause(): void;
  resume(): void;
}

export const NO_METER: BodyMeter = { add() {}, pause() {}, resume() {} };

type Watched = { cut: (err: Error) => void; total: number; history: number[] | null; paused: boolean };

/** A body being watched: count what is read on it, and `end` the watch once it is over. */
export type Watch = BodyMeter & { end(): void };

const NO_WATCH: Watch = { ...NO_METER, end() {} };

export class RateWatch {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | null = null;
  private readonly tickMs: number;
  /** Ticks compared: one more than fit in the window, so a body is never judged on less. */
  private readonly span: number;
  private readonly need: number;

  constructor(
    private readonly minRate: number,
    private readonly windowMs: number,
    private readonly cut: (detail: string) => Error,
  ) {
    this.tickMs = Math.max(50, Math.floor(windowMs / 20));
    this.span = Math.ceil(windowMs / this.tickMs) + 1;
    this.need = (minRate * windowMs) / 1000;
  }

  get enabled(): boolean {
    return this.minRate > 0 && this.windowMs > 0;
  }

  /** Starts watching `body` until it closes. */
  watch(body: Readable): BodyMeter {
    if (!this.enabled) return NO_METER;
    const w = this.watchCut((err) => body.destroy(err));
    body.once('close', () => w.end());
    return w;
  }

  /**
   * Starts watching a body that is not a stream (one read whole by its client): a body too
   * slow is ended by `cut`. The caller ends the watch when the body is over.
   */
  watchCut(cut: (err: Error) => void): Watch {
    if (!this.enabled) return NO_WATCH;
    const w: Watched = { cut, total: 0, history: null, paused: false };
    this.watched.add(w);
    this.timer ??= setInterval(() => this.tick(), this.tickMs).unref();
    const watched = this.watched;
    return {
      add(n) {
        w.total += n;
      },
      pause() {
        w.paused = true;
        w.history = null;
      },
      resume() {
        w.paused = false;
      },
      end() {
        watched.delete(w);
      },
    };
  }

  private tick(): void {
    for (const w of this.watched) {
      if (w.paused) continue;
      // Most bodies end before their first tick: their history is never allocated.
      const h = (w.history ??= [0]);
      h.push(w.total);
      if (h.length <= this.span) continue;
      const before = h.shift() ?? 0;
      if (w.total - before < this.need) {
        this.watched.delete(w);
        w.cut(this.cut(`body slower than ${this.minRate} B/s over ${this.windowMs} ms`));
      }
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.watched.clear();
  }
}

/**
 * `body` as a stream whose reads are counted on `meter`: for a reader that takes a whole
 * stream (a large object streamed on). Errors, the cut included, pass through.
 */
export function metered(body: Readable, meter: BodyMeter): Readable {
  if (meter === NO_METER) return body;
  const out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      meter.add(chunk.length);
      done(null, chunk);
    },
  });
  pipeline(body, out, () => {});
  return out;
}
