/**
 * One throttled host must not hold up the others: the built worker over a task list that
 * interleaves two real origins, one answering every request with 429 (Retry-After), one
 * healthy. A task holds a --concurrency slot only while it talks to a host, not while it
 * waits in its host's queue or sleeps in backoff, and the worker reads ahead past tasks
 * whose host is saturated; so every healthy task ends before the throttled host's first
 * task has used up its tries. Asserted on the order of events, not on times.
 */
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, ferry, startOrigin } from '../helpers/run.js';

const PAIRS = 12;
const RETRY_AFTER_S = 3;

let dir: string;
let throttled: Origin;
let healthy: Origin;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-fairness-'));
  [throttled, healthy] = await Promise.all([startOrigin(), startOrigin()]);
});

afterAll(async () => {
  await Promise.all([throttled?.close(), healthy?.close()]);
  await fs.rm(dir, { recursive: true, force: true });
});

describe('a throttled host and a healthy one in the same worker', () => {
  it("the healthy host's tasks all end before the throttled host's first one has used its tries", async () => {
    const lines: string[] = [];
    for (let i = 0; i < PAIRS; i++) {
      lines.push(`slow-${i}\t${throttled.url}/throttle/f${i}?after=${RETRY_AFTER_S}`);
      lines.push(`fast-${i}\t${healthy.url}/ok/f${i}`);
    }
    const r = await ferry(
      ['worker', '--tasks', '-', '--dest', path.join(dir, 'objects'), '--allow-private-network', '--min-dim', '1', '--concurrency', '2', '--retries', '1'],
      { input: lines.map((l) => l + '\n').join('') },
    );
    expect(r.code).toBe(0);
    const terminal = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'))
      .filter((e) => e[0] !== 'DL_OK');
    expect(terminal).toHaveLength(2 * PAIRS); // one terminal event per task
    const fast = terminal.filter((e) => e[1]!.startsWith('fast-'));
    const slow = terminal.filter((e) => e[1]!.startsWith('slow-'));
    expect(fast.every((e) => e[0] === 'UP_OK')).toBe(true);
    expect(slow.every((e) => e[0] === 'DL_ERR' && e[2] === 'THROTTLED' && e[3] === '2')).toBe(true);
    // Before: each throttled task held one of the 2 slots through its Retry-After sleep,
    // so the healthy tasks came out one or two per throttled pair.
    const lastFast = terminal.findLastIndex((e) => e[1]!.startsWith('fast-'));
    const firstSlow = terminal.findIndex((e) => e[1]!.startsWith('slow-'));
    expect({ lastFast, firstSlow }).toEqual({ lastFast: PAIRS - 1, firstSlow: PAIRS });
  }, 90_000);
});
