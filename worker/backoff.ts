/**
 * Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff and
 * Jitter"): a random wait in [0, min(cap, base·2^(attempt-1))], so retries of many tasks
 * spread out instead of arriving together.
 */
export type Backoff = { delay(attempt: number): number };

export const MAX_BACKOFF_MS = 60_000;

export function fullJitter(baseMs = 250, capMs = MAX_BACKOFF_MS, random: () => number = Math.random): Backoff {
  return { delay: (attempt) => Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1))) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
