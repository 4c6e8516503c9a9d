/**
 * One throttled or slow host must not hold up the others: the built worker over a task list
 * that interleaves two real origins, one throttling (429 with Retry-After to every request)
 * or slow (each answer after 3 s), one healthy. A task holds a --concurrency slot only while
 * it talks to a host, not while it waits in its host's queue or sleeps in backoff; a freed
 * slot goes to the waiting host that holds the fewest; and the worker reads ahead past tasks
 * parked at a saturated host. So every healthy task ends before the other host's first one.
 * Asserted on the order of events, not on times.
 */
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, ferry, startOrigin } from '../helpers/run.js';

const PAIRS = 12;

let dir: string;
let other: Origin;
let healthy: Origin;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-fairness-'));
  [other, healthy] = await Promise.all([startOrigin(), startOrigin()]);
});

afterAll(async () => {
  await Promise.all([other?.close(), healthy?.close()]);
  await fs.rm(dir, { recursive: true, force: true });
});

/** Runs the worker over PAIRS × (`path(i)` on the other origin, a PNG on the healthy one); its terminal events in order. */
async function interleaved(name: string, pathOf: (i: number) => string, concurrency: number): Promise<string[][]> {
  const lines: string[] = [];
  for (let i = 0; i < PAIRS; i++) {
    lines.push(`other-${i}\t${other.url}${pathOf(i)}`);
    lines.push(`fast-${i}\t${healthy.url}/ok/${name}${i}`);
  }
  const r = await ferry(
    ['worker', '--tasks', '-', '--dest', path.join(dir, name), '--allow-private-network', '--min-dim', '1', '--concurrency', String(concurrency), '--retries', '1'],
    { input: lines.map((l) => l + '\n').join('') },
  );
  expect({ code: r.code, stderr: r.stderr.split('\n').filter((l) => !l.startsWith('PROGRESS ')) }).toEqual({ code: 0, stderr: [''] });
  const terminal = r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'))
    .filter((e) => e[0] !== 'DL_OK');
  expect(terminal).toHaveLength(2 * PAIRS); // one terminal event per task
  expect(kinds(terminal, 'fast-')).toEqual(Array(PAIRS).fill('UP_OK'));
  return terminal;
}

/** The terminal events of the tasks whose id starts with `prefix`: UP_OK, or the whole event (to show why not). */
function kinds(terminal: string[][], prefix: string): string[] {
  return terminal.filter((e) => e[1]!.startsWith(prefix)).map((e) => (e[0] === 'UP_OK' ? 'UP_OK' : e.join(' ')));
}

/** Where the last healthy task's terminal event and the other host's first one stand. */
function order(terminal: string[][]): { lastFast: number; firstOther: number } {
  return { lastFast: terminal.findLastIndex((e) => e[1]!.startsWith('fast-')), firstOther: terminal.findIndex((e) => e[1]!.startsWith('other-')) };
}

describe('a healthy host beside a throttled or slow one, in the same worker', () => {
  it("throttled (429, Retry-After 3 s): the healthy host's tasks all end before the throttled host's first one has used its tries", async () => {
    const terminal = await interleaved('throttled', (i) => `/throttle/t${i}?after=3`, 2);
    expect(terminal.filter((e) => e[1]!.startsWith('other-')).map((e) => e.slice(0, 4).join(' '))).toEqual(Array.from({ length: PAIRS }, () => expect.stringMatching(/^DL_ERR other-\d+ THROTTLED 2$/)));
    // Before: each throttled task held one of the 2 slots through its Retry-After sleep,
    // so the healthy tasks came out one or two per throttled pair.
    expect(order(terminal)).toEqual({ lastFast: PAIRS - 1, firstOther: PAIRS });
  }, 90_000);

  it("slow (each answer after 3 s): the healthy host's tasks all end before the slow host's first one", async () => {
    const terminal = await interleaved('slow', (i) => `/stall-headers/s${i}?ms=3000`, 4);
    expect(kinds(terminal, 'other-')).toEqual(Array(PAIRS).fill('UP_OK'));
    // Before: a freed slot went to whichever task asked first, so the slow host's requests,
    // which hold theirs for 3 s, soon held all 4, and the healthy tasks came out at its pace.
    expect(order(terminal)).toEqual({ lastFast: PAIRS - 1, firstOther: PAIRS });
  }, 90_000);
});
