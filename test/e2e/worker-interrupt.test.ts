/**
 * A standalone worker stopped by SIGINT or SIGTERM, as a user's script or Ctrl-C stops it:
 * it writes the events of what has ended, says in one line how to resume, and exits
 * 130/143 (DESIGN.md, "Exit codes and errors") instead of vanishing without a word.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FERRY, ROOT, type Origin, startOrigin } from '../helpers/run.js';

let dir: string;
let origin: Origin;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-interrupt-'));
  origin = await startOrigin();
});

afterAll(async () => {
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('a standalone worker interrupted', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('by %s writes its events so far, says how to resume, and exits %i', async (signal, code) => {
    const dest = path.join(dir, signal);
    const child = spawn(process.execPath, [FERRY, 'worker', '--tasks', '-', '--dest', dest, '--allow-private-network', '--min-dim', '1', '--timeout', '600000'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const ended = once(child, 'close');
    // One task that ends, one that stays in flight (headers, then nothing); stdin stays open.
    child.stdin.write(`done\t${origin.url}/ok/int-${signal}\nstuck\t${origin.url}/stall/int-${signal}\n`);
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d;
        if (/^UP_OK\tdone\t/m.test(stdout)) resolve();
      });
    });
    child.kill(signal);
    const [exitCode, bySignal] = (await ended) as [number | null, NodeJS.Signals | null];
    expect({ exitCode, bySignal }, stderr).toEqual({ exitCode: code, bySignal: null });
    expect(stdout.split('\n').filter(Boolean).map((l) => l.split('\t').slice(0, 2).join(' '))).toEqual(['DL_OK done', 'UP_OK done']);
    expect(stderr).toContain(`ferry worker: ${signal}: stopped with 1 task(s) read but not ended (no terminal event). Run the same tasks again`);
    child.stdin.destroy();
  });
});
