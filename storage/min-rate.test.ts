import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { NO_METER, RateWatch, metered } from './min-rate.js';

/** A source that pushes `size` bytes every `everyMs`, forever, until destroyed. */
function dripping(size: number, everyMs: number): Readable {
  let timer: NodeJS.Timeout | undefined;
  return new Readable({
    read() {
      timer ??= setInterval(() => this.push(Buffer.alloc(size)), everyMs);
    },
    destroy(err, done) {
      clearInterval(timer);
      done(err);
    },
  });
}

const cut = (detail: string) => Object.assign(new Error(detail), { code: 'FERRY_MIN_RATE' });

/** Reads `body` to its end or error, counting on `add`; resolves with the error or null. */
function readAll(body: Readable, add: (n: number) => void): Promise<{ code?: string } | null> {
  return new Promise((resolve) => {
    body.on('data', (c: Buffer) => add(c.length));
    body.once('end', () => resolve(null));
    body.once('error', (e) => resolve(e as { code?: string }));
  });
}

describe('RateWatch', () => {
  it('cuts a body read slower than the minimum rate, no sooner than the window', async () => {
    const watch = new RateWatch(1024, 500, cut);
    const src = dripping(10, 50); // 200 B/s
    const meter = watch.watch(src);
    const t0 = Date.now();
    const err = await readAll(src, (n) => meter.add(n));
    expect(err?.code).toBe('FERRY_MIN_RATE');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(src.destroyed).toBe(true);
    watch.close();
  });

  it('leaves a body read at or above the rate alone', async () => {
    const watch = new RateWatch(1024, 300, cut);
    const src = dripping(1024, 50); // ~20 KiB/s
    const meter = watch.watch(src);
    let n = 0;
    const done = readAll(src, (k) => {
      n += k;
      meter.add(k);
    });
    await sleep(900);
    expect(src.destroyed).toBe(false);
    src.push(null);
    expect(await done).toBeNull();
    expect(n).toBeGreaterThan(10 * 1024);
    watch.close();
  });

  it('cuts a body nobody reads: the rate is of bytes read, not of bytes sent', async () => {
    const watch = new RateWatch(1024, 300, cut);
    const src = dripping(4096, 20);
    watch.watch(src); // never counted
    const err = await readAll(src, () => {});
    expect(err?.code).toBe('FERRY_MIN_RATE');
    watch.close();
  });

  it('does not cut a body while its reader has paused the watch, and judges it afresh on resume', async () => {
    const watch = new RateWatch(1024, 300, cut);
    const src = dripping(4096, 40);
    const meter = watch.watch(src); // never counted: only the pause keeps it alive
    meter.pause();
    await sleep(700); // over two windows
    expect(src.destroyed).toBe(false);
    meter.resume();
    const err = await readAll(src, () => {});
    expect(err?.code).toBe('FERRY_MIN_RATE');
    watch.close();
  });

  it('forgets a body once it closes, and watches nothing when the rate or the window is 0', async () => {
    const watch = new RateWatch(1024, 200, cut);
    const src = Readable.from([Buffer.alloc(10)]);
    watch.watch(src);
    await readAll(src, () => {});
    await sleep(400); // past the window: a closed body is not destroyed again
    expect(src.errored).toBeNull();
    watch.close();
    expect(new RateWatch(0, 1000, cut).watch(src)).toBe(NO_METER);
    expect(new RateWatch(1024, 0, cut).watch(src)).toBe(NO_METER);
  });

  it("metered() counts a stream reader's bytes and passes the cut through", async () => {
    const watch = new RateWatch(1024, 300, cut);
    const src = dripping(10, 50);
    const out = metered(src, watch.watch(src));
    const err = await readAll(out, () => {});
    expect(err?.code).toBe('FERRY_MIN_RATE');
    const fast = Readable.from([Buffer.alloc(5000), Buffer.alloc(5000)]);
    let n = 0;
    expect(await readAll(metered(fast, { ...NO_METER, add: (k) => (n += k) }), () => {})).toBeNull();
    expect(n).toBe(10_000);
    expect(metered(fast, NO_METER)).toBe(fast);
    watch.close();
  });
});
