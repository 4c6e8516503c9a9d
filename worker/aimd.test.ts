import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reason } from '../protocol/index.js';
import { StorageError, type StorageAdapter, openStore, parsePlace } from '../storage/index.js';
import { type HttpClient, createHttpClient } from '../storage/http.js';
import { type Origin, startOrigin } from '../test/helpers/run.js';
import { type Admission, type Verdict, type Window, HostLimits, afterSuccess, afterThrottle, startWindow } from './aimd.js';
import { download, verdictOf } from './download.js';
import { storeVerdict, uploadPayload } from './upload.js';

const win = (limit: number, successes = 0, slowStart = false): Window => ({ limit, successes, slowStart });

describe('AIMD arithmetic', () => {
  it.each([
    [64, 8],
    [8, 8],
    [3, 3],
  ])('a new host under a ceiling of %i starts at %i, in slow start', (ceiling, limit) => {
    expect(startWindow(ceiling)).toEqual(win(limit, 0, true));
  });

  it.each([
    [win(64), 44.8],
    [win(10, 4), 7],
    [win(32, 0, true), 22.4],
    [win(1.4), 1],
    [win(1), 1],
  ])('a throttle at %j leaves %d (×0.7, floor 1) and ends slow start', (w, limit) => {
    const next = afterThrottle(w);
    expect(next.limit).toBeCloseTo(limit, 9);
    expect(next).toMatchObject({ successes: 0, slowStart: false });
  });

  it.each([
    ['slow start: +1 per success', win(8, 0, true), 64, win(9, 0, true)],
    ['slow start stops at the ceiling', win(63.5, 0, true), 64, win(64, 0, true)],
    ['at the ceiling, nothing grows', win(64, 3), 64, win(64, 0)],
    ['a success short of a window is counted', win(7, 0), 64, win(7, 1)],
    ['a window of successes adds one', win(7, 6), 64, win(8, 0)],
    ['the window is the whole part of the limit', win(7.9, 6), 64, win(8.9, 0)],
    ['additive increase stops at the ceiling', win(9.5, 8), 10, win(10, 0)],
  ])('%s', (_name, w, ceiling, next) => {
    const got = afterSuccess(w, ceiling);
    expect(got.limit).toBeCloseTo(next.limit, 9);
    expect(got).toMatchObject({ successes: next.successes, slowStart: next.slowStart });
  });

  it.each<[number | null, Reason | null, Verdict]>([
    [429, 'THROTTLED', 'throttled'],
    [503, 'HTTP_5XX', 'throttled'],
    [400, 'THROTTLED', 'throttled'], // S3 Throttling / RequestLimitExceeded
    [null, 'THROTTLED', 'throttled'],
    [200, null, 'ok'],
    [404, 'NOT_FOUND', 'ok'],
    [200, 'TOO_LARGE', 'ok'],
    [500, 'HTTP_5XX', 'neutral'],
    [200, 'TIMEOUT', 'neutral'],
    [null, 'RESET', 'neutral'],
    [null, 'BLOCKED_ADDRESS', 'neutral'],
  ])('a try with status %s and reason %s is %s', (status, reason, verdict) => {
    expect(verdictOf(status, reason)).toBe(verdict);
  });

  it.each<[unknown, Verdict]>([
    [new StorageError('THROTTLED', 'SlowDown', { status: 503 }), 'throttled'],
    [new StorageError('TRANSIENT', 'socket hang up'), 'neutral'],
    [new StorageError('FORBIDDEN', 'AccessDenied', { status: 403 }), 'neutral'],
    [new Error('bug'), 'neutral'],
  ])('a store failure %s is %s', (e, verdict) => {
    expect(storeVerdict(e)).toBe(verdict);
  });
});

/** Acquires `n` slots of `host` at once, in order. */
async function take(limits: HostLimits, host: string, n: number) {
  return Promise.all(Array.from({ length: n }, () => limits.acquire(host)));
}

/** Starts `n` acquisitions; `granted` counts the ones that got a slot so far. */
function queue(limits: HostLimits, host: string, n: number) {
  const order: number[] = [];
  const leases = Array.from({ length: n }, (_, i) => limits.acquire(host).then((l) => (order.push(i), l)));
  return { order, leases };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('HostLimits', () => {
  it('admits up to the limit, queues the rest, and hands slots over in order', async () => {
    const limits = new HostLimits(64);
    const first = await take(limits, 'a', 8);
    const q = queue(limits, 'a', 3);
    await tick();
    expect(q.order).toEqual([]);
    first[0]!.release('neutral');
    first[1]!.release('neutral');
    await tick();
    expect(q.order).toEqual([0, 1]);
    // Another host has its own limit.
    await take(limits, 'b', 8);
  });

  it('a burst of throttles from requests in flight together lowers the limit once', async () => {
    const limits = new HostLimits(64);
    const leases = await take(limits, 'a', 8);
    for (const l of leases) l.release('throttled');
    expect(limits.limitOf('a')).toBe(5); // 8 × 0.7 = 5.6
    // A request sent after the decrease is a new congestion event.
    const [next] = await take(limits, 'a', 1);
    next!.release('throttled');
    expect(limits.limitOf('a')).toBe(3); // 5.6 × 0.7 = 3.92
  });

  it('goes no lower than one slot, and still admits one', async () => {
    const limits = new HostLimits(64);
    for (let i = 0; i < 10; i++) (await limits.acquire('a')).release('throttled');
    expect(limits.limitOf('a')).toBe(1);
    const [one] = await take(limits, 'a', 1);
    const q = queue(limits, 'a', 1);
    await tick();
    expect(q.order).toEqual([]);
    one!.release('ok');
    await tick();
    expect(q.order).toEqual([0]);
  });

  it('after a decrease, queued requests wait until fewer than the new limit are in flight', async () => {
    const limits = new HostLimits(64);
    const held = await take(limits, 'a', 8);
    const q = queue(limits, 'a', 2);
    held[0]!.release('throttled'); // limit 5, 7 in flight
    held[1]!.release('ok'); // stale: sent before the decrease, changes nothing
    held[2]!.release('ok');
    await tick();
    expect(q.order).toEqual([]); // 5 in flight, limit 5
    held[3]!.release('neutral');
    await tick();
    expect(q.order).toEqual([0]);
    expect(limits.limitOf('a')).toBe(5);
  });

  it('grows by one per window of successes while the host uses its whole limit', async () => {
    const limits = new HostLimits(64);
    for (const l of await take(limits, 'a', 8)) l.release('throttled'); // 5.6
    const first = await take(limits, 'a', 5);
    const q = queue(limits, 'a', 50); // the host stays busy
    for (const l of first) l.release('ok');
    expect(limits.limitOf('a')).toBe(6); // a window of 5: 6.6
    await tick();
    expect(q.order).toHaveLength(6);
    for (const l of await Promise.all(q.leases.slice(0, 6))) l.release('ok');
    expect(limits.limitOf('a')).toBe(7); // a window of 6: 7.6
  });

  it('does not grow a limit the host does not use', async () => {
    const limits = new HostLimits(64);
    for (let i = 0; i < 50; i++) (await limits.acquire('a')).release('ok');
    expect(limits.limitOf('a')).toBe(8); // one at a time
    const held = await take(limits, 'a', 7);
    for (let i = 0; i < 50; i++) (await limits.acquire('a')).release('ok');
    expect(limits.limitOf('a')).toBe(9); // eight at a time filled 8 slots once, never 9
    for (const l of held) l.release('ok');
  });

  it('slow start reaches the ceiling within (ceiling − 8) successes of a busy host', async () => {
    const limits = new HostLimits(20);
    const q = queue(limits, 'a', 200);
    let done = 0;
    for (const p of q.leases) {
      (await p).release('ok');
      if (++done === 12) expect(limits.limitOf('a')).toBe(20);
    }
    expect(limits.limitOf('a')).toBe(20); // and keeps it while idle
  });

  it('a lease given back twice counts once', async () => {
    const limits = new HostLimits(64);
    const held = await take(limits, 'a', 8);
    const q = queue(limits, 'a', 2);
    held[0]!.release('neutral');
    held[0]!.release('neutral');
    await tick();
    expect(q.order).toEqual([0]); // one slot came back, not two
  });

  it('capacity: throttled limits of busy hosts, else of all known, at most the ceiling', async () => {
    const limits = new HostLimits(20);
    expect(limits.capacity()).toBe(20);
    for (const l of await take(limits, 'a', 8)) l.release('throttled'); // a: 5.6, idle
    for (const l of await take(limits, 'b', 8)) l.release('throttled'); // b: 5.6, idle
    expect(limits.capacity()).toBe(10); // none busy: all known
    const a = await take(limits, 'a', 1);
    expect(limits.capacity()).toBe(5); // a busy
    const c = await take(limits, 'c', 1);
    expect(limits.capacity()).toBe(20); // c never throttled: at the ceiling
    for (const l of [...a, ...c]) l.release('neutral');
  });

  it('past its bound, forgets the least recently used idle host, never a busy one', async () => {
    const limits = new HostLimits(64, 3);
    const throttle = async (h: string) => (await limits.acquire(h)).release('throttled');
    await throttle('a');
    await throttle('b');
    const busy = await limits.acquire('c'); // c stays busy
    await throttle('a'); // a used again: b is now the least recently used
    await throttle('d'); // room made by forgetting b
    expect([limits.limitOf('a'), limits.limitOf('b'), limits.limitOf('c'), limits.limitOf('d')]).toEqual([3, null, 8, 5]);
    busy.release('ok');
    await throttle('e'); // then c, idle now, is the oldest
    expect(limits.limitOf('c')).toBeNull();
  });
});

/** An admission that records what each lease said, and how many are held at once. */
function spy(inner: Admission) {
  const s = {
    verdicts: [] as Verdict[],
    held: 0,
    peak: 0,
    acquire: async (host: string) => {
      const lease = await inner.acquire(host);
      s.held++;
      s.peak = Math.max(s.peak, s.held);
      let open = true;
      return {
        release: (v: Verdict) => {
          expect(open, 'a lease given back twice').toBe(true);
          open = false;
          s.held--;
          s.verdicts.push(v);
          lease.release(v);
        },
      };
    },
  };
  return s;
}

describe('download and upload hold a host slot per try', () => {
  let origin: Origin;
  let client: HttpClient;
  let dir: string;
  let seq = 0;
  const key = (name: string) => `${name}-aimd-${++seq}`;

  beforeAll(async () => {
    origin = await startOrigin();
    client = createHttpClient({ allowPrivateNetwork: true, timeoutMs: 2000, proxy: 'none' });
    dir = mkdtempSync(join(tmpdir(), 'ferry-aimd-'));
  });
  afterAll(async () => {
    await client?.close();
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('429s are reported to the host limit; results and attempts are unchanged', async () => {
    const limits = new HostLimits(64);
    const s = spy(limits);
    const r = await download(`${origin.url}/throttle/${key('t')}?after=0&fail=2`, { client, retries: 3, admit: s });
    expect(r).toMatchObject({ ok: true, attempts: 3 });
    expect(s.verdicts).toEqual(['throttled', 'throttled', 'ok']);
    expect(s.held).toBe(0);
    expect(limits.limitOf(new URL(origin.url).host)).toBe(3); // 8 → 5.6 → 3.92: each retry started after the decrease
  });

  it('the slot is free during the backoff sleep: another task on that host goes first', async () => {
    const limits = new HostLimits(1); // one slot for the host
    const finished: string[] = [];
    const slow = download(`${origin.url}/flaky/${key('f')}?fail=1&status=500`, { client, retries: 1, admit: limits, backoffBaseMs: 600, random: () => 0.999 }).then((r) => {
      finished.push('flaky');
      return r;
    });
    await new Promise((r) => setTimeout(r, 150));
    const started = Date.now();
    const quick = await download(`${origin.url}/ok/${key('o')}`, { client, admit: limits });
    finished.push('ok');
    expect(quick).toMatchObject({ ok: true, attempts: 1 });
    expect(Date.now() - started).toBeLessThan(300); // not held up by the ~600 ms sleep
    expect(await slow).toMatchObject({ ok: true, attempts: 2 });
    expect(finished).toEqual(['ok', 'flaky']);
  });

  it('a streamed body holds its slot until it closes', async () => {
    const s = spy(new HostLimits(64));
    const r = await download(`${origin.url}/steady/${key('s')}?chunks=8&size=1000&every=5`, { client, admit: s, streamAbove: 100 });
    expect(r).toMatchObject({ ok: true, kind: 'stream' });
    expect(s.held).toBe(1);
    if (!r.ok || r.kind !== 'stream') return;
    let n = 0;
    for await (const chunk of r.stream as Readable) n += (chunk as Buffer).length;
    expect(n).toBe(8000);
    await tick();
    expect(s.held).toBe(0);
    r.release(); // the caller's release after close: counted once (the spy would fail)
    expect(s.verdicts).toEqual(['ok']);
  });

  it('an upload try holds a destination slot; SlowDown is a throttle', async () => {
    const store = await openStore(parsePlace(dir));
    let puts = 0;
    const flaky: StorageAdapter = Object.create(store, {
      put: {
        value: (...args: Parameters<StorageAdapter['put']>) => {
          if (++puts === 1) return Promise.reject(new StorageError('THROTTLED', 'SlowDown', { status: 503 }));
          return store.put(...args);
        },
      },
    });
    const s = spy(new HostLimits(64));
    const body = Buffer.from('payload');
    const payload = { id: 'x', key: 'x.bin', body, contentType: 'application/octet-stream', sha256: 'f'.repeat(64), source: '7:', runId: 'r' };
    const up = await uploadPayload(flaky, payload, { overwrite: false, retries: 2, backoffBaseMs: 1, admit: () => s.acquire('destination') });
    expect(up).toMatchObject({ ok: true, attempts: 2 });
    expect(s.verdicts).toEqual(['throttled', 'ok']);
    expect(s.peak).toBe(1);
  });
});
