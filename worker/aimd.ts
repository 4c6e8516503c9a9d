/**
 * Per-host adaptive concurrency (DESIGN.md, "No retry storms"): each host — an origin's
 * host:port, an object-store bucket, the destination — gets its own limit of requests in
 * flight, under the worker's --concurrency ceiling, learnt as TCP learns its congestion
 * window: slow start from a small window (RFC 5681), multiplicative decrease (×0.7, floor
 * 1) on every throttle (429, a 503 with Retry-After, SlowDown), and between throttles CUBIC's increase
 * (RFC 9438, whose β is that same 0.7). Why not +1 per round: that sawtooth averages 0.85
 * of the point where the host pushed back, and one early throttle leaves a high ceiling
 * hundreds of rounds away. The cubic is back near that point within a few rounds, dwells
 * there, then probes past it ever faster.
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

/**
 * Waits for a slot of `host`. `rest` says that a task of `host` sleeps before its next try
 * (call what it returns when the sleep ends): the host still has work, holding no slot.
 */
export type Admission = { acquire(host: string): Promise<Lease>; rest?(host: string): () => void };

/** The multiplicative decrease on a throttle (DESIGN.md). */
export const DECREASE = 0.7;
/**
 * The cubic's scale, in slots per round³, where a round is a window's worth of successes
 * (rounds, not seconds, so the curve is the same at any latency, and tests need no clock).
 * Smaller dwells longer near the last throttle's point: fewer throttles and a higher
 * average at a fixed knee, but a slower climb when the host has grown. At 0.1, a limit
 * throttled at 64 is back at 58 after 2 rounds, within 1 slot of 64 from the 4th round to
 * the 8th, past it from the 9th; one throttled at 8 is at 256 after 19 rounds (+1 per
 * round: 250).
 */
export const CUBE = 0.1;
/** Growth per success past a throttle is at most this: ×1.5 per round, below slow start's ×2 (RFC 9438 §4.2). */
export const MAX_STEP = 0.5;
/**
 * Slow start's first window. Small, so a host that throttles early sees a few refusals
 * rather than a full --concurrency burst; slow start adds one slot per success, doubling
 * the window each round, so a healthy host reaches any ceiling within (ceiling − 8)
 * responses: log2(ceiling / 8) rounds.
 */
export const INITIAL_LIMIT = 8;
/** Hosts tracked at once (bounded memory over millions of hosts): past it, the oldest idle ones are forgotten. */
export const MAX_HOSTS = 10_000;

/** What a host's limit has learnt: a real number, of which the whole part is admitted. */
export type Window = {
  limit: number;
  slowStart: boolean;
  /** The limit when the host last pushed back (CUBIC's W_max); 0 before it ever did. */
  peak: number;
  /** Rounds since that throttle: each counted success adds 1 / slots, a window's worth adds 1. */
  rounds: number;
};

/** A new host's window: slow start from INITIAL_LIMIT, or from the ceiling when lower. */
export function startWindow(ceiling: number): Window {
  return { limit: Math.min(ceiling, INITIAL_LIMIT), slowStart: true, peak: 0, rounds: 0 };
}

export function slotsOf(w: Window): number {
  return Math.max(1, Math.floor(w.limit));
}

/**
 * Multiplicative decrease, floor 1, from where the host refused: the requests in flight
 * when the refused one was sent, if fewer than the limit. Growth since then, like slots
 * never used, proved nothing (RFC 7661): after slow start's last doubling, ×0.7 of the
 * doubled limit would still be past the knee and draw a second wave of refusals. The cubic
 * restarts from here, aiming at that point.
 */
export function afterThrottle(w: Window, inFlight: number): Window {
  const refusedAt = Math.min(w.limit, inFlight);
  return { limit: Math.max(1, refusedAt * DECREASE), slowStart: false, peak: refusedAt, rounds: 0 };
}

/**
 * CUBIC's window `rounds` after a throttle at `peak`: peak + CUBE·(rounds − K)³, where K
 * is when it is back at the peak. It starts at peak × DECREASE, rises fast, then flat
 * around K, then ever faster past it.
 */
export function cubic(peak: number, rounds: number): number {
  const k = Math.cbrt((peak * (1 - DECREASE)) / CUBE);
  return peak + CUBE * (rounds - k) ** 3;
}

/** +1 per success in slow start; after it, the cubic (at most MAX_STEP per success); never past the ceiling. */
export function afterSuccess(w: Window, ceiling: number): Window {
  if (w.limit >= ceiling) return { ...w, limit: ceiling };
  if (w.slowStart) return { ...w, limit: Math.min(ceiling, w.limit + 1) };
  const rounds = w.rounds + 1 / slotsOf(w);
  const limit = Math.min(ceiling, w.limit + MAX_STEP, Math.max(w.limit, cubic(w.peak, rounds)));
  return { ...w, limit, rounds };
}

/** For callers without adaptive limits: a lease that holds nothing. */
export const NO_LEASE: Lease = { release: () => {} };

type Host = {
  window: Window;
  /** Bumped at each decrease: outcomes of requests started before it are stale. */
  epoch: number;
  active: number;
  waiters: ((grant: Grant) => void)[];
  /** Tasks sleeping before their next try here: work of this host, though they hold no slot. */
  resting: number;
};

/**
 * What a request was granted with: the host's epoch and the requests then in flight, itself
 * included — fixed when the slot is handed over, not when the waiter's code next runs.
 */
type Grant = { epoch: number; inFlight: number };

/** The per-host limits of one worker stage (the origins, or the destination). */
export class HostLimits implements Admission {
  private readonly hosts = new Map<string, Host>();
  /** The host last moved to the end of `hosts`. */
  private latest: string | null = null;

  constructor(
    readonly ceiling: number,
    private readonly maxHosts = MAX_HOSTS,
  ) {}

  async acquire(host: string): Promise<Lease> {
    const h = this.stateOf(host);
    const grant =
      h.waiters.length === 0 && h.active < slotsOf(h.window)
        ? { epoch: h.epoch, inFlight: ++h.active }
        : await new Promise<Grant>((resolve) => h.waiters.push(resolve)); // counted by whoever hands it over
    let held = true;
    return {
      release: (verdict) => {
        if (!held) return;
        held = false;
        this.release(h, grant, verdict);
      },
    };
  }

  /**
   * A task of `host` sleeps before its next try (a backoff, a Retry-After): until the
   * returned function is called, the host counts as having work, so `capacity` shows the
   * limit it is held to, and it is not forgotten (its limit with it) while it rests.
   */
  rest(host: string): () => void {
    const h = this.stateOf(host);
    h.resting++;
    let resting = true;
    return () => {
      if (resting) h.resting--;
      resting = false;
    };
  }

  /** The current limit of a host (whole slots), or null when it has none yet. */
  limitOf(host: string): number | null {
    const h = this.hosts.get(host);
    return h ? slotsOf(h.window) : null;
  }

  /**
   * What throttling left of the ceiling: the sum of the limits of the hosts with work (in
   * flight, queued, or sleeping before a retry) or, when none has, of all it knows, at most the ceiling. A host never
   * throttled counts as the ceiling: its slow start is a passing ramp, not a verdict.
   */
  capacity(): number {
    let busy = 0;
    let known = 0;
    let anyBusy = false;
    for (const h of this.hosts.values()) {
      const limit = h.window.slowStart ? this.ceiling : slotsOf(h.window);
      known += limit;
      if (idle(h)) continue;
      anyBusy = true;
      busy += limit;
    }
    return Math.min(this.ceiling, anyBusy ? busy : this.hosts.size > 0 ? known : this.ceiling);
  }

  /**
   * A host's state, moved to the end of the map: the map's order is least recently used
   * first. The host asked for last is there already (the common case: one origin).
   */
  private stateOf(host: string): Host {
    let h = this.hosts.get(host);
    if (h && host === this.latest) return h;
    this.latest = host;
    if (h) this.hosts.delete(host);
    else {
      if (this.hosts.size >= this.maxHosts) this.forgetIdle();
      h = { window: startWindow(this.ceiling), epoch: 0, active: 0, waiters: [], resting: 0 };
    }
    this.hosts.set(host, h);
    return h;
  }

  private release(h: Host, grant: Grant, verdict: Verdict): void {
    // A request sent before the last decrease belongs to that congestion event: a burst
    // of 429s from requests already in flight lowers the limit once (TCP's recovery).
    if (grant.epoch === h.epoch) {
      if (verdict === 'throttled') {
        h.window = afterThrottle(h.window, grant.inFlight);
        h.epoch++;
      } else if (verdict === 'ok' && (h.active >= slotsOf(h.window) || h.waiters.length > 0)) {
        // Only a host that used its whole limit has shown it can take more (RFC 7661).
        h.window = afterSuccess(h.window, this.ceiling);
      }
    }
    h.active--;
    while (h.waiters.length > 0 && h.active < slotsOf(h.window)) h.waiters.shift()!({ epoch: h.epoch, inFlight: ++h.active });
  }

  /** Makes room for one more host: the least recently used idle ones go. */
  private forgetIdle(): void {
    let excess = this.hosts.size - this.maxHosts + 1;
    for (const [name, h] of this.hosts) {
      if (excess <= 0) return;
      if (!idle(h)) continue;
      this.hosts.delete(name);
      excess--;
    }
  }
}

/** A host with nothing in flight, queued or resting. */
function idle(h: Host): boolean {
  return h.active === 0 && h.waiters.length === 0 && h.resting === 0;
}
