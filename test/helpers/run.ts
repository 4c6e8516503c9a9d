/** Running the built CLI and the test servers as real processes. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FERRY = fileURLToPath(new URL('../../bin/ferry.js', import.meta.url));

export type Run = { code: number | null; stdout: string; stderr: string };

/** Runs `ferry …` (the built CLI) to its end. */
export async function ferry(args: string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const child = spawn(process.execPath, [FERRY, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(opts.input ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** Starts `ferry …` and returns the child, for tests that kill it. */
export function ferrySpawn(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [FERRY, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
}

export type Origin = { url: string; stats(): Promise<Record<string, number>>; close(): Promise<void> };

/** Starts test/servers/fault-origin.mjs on 127.0.0.1 (files under /file/ come from `root`). */
export async function startOrigin(root?: string): Promise<Origin> {
  const server = await startServer(fileURLToPath(new URL('../servers/fault-origin.mjs', import.meta.url)), [], { FERRY_ORIGIN_ROOT: root ?? '' });
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    stats: async () => (await (await fetch(`${url}/__stats`)).json()) as Record<string, number>,
    close: server.stop,
  };
}

/** Resolves once `cond` holds, asked every 20 ms; throws after `ms`. */
export async function until(cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
