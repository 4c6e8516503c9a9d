import { describe, expect, it } from 'vitest';
import { FairSlots, KeyedLanes, laneOf } from './limit.js';

/** Lets every resolved waiter's continuation run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Starts an acquire for `host`, recording `name` in `granted` once it holds the slot. */
function ask(slots: FairSlots, host: string, name: string, granted: string[]): void {
  void slots.acquire(host).then(() => granted.push(name));
}

describe('FairSlots', () => {
  it('grants at once under the limit, and never more than the limit', async () => {
    const slots = new FairSlots(2);
    const granted: string[] = [];
    for (const [host, name] of [['a', 'a1'], ['b', 'b1'], ['a', 'a2'], ['b', 'b2']] as const) ask(slots, host, name, granted);
    await settle();
    expect(granted).toEqual(['a1', 'b1']);
    expect(slots.inflight).toBe(2);
  });

  it("gives a freed slot to the waiting host that holds the fewest: a slow host's held slots do not draw more", async () => {
    // `slow` holds 3 of 4 slots for long; `fast` releases its one at once, again and again.
    const slots = new FairSlots(4);
    const granted: string[] = [];
    for (let i = 0; i < 3; i++) await slots.acquire('slow');
    await slots.acquire('fast');
    ask(slots, 'slow', 's4', granted); // waiting first
    for (let i = 0; i < 5; i++) ask(slots, 'fast', `f${i}`, granted);
    for (let i = 0; i < 5; i++) {
      slots.release('fast');
      await settle();
    }
    expect(granted).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);
    // Once `fast` waits no more, `slow` gets the next slot freed.
    slots.release('fast');
    await settle();
    expect(granted.at(-1)).toBe('s4');
    expect(slots.inflight).toBe(4);
  });

  it('serves equal holders in the order they began to wait, and one host in order', async () => {
    const slots = new FairSlots(1);
    const granted: string[] = [];
    await slots.acquire('x');
    ask(slots, 'b', 'b1', granted);
    ask(slots, 'a', 'a1', granted);
    ask(slots, 'b', 'b2', granted);
    for (let i = 0; i < 3; i++) {
      slots.release(i === 0 ? 'x' : (granted.at(-1)![0] as string));
      await settle();
    }
    expect(granted).toEqual(['b1', 'a1', 'b2']);
  });

  it('is empty again once every slot is back, and forgets hosts that hold nothing', async () => {
    const slots = new FairSlots(3);
    const hosts = Array.from({ length: 50 }, (_, i) => `h${i}`);
    const granted: string[] = [];
    for (const h of hosts) ask(slots, h, h, granted);
    await settle();
    while (granted.length > 0) {
      const h = granted.shift()!;
      slots.release(h);
      await settle();
    }
    expect(slots.inflight).toBe(0);
    expect((slots as unknown as { hosts: Map<string, unknown> }).hosts.size).toBe(0);
    expect(() => slots.release('h0')).toThrow(/internal/);
  });
});

describe('KeyedLanes', () => {
  /** A job that records its start and ends when `end(name)` is called. */
  function jobs() {
    const started: string[] = [];
    const enders = new Map<string, () => void>();
    const job = (name: string) => () => {
      started.push(name);
      return new Promise<void>((resolve) => enders.set(name, resolve));
    };
    const end = async (name: string) => {
      enders.get(name)!();
      await settle();
    };
    return { started, job, end };
  }

  it('starts at most its limit per key, the rest in order as they end, and other keys at once', async () => {
    const lanes = new KeyedLanes(2);
    const { started, job, end } = jobs();
    for (const name of ['a1', 'a2', 'a3', 'a4']) lanes.run('a', job(name));
    lanes.run('b', job('b1'));
    expect(started).toEqual(['a1', 'a2', 'b1']); // a3 and a4 wait unstarted; b is not held up by a
    await end('a2');
    expect(started).toEqual(['a1', 'a2', 'b1', 'a3']);
    await end('a1');
    await end('b1');
    expect(started).toEqual(['a1', 'a2', 'b1', 'a3', 'a4']);
    expect(lanes.size).toBe(1); // b is forgotten once idle
    await end('a3');
    await end('a4');
    expect(lanes.size).toBe(0);
  });

  it("keys a URL by its scheme and authority, lower-cased, without parsing it", () => {
    expect(laneOf('HTTP://Img.Example.com:8080/a/b?c#d')).toBe('http://img.example.com:8080');
    expect(laneOf('s3://bucket/key/x.jpg')).toBe('s3://bucket');
    expect(laneOf('http://h')).toBe('http://h');
    expect(laneOf('not a url')).toBe('');
  });
});
