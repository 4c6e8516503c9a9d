/**
 * Per-host adaptive concurrency (DESIGN.md, "No retry storms"): each host — an origin's
 * host:port, an object-store bucket, the destination — gets its own limit of requests in
 * flight, under the worker's --concurrency ceiling, learnt as TCP learns its congestion
 * window (RFC 5681): slow start from a small window, then additive increase (+1 per
 * window's worth of successes) and multiplicative decrease (×0.7) on every throttle
 * (429, any 503, SlowDown), floor 1.
 *
 * A request holds a slot of its host only while it talks to that host (one try), never
 * while it sleeps before the next: a throttled host's queued tries wait here, in order,
 * instead of hammering it. Each stage judges its own answers (download.ts `verdictOf`,
 * upload.ts `storeVerdict`); this module keeps the arithmetic and the queues.
 */

/** How one request ended, as far as its host's limit is concerned. */
export type Verdict = 'ok' | 'throttled' | 'neutral';

/** One slot of a host, held for one request; given back once, with the host's answer. */
export type Lease = { release(verdict: Verdict): void };

/** Waits for a slot of `host`. */
export type Admission = { acquire(host: string): Promise<Lease> };

/** The multiplicative decrease on a throttle (DESIGN.md). */
export const DECREASE = 0.7;
/**
 * Slow start's first window. Small, so a host that throttles early sees a few refusals
 * rather than a full --concurrency burst; slow start adds one slot per success, so a
 * healthy host reaches any ceiling within (ceiling − 8) responses.
 */
export const INITIAL_LIMIT = 8;
/** Hosts tracked at once (bounded memory over millions of hosts): past it, the oldest idle ones are forgotten. */
export const MAX_HOSTS = 10_000;

/** What a host's limit has learnt: a real number, of which the whole part is admitted. */
export type Window = { limit: number; successes: number; slowStart: boolean };

/** A new host's window: slow start from INITIAL_LIMIT, or from the ceiling when lower. */
export function startWindow(ceiling: number): Window {
  return { limit: Math.min(ceiling, INITIAL_LIMIT), successes: 0, slowStart: true };
}

export function slotsOf(w: Window): number {
  return Math.max(1, Math.floor(w.limit));
}

/** Multiplicative decrease, floor 1; the first throttle also ends slow start. */
export function afterThrottle(w: Window): Window {
  return { limit: Math.max(1, w.limit * DECREASE), successes: 0, slowStart: false };
}

/** +1 per success in slow start; after it, +1 once a whole window of successes came back. */
export function afterSuccess(w: Window, ceiling: number): Window {
  if (w.limit >= ceiling) return { ...w, limit: ceiling, successes: 0 };
  if (w.slowStart) return { ...w, limit: Math.min(ceiling, w.limit + 1) };
  const successes = w.successes + 1;
  if (successes < slotsOf(w)) return { ...w, successes };
  return { ...w, limit: Math.min(ceiling, w.limit + 1), successes: 0 };
}

/** For callers without adaptive limits: a lease that holds nothing. */
export const NO_LEASE: Lease = { release: () => {} };

type Host = {
  window: Window;
  /** Bumped at each decrease: outcomes of requests started before it are stale. */
  epoch: number;
  active: number;
  waiters: (() => void)[];
};

/** The per-host limits of one worker stage (the origins, or the destination). */
export class HostLimits implements Admission {
  private readonly hosts = new Map<string, Host>();

  constructor(
    readonly ceiling: number,
    private readonly maxHosts = MAX_HOSTS,
  ) {}

  async acquire(host: string): Promise<Lease> {
    const h = this.stateOf(host);
    if (h.waiters.length === 0 && h.active < slotsOf(h.window)) h.active++;
    else await new Promise<void>((resolve) => h.waiters.push(resolve)); // counted by whoever hands it over
    const epoch = h.epoch;
    let held = true;
    return {
      release: (verdict) => {
        if (!held) return;
        held = false;
        this.release(h, epoch, verdict);
      },
    };
  }

  /** The current limit of a host (whole slots), or null when it has none yet. */
  limitOf(host: string): number | null {
    const h = this.hosts.get(host);
    return h ? slotsOf(h.window) : null;
  }

  /**
   * What throttling left of the ceiling: the sum of the limits of the hosts with work (in
   * flight or queued) or, when none has, of all it knows, at most the ceiling. A host never
   * throttled counts as the ceiling: its slow start is a passing ramp, not a verdict.
   */
  capacity(): number {
    let busy = 0;
    let known = 0;
    let anyBusy = false;
    for (const h of this.hosts.values()) {
      const limit = h.window.slowStart ? this.ceiling : slotsOf(h.window);
      known += limit;
      if (h.active === 0 && h.waiters.length === 0) continue;
      anyBusy = true;
      busy += limit;
    }
    return Math.min(this.ceiling, anyBusy ? busy : this.hosts.size > 0 ? known : this.ceiling);
  }

  /** A host's state, moved to the end of the map: the map's order is least recently used first. */
  private stateOf(host: string): Host {
    let h = this.hosts.get(host);
    if (h) this.hosts.delete(host);
    else {
      if (this.hosts.size >= this.maxHosts) this.forgetIdle();
      h = { window: startWindow(this.ceiling), epoch: 0, active: 0, waiters: [] };
    }
    this.hosts.set(host, h);
    return h;
  }

  private release(h: Host, epoch: number, verdict: Verdict): void {
    // A request sent before the last decrease belongs to that congestion event: a burst
    // of 429s from requests already in flight lowers the limit once (TCP's recovery).
    if (epoch === h.epoch) {
      if (verdict === 'throttled') {
        h.window = afterThrottle(h.window);
        h.epoch++;
      } else if (verdict === 'ok' && (h.active >= slotsOf(h.window) || h.waiters.length > 0)) {
        // Only a host that used its whole limit has shown it can take more (RFC 7661).
        h.window = afterSuccess(h.window, this.ceiling);
      }
    }
    h.active--;
    while (h.waiters.length > 0 && h.active < slotsOf(h.window)) {
      h.active++;
      h.waiters.shift()!();
    }
  }

  /** Makes room for one more host: the least recently used idle ones go. */
  private forgetIdle(): void {
    let excess = this.hosts.size - this.maxHosts + 1;
    for (const [name, h] of this.hosts) {
      if (excess <= 0) return;
      if (h.active > 0 || h.waiters.length > 0) continue;
      this.hosts.delete(name);
      excess--;
    }
  }
}
