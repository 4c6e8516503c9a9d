import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reason } from '../protocol/index.js';
import { StorageError, type StorageAdapter, openStore, parsePlace } from '../storage/index.js';
import { type HttpClient, createHttpClient } from '../storage/http.js';
import { type Origin, startOrigin } from '../test/helpers/run.js';
import { type Admission, type Lease, type Verdict, type Window, CUBE, DECREASE, HostLimits, MAX_STEP, afterSuccess, afterThrottle, cubic, slotsOf, startWindow } from './aimd.js';
import { download, verdictOf } from './download.js';
import { storeVerdict, uploadPayload } from './upload.js';

const win = (limit: number, slowStart = false, peak = 0, rounds = 0): Window => ({ limit, slowStart, peak, rounds });

/** The whole slots of each round (a window's worth of successes) after a throttle at `peak`. */
function roundsAfterThrottle(peak: number, ceiling: number, rounds: number): number[] {
  let w = afterThrottle(win(peak), peak);
  const slots: number[] = [];
  for (let r = 0; r < rounds; r++) {
    slots.push(slotsOf(w));
    for (let n = slotsOf(w); n > 0; n--) w = afterSuccess(w, ceiling);
  }
  return slots;
}

describe('AIMD arithmetic', () => {
  it.each([
    [64, 8],
    [8, 8],
    [3, 3],
  ])('a new host under a ceiling of %i starts at %i, in slow start', (ceiling, limit) => {
    expect(startWindow(ceiling)).toEqual(win(limit, true));
  });

  it.each([
    [win(64), 64, 44.8, 64],
    [win(10, false, 20, 3), 10, 7, 10],
    [win(32, true), 32, 22.4, 32],
    [win(128, true), 65, 45.5, 65], // slow start's last doubling: from where the host refused
    [win(100), 20, 14, 20], // slots never used prove nothing
    [win(10), 99, 7, 10],
    [win(1.4), 2, 1, 1.4],
    [win(1), 1, 1, 1],
  ])('a throttle at %j, sent with %i in flight, leaves %d (×0.7, floor 1), ends slow start, aims back at %d', (w, inFlight, limit, peak) => {
    const next = afterThrottle(w, inFlight);
    expect(next.limit).toBeCloseTo(limit, 9);
    expect(next).toEqual({ limit: next.limit, slowStart: false, peak, rounds: 0 });
  });

  it('the cubic starts at the decrease, is back at the peak at K rounds, and only rises', () => {
    const k = Math.cbrt((64 * (1 - DECREASE)) / CUBE);
    expect(cubic(64, 0)).toBeCloseTo(64 * DECREASE, 9);
    expect(cubic(64, k)).toBeCloseTo(64, 9);
    const curve = Array.from({ length: 20 }, (_, r) => cubic(64, r));
    expect(curve).toEqual([...curve].sort((a, b) => a - b));
  });

  it.each([
    ['slow start: +1 per success', win(8, true), 64, win(9, true)],
    ['slow start stops at the ceiling', win(63.5, true), 64, win(64, true)],
    ['at the ceiling, nothing grows', win(64, false, 80, 2), 64, win(64, false, 80, 2)],
    ['past a throttle, a success is 1/slots of a round, the limit on the cubic', win(44.8, false, 64, 0), 64, win(cubic(64, 1 / 44), false, 64, 1 / 44)],
    ['never lower than it is', win(50, false, 64, 0), 64, win(50, false, 64, 1 / 50)],
    ['at most MAX_STEP per success', win(10, false, 10, 20), 64, win(10 + MAX_STEP, false, 10, 20.1)],
    ['never past the ceiling', win(99.8, false, 64, 30), 100, win(100, false, 64, 30 + 1 / 99)],
  ])('%s', (_name, w, ceiling, next) => {
    const got = afterSuccess(w, ceiling);
    expect(got.limit).toBeCloseTo(next.limit, 9);
    expect(got.rounds).toBeCloseTo(next.rounds, 9);
    expect(got).toMatchObject({ slowStart: next.slowStart, peak: next.peak });
  });

  it('after a throttle at 64: back above 0.9 of it in 2 rounds, dwells near it, then probes past it', () => {
    const slots = roundsAfterThrottle(64, 1024, 14);
    expect(slots.slice(0, 3)).toEqual([44, 52, 58]);
    expect(slots.slice(4, 9).every((n) => n >= 63 && n <= 64)).toBe(true); // 5 rounds within a slot of it
    const cycle = slots.slice(0, slots.findIndex((n) => n > 64)); // until it asks for more than 64
    expect(cycle.reduce((a, n) => a + n, 0) / cycle.length).toBeGreaterThanOrEqual(0.9 * 64); // +1 per round: 0.84
    for (let r = 9; r < slots.length; r++) {
      expect(slots[r]! - slots[r - 1]!).toBeGreaterThanOrEqual(slots[r - 1]! - slots[r - 2]!); // ever faster
      expect(slots[r]!).toBeLessThanOrEqual(1.5 * slots[r - 1]! + 1); // at most ×1.5 per round
    }
  });

  it('one early throttle does not hold a high ceiling back: from 8 to 256 in under 20 rounds (+1 per round: 250)', () => {
    const slots = roundsAfterThrottle(8, 256, 20);
    expect(slots[0]).toBe(5);
    expect(slots.at(-1)).toBe(256);
  });

  it.each<[number | null, Reason | null, Verdict]>([
    [429, 'THROTTLED', 'throttled'],
    [503, 'HTTP_5XX', 'neutral'], // no Retry-After: one dead object as often as load
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

  it('a 503 with Retry-After is a throttle', () => expect(verdictOf(503, 'HTTP_5XX', true)).toBe('throttled'));

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

/** A host at its knee refuses the newest first: the last of `leases`, sent with them all in flight, answers first. */
function refuse(leases: Lease[]): void {
  for (const l of [...leases].reverse()) l.release('throttled');
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
    refuse(await take(limits, 'a', 8));
    expect(limits.limitOf('a')).toBe(5); // 8 × 0.7 = 5.6
    // Requests sent after the decrease are a new congestion event.
    refuse(await take(limits, 'a', 5));
    expect(limits.limitOf('a')).toBe(3); // 5 × 0.7 = 3.5
  });

  it('a refusal with fewer in flight than the limit lowers it from there', async () => {
    const limits = new HostLimits(64);
    const [first] = await take(limits, 'a', 8);
    first!.release('throttled'); // refused with only itself in flight
    expect(limits.limitOf('a')).toBe(1);
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
    held[7]!.release('throttled'); // limit 5, 7 in flight
    held[0]!.release('ok'); // stale: sent before the decrease, changes nothing
    held[1]!.release('ok');
    await tick();
    expect(q.order).toEqual([]); // 5 in flight, limit 5
    held[2]!.release('neutral');
    await tick();
    expect(q.order).toEqual([0]);
    expect(limits.limitOf('a')).toBe(5);
  });

  it('after a throttle, climbs back toward where it was while the host uses its whole limit', async () => {
    const limits = new HostLimits(64);
    refuse(await take(limits, 'a', 8)); // 5.6, aiming at 8
    const first = await take(limits, 'a', 5);
    const q = queue(limits, 'a', 50); // the host stays busy
    for (const l of first) l.release('ok');
    expect(limits.limitOf('a')).toBe(7); // one round: most of the way back
    await tick();
    expect(q.order).toHaveLength(7);
    for (const l of await Promise.all(q.leases.slice(0, 7))) l.release('ok');
    expect(limits.limitOf('a')).toBe(7); // dwells just under 8 (7.9)
  });

  it('a slot handed over before a decrease belongs to that congestion event', async () => {
    const limits = new HostLimits(64);
    const held = await take(limits, 'a', 8);
    const q = queue(limits, 'a', 1);
    held[0]!.release('ok'); // 9 slots: the queued request gets one now
    held[7]!.release('throttled'); // 8 × 0.7 = 5.6, before the queued request's code has run
    const [late] = await Promise.all(q.leases);
    late!.release('throttled'); // sent before the decrease: no second one
    expect(limits.limitOf('a')).toBe(5);
    for (const l of held.slice(1, 7)) l.release('neutral');
  });

  it.each([
    [64, 0.9, 0.01],
    [12, 0.9, 0.03],
  ])('holds a host that refuses past %i requests at once at ≥ %d of it on average, refusing < %d', async (knee, share, refusedShare) => {
    // Rounds of a busy host: every request in flight ends, the first `knee` served, the
    // others refused; each ended task is replaced at once, as a worker's tasks are.
    const limits = new HostLimits(512);
    let granted: Lease[] = [];
    const more = () => void limits.acquire('a').then((l) => granted.push(l));
    for (let i = 0; i < 512; i++) more();
    await tick();
    let served = 0;
    let refused = 0;
    for (let round = 0; round < 1000; round++) {
      const held = granted;
      granted = [];
      held.forEach((l, i) => (l.release(i < knee ? 'ok' : 'throttled'), more()));
      if (round >= 100) {
        served += Math.min(held.length, knee); // slow start's first overshoot left out
        refused += Math.max(0, held.length - knee);
      }
      await tick();
    }
    expect(served / 900 / knee).toBeGreaterThanOrEqual(share);
    expect(refused / (served + refused)).toBeLessThan(refusedShare);
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
    refuse(await take(limits, 'a', 8)); // a: 5.6, idle
    refuse(await take(limits, 'b', 8)); // b: 5.6, idle
    expect(limits.capacity()).toBe(10); // none busy: all known
    const a = await take(limits, 'a', 1);
    expect(limits.capacity()).toBe(5); // a busy
    const c = await take(limits, 'c', 1);
    expect(limits.capacity()).toBe(20); // c never throttled: at the ceiling
    for (const l of [...a, ...c]) l.release('neutral');
  });

  it('capacity: a throttled host whose tasks all sleep before a retry still has work, and keeps its limit', async () => {
    const limits = new HostLimits(20, 2);
    for (const l of await take(limits, 'healthy', 1)) l.release('ok'); // known, never throttled: counts as 20
    refuse(await take(limits, 'a', 8)); // a: 5.6, its task now sleeps
    const wake = limits.rest('a');
    expect(limits.capacity()).toBe(5); // a has work; not 5 + 20
    refuse(await take(limits, 'b', 8)); // a third host: room is made, but not by forgetting a, which rests
    expect(limits.limitOf('a')).toBe(5);
    wake();
    wake(); // said twice, counted once
    expect(limits.capacity()).toBe(10); // none busy: all known (a and b)
  });

  it('past its bound, forgets the least recently used idle host, never a busy one', async () => {
    const limits = new HostLimits(64, 3);
    const throttle = async (h: string) => refuse(await take(limits, h, limits.limitOf(h) ?? 8));
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
    expect(limits.limitOf(new URL(origin.url).host)).toBe(1); // refused with only itself in flight: 8 → 1, then 1 again (a retry starts after the decrease)
  });

  it('a bare 503 (one dead object) leaves the host limit alone; a 503 with Retry-After lowers it', async () => {
    const limits = new HostLimits(64);
    const s = spy(limits);
    const dead = await Promise.all(Array.from({ length: 12 }, () => download(`${origin.url}/status/503/${key('dead')}`, { client, retries: 0, admit: s })));
    expect(dead.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(Array(12).fill('HTTP_5XX'));
    expect(s.verdicts).toEqual(Array(12).fill('neutral'));
    expect(limits.limitOf(new URL(origin.url).host)).toBe(8);
    const busy = await download(`${origin.url}/flaky/${key('busy')}?fail=1&status=503&retryAfter=0`, { client, retries: 1, admit: s });
    expect(busy).toMatchObject({ ok: true, attempts: 2 });
    expect(limits.limitOf(new URL(origin.url).host)).toBeLessThan(8);
  });

  it('a 503 whose Retry-After is malformed (-5, 1.5) is a bare 503, not a throttle', async () => {
    const limits = new HostLimits(64);
    const s = spy(limits);
    for (const value of ['-5', '1.5']) {
      const r = await download(`${origin.url}/flaky/${key('malformed')}?fail=1&status=503&retryAfter=${value}`, { client, retries: 1, admit: s });
      expect(r).toMatchObject({ ok: true, attempts: 2 });
    }
    expect(s.verdicts).toEqual(['neutral', 'ok', 'neutral', 'ok']);
    expect(limits.limitOf(new URL(origin.url).host)).toBe(8);
  });

  it('a task sleeping on a Retry-After leaves its host busy: capacity is its throttled limit, not the ceiling', async () => {
    const limits = new HostLimits(64);
    for (const l of await take(limits, 'elsewhere', 1)) l.release('ok'); // a healthy host, known, idle
    const host = new URL(origin.url).host;
    const r = download(`${origin.url}/throttle/${key('rest')}?after=1&fail=1`, { client, retries: 1, admit: limits });
    while (limits.limitOf(host) !== 1) await new Promise((w) => setTimeout(w, 10)); // refused: now in its Retry-After sleep
    expect(limits.capacity()).toBe(1);
    expect(await r).toMatchObject({ ok: true, attempts: 2 });
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
