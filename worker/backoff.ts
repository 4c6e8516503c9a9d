/**
 * Waiting between tries. Full jitter (AWS architecture blog, "Exponential Backoff and
 * Jitter"): uniform in [0, min(cap, base·2^(attempt-1))], so the retries of many tasks
 * spread out instead of arriving together.
 */
export const MAX_BACKOFF_MS = 60_000;

export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}

/** Sleeps, waking early (without error) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
