/** A counting semaphore: at most `limit` holders at once, waiters served in order. */
export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private idlers: (() => void)[] = [];

  constructor(private limit: number) {}

  get inflight(): number {
    return this.active;
  }

  get capacity(): number {
    return this.limit;
  }

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) return next();
    this.active--;
    if (this.active === 0) {
      const idlers = this.idlers;
      this.idlers = [];
      for (const resolve of idlers) resolve();
    }
  }

  /** Resolves when no holder is left. */
  async idle(): Promise<void> {
    if (this.active > 0) await new Promise<void>((resolve) => this.idlers.push(resolve));
  }
}

type Share = { active: number; waiters: (() => void)[] };

/**
 * The worker's --concurrency, shared among hosts: at most `limit` holders at once, and
 * when hosts wait for a slot, a freed one goes to the waiting host that holds the fewest
 * (max-min fairness; in order within a host). FIFO among all would let a slow host, whose
 * requests hold their slots for seconds while a fast host's come back at once, end up
 * with every slot, and the fast host's tasks would come out at the slow one's pace.
 */
export class FairSlots {
  private active = 0;
  private waiting = 0;
  private readonly hosts = new Map<string, Share>();
  /** Hosts with waiters, by how many slots they hold; `low` is at most the smallest key in use. */
  private readonly byHeld = new Map<number, Set<Share>>();
  private low = 0;

  constructor(private readonly limit: number) {}

  get inflight(): number {
    return this.active;
  }

  get capacity(): number {
    return this.limit;
  }

  async acquire(host: string): Promise<void> {
    let s = this.hosts.get(host);
    if (!s) this.hosts.set(host, (s = { active: 0, waiters: [] }));
    if (this.waiting === 0 && this.active < this.limit) {
      this.active++;
      s.active++;
      return;
    }
    const share = s;
    await new Promise<void>((resolve) => {
      if (share.waiters.length === 0) this.file(share);
      share.waiters.push(resolve);
      this.waiting++;
    });
  }

  release(host: string): void {
    const s = this.hosts.get(host);
    if (!s || s.active === 0) throw new Error(`internal: release of a slot ${host} does not hold`);
    if (s.waiters.length > 0) this.unfile(s);
    s.active--;
    if (s.waiters.length > 0) this.file(s);
    const next = this.fewest();
    if (next) {
      this.unfile(next);
      next.active++;
      this.waiting--;
      const wake = next.waiters.shift()!;
      if (next.waiters.length > 0) this.file(next);
      wake();
    } else this.active--;
    if (s.active === 0 && s.waiters.length === 0) this.hosts.delete(host);
  }

  /** The waiting host holding the fewest slots, longest filed first; null when none waits. */
  private fewest(): Share | null {
    if (this.waiting === 0) return null;
    for (; ; this.low++) {
      const set = this.byHeld.get(this.low);
      if (set && set.size > 0) return set.values().next().value!;
    }
  }

  private file(s: Share): void {
    let set = this.byHeld.get(s.active);
    if (!set) this.byHeld.set(s.active, (set = new Set()));
    set.add(s);
    this.low = Math.min(this.low, s.active);
  }

  private unfile(s: Share): void {
    const set = this.byHeld.get(s.active)!;
    set.delete(s);
    if (set.size === 0) this.byHeld.delete(s.active);
  }
}

type Lane = { running: number; waiting: (() => Promise<void>)[] };

/**
 * Runs jobs with at most `limit` running per key at once; the others wait in their key's
 * queue, in order, as closures: nothing of a waiting job runs, so it costs a few dozen bytes.
 * A worker reads tasks well ahead of its concurrency (to reach past a throttled host's);
 * a started task allocates its options, URL and promise chain, and one host's hundreds of
 * parked tasks, surviving young-generation collections, cost ~9 % more CPU per object.
 */
export class KeyedLanes {
  private readonly lanes = new Map<string, Lane>();

  constructor(private readonly limit: number) {}

  /** Runs `job` now or once its key has room. A job must not reject (a task catches all it meets). */
  run(key: string, job: () => Promise<void>): void {
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { running: 0, waiting: [] }));
    if (lane.running < this.limit) this.start(key, lane, job);
    else lane.waiting.push(job);
  }

  /** Keys with jobs running or waiting. */
  get size(): number {
    return this.lanes.size;
  }

  private start(key: string, lane: Lane, job: () => Promise<void>): void {
    lane.running++;
    void job().finally(() => {
      lane.running--;
      const next = lane.waiting.shift();
      if (next) this.start(key, lane, next);
      else if (lane.running === 0) this.lanes.delete(key);
    });
  }
}

/**
 * A task URL's lane: its scheme and authority, lower-cased, without parsing the URL (a
 * grouping for read-ahead only; the download keys its host limits on the parsed host).
 */
export function laneOf(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]*)/i.exec(url);
  return m ? m[1]!.toLowerCase() : '';
}
