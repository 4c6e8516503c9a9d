/**
 * No retry storms (DESIGN.md): the built worker against a real origin with a knee — it
 * serves at most LIMIT requests at once and answers 429 (Retry-After: 0) past that. With
 * per-host adaptive concurrency the worker settles just under the knee; with a fixed
 * --concurrency of 64 (the hidden --no-adaptive) most of its requests are refused.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseProgress } from '../../protocol/index.js';
import { ferry } from '../helpers/run.js';
import { scratchAndOrigin } from '../helpers/scratch.js';

const TASKS = 400;
const LIMIT = 12;
const DELAY_MS = 25;
const CONCURRENCY = 64;
const RETRIES = 3;

type Figures = {
  code: number | null;
  upOk: number;
  throttled: number;
  terminal: number;
  requests: number;
  refused: number;
  seconds: number;
  conc: number[];
};

const seen: Record<string, Figures> = {};

const scratch = scratchAndOrigin('ferry-adaptive-');

/** Runs the worker over TASKS tasks on one knee and gathers what both sides saw. */
async function runKnee(name: string, extra: string[]): Promise<Figures> {
  const tasks = Array.from({ length: TASKS }, (_, i) => `t${i}\t${scratch.origin.url}/knee/${name}/${i}?limit=${LIMIT}&delay=${DELAY_MS}\n`).join('');
  const started = Date.now();
  const r = await ferry(
    ['worker', '--tasks', '-', '--dest', path.join(scratch.dir, name), '--allow-private-network', '--min-dim', '1', '--concurrency', String(CONCURRENCY), '--retries', String(RETRIES), '--progress-interval', '250', ...extra],
    { input: tasks },
  );
  const seconds = (Date.now() - started) / 1000;
  const events = r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
  const terminal = events.filter((e) => e[0] !== 'DL_OK');
  const knee = (await (await fetch(`${scratch.origin.url}/__knee/${name}`)).json()) as { requests: number; refused: number };
  const conc = r.stderr.split('\n').flatMap((l) => {
    const p = l.startsWith('PROGRESS ') ? parseProgress(l) : null;
    return p ? [p.Conc] : [];
  });
  const f: Figures = {
    code: r.code,
    upOk: terminal.filter((e) => e[0] === 'UP_OK').length,
    throttled: terminal.filter((e) => e[0] === 'DL_ERR' && e[2] === 'THROTTLED').length,
    terminal: new Set(terminal.map((e) => e[1])).size === terminal.length ? terminal.length : -1,
    requests: knee.requests,
    refused: knee.refused,
    seconds,
    conc,
  };
  const rate = (f.refused / f.requests) * 100;
  console.log(`${name}: ${f.upOk} UP_OK, ${f.throttled} THROTTLED, ${f.requests} requests, ${f.refused} 429 (${rate.toFixed(1)} %), ${f.seconds.toFixed(2)} s, ${(f.upOk / f.seconds).toFixed(0)} objects/s, Conc ${f.conc.join(' ')}`);
  seen[name] = f;
  return f;
}

describe(`a host that serves ${LIMIT} requests at once, ${TASKS} tasks at --concurrency ${CONCURRENCY}`, () => {
  it('adaptive (default): the worker settles under the knee; few 429s, no task lost', async () => {
    const f = await runKnee('aimd', []);
    expect(f.code).toBe(0);
    expect(f.terminal).toBe(TASKS); // one terminal event per task
    expect(f.upOk + f.throttled).toBe(TASKS);
    expect(f.throttled).toBeLessThanOrEqual(TASKS * 0.02);
    expect(f.requests).toBeLessThanOrEqual((1 + RETRIES) * TASKS);
    expect(f.refused / f.requests).toBeLessThan(0.1);
    // PROGRESS reports the learnt limit, not the ceiling: at exit, what the knee allowed.
    expect(f.conc.at(-1)).toBeLessThanOrEqual(2 * LIMIT);
    expect(Math.min(...f.conc)).toBeLessThan(CONCURRENCY);
  });

  // The control arm: without adaptation the same origin refuses a large share (how large
  // depends on the machine's load: 47-69 % measured), many times what AIMD lets through.
  it('fixed concurrency (--no-adaptive): many requests are refused and tasks run out of tries', async () => {
    const f = await runKnee('fixed', ['--no-adaptive']);
    expect(f.code).toBe(0);
    expect(f.terminal).toBe(TASKS);
    expect(f.requests).toBeLessThanOrEqual((1 + RETRIES) * TASKS); // bounded even so
    expect(f.refused / f.requests).toBeGreaterThan(0.25);
    expect(f.throttled).toBeGreaterThan(0);
    expect(new Set(f.conc)).toEqual(new Set([CONCURRENCY]));
  });

  it('adaptive sends fewer requests, gets far fewer 429s and loses no task', () => {
    const [on, off] = [seen.aimd, seen.fixed];
    expect(on && off).toBeTruthy();
    if (!on || !off) return;
    expect(on.requests).toBeLessThan(off.requests);
    expect(on.refused * 5).toBeLessThan(off.refused);
    expect(on.upOk).toBeGreaterThan(off.upOk);
  });
});
