/**
 * Waiting between tries. Full jitter (AWS architecture blog, "Exponential Backoff and
 * Jitter"): uniform in [0, min(cap, base·2^(attempt-1))], so the retries of many tasks
 * spread out instead of arriving together.
 */
export const MAX_BACKOFF_MS = 60_000;

export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}

/**
 * The wait after try `attempt` failed. When the server named one (Retry-After), never less
 * than it, with the same full jitter on top: the tasks a burst of 429s refused together
 * were all told the same wait, and would otherwise all come back at the same instant. At
 * most the cap, unless the server asked for more (the caller gives up before that).
 */
export function retryWaitMs(attempt: number, retryAfterMs: number | null, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const jitter = backoffMs(attempt, baseMs, capMs, random);
  if (retryAfterMs === null) return jitter;
  return Math.max(retryAfterMs, Math.min(capMs, retryAfterMs + jitter));
}

/**
 * The THROTTLED detail of a try whose server asked to come back past `boundMs`, or null.
 * Such a wait would hold the task for minutes: it ends THROTTLED at once (DESIGN.md, "No
 * retry storms"), on any try, so the same answer gets the same reason whatever --retries
 * is. One rule for downloads, buffered uploads and streamed ones.
 */
export function waitPastBound(retryAfterMs: number | null, detail: string, boundMs: number = MAX_BACKOFF_MS): string | null {
  return retryAfterMs !== null && retryAfterMs > boundMs ? `${detail}, Retry-After ${Math.ceil(retryAfterMs / 1000)} s` : null;
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
