/**
 * Runs a unit's tasks through worker processes and reports what they say. The worker is a
 * child process spoken to only through protocol lines: tasks on its stdin, events on its
 * stdout, PROGRESS and logs on its stderr, and an IPC channel whose closing tells it that
 * its parent is gone.
 *
 * Flow control: at most a window of tasks (twice the worker's concurrency) is outstanding
 * at a worker, so the tasks a crash can interrupt are bounded, and known. A worker that
 * dies on its own is respawned; the tasks it held are re-run first, one at a time, so a
 * payload that kills the worker is found alone: a task held during two crashes is
 * ledgered WORKER_CRASH, and its innocent neighbours are not. A worker that refuses its
 * arguments, or dies again and again without finishing anything, fails the unit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Event, type Progress, type Task, encodeEvent, encodeTask, isTerminal, parseEvent, parseProgress } from '../protocol/index.js';
import { eachLine } from './lines.js';

/** `args` are the worker flags; `concurrency` (also among them) sizes the task window. */
export type WorkerLaunch = { args: string[]; concurrency: number };

export type SuperviseHooks = {
  /** A fact from the worker (or WORKER_CRASH, made here), with its line for the journal. */
  onEvent(e: Event, line: string): void;
  onProgress(p: Progress): void;
  onLog(line: string): void;
};

export class SuperviseError extends Error {
  readonly code = 'WORKER';
}

const MAX_FRUITLESS_SPAWNS = 5;

/** bin/ferry.js of this package, found from here both in dist/ and in the sources. */
function ferryBin(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'bin', 'ferry.js'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('internal: bin/ferry.js not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return path.join(dir, 'bin', 'ferry.js');
}

export async function superviseTasks(tasks: readonly Task[], launch: WorkerLaunch, hooks: SuperviseHooks, signal: AbortSignal): Promise<void> {
  const queue: Task[] = [...tasks].reverse(); // popped from the end: input order
  const suspects: Task[] = []; // held during a crash: re-run one at a time, to find the culprit
  const crashes = new Map<string, number>();
  let fruitless = 0;
  while ((queue.length > 0 || suspects.length > 0) && !signal.aborted) {
    const isolating = suspects.length > 0;
    const source = isolating ? suspects : queue;
    const r = await runOneWorker(source, isolating ? 1 : Math.max(2 * launch.concurrency, 16), launch, hooks, signal);
    if (signal.aborted) return;
    if (r.usageError) throw new SuperviseError(`the worker refused its arguments: ${r.lastLog || 'exit code 2'}`);
    if (r.held.size === 0 && r.exitedCleanly) continue;
    fruitless = r.progressed ? 0 : fruitless + 1;
    if (fruitless >= MAX_FRUITLESS_SPAWNS) throw new SuperviseError(`the worker died ${fruitless} times in a row without finishing a task: ${r.lastLog}`);
    const again: Task[] = [];
    for (const task of r.held.values()) {
      const n = (crashes.get(task.id) ?? 0) + 1;
      crashes.set(task.id, n);
      if (n >= 2) {
        const e: Event = { kind: 'DL_ERR', id: task.id, reason: 'WORKER_CRASH', attempts: n, detail: 'the worker died twice while holding this task' };
        hooks.onEvent(e, encodeEvent(e));
      } else again.push(task);
    }
    suspects.push(...again.reverse());
  }
}

type WorkerResult = { held: Map<string, Task>; exitedCleanly: boolean; usageError: boolean; progressed: boolean; lastLog: string };

/** One worker's life: fed from `queue` (popped from its end), at most `window` tasks held. */
function runOneWorker(queue: Task[], window: number, launch: WorkerLaunch, hooks: SuperviseHooks, signal: AbortSignal): Promise<WorkerResult> {
  const held = new Map<string, Task>();
  let progressed = false;
  let lastLog = '';
  const child: ChildProcess = spawn(process.execPath, [ferryBin(), 'worker', '--tasks=-', ...launch.args], {
    stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
    // The AWS SDK's Node-version notice is for the operator once (the orchestrator shows it), not once per worker.
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const stdin = child.stdin!;
  stdin.on('error', () => {}); // a dead worker's stdin: the exit handler decides what happens
  // Topped up once a quarter of the window is settled: each write carries many tasks,
  // not one or two, and the worker still holds 1.5 times its concurrency, so never starves.
  const refill = () => {
    if (held.size > (3 * window) / 4 && queue.length > 0) return;
    let chunk = '';
    while (held.size < window && queue.length > 0) {
      const task = queue.pop()!;
      held.set(task.id, task);
      chunk += encodeTask(task);
    }
    if (chunk !== '') stdin.write(chunk);
    if (queue.length === 0 && !stdin.writableEnded) stdin.end();
  };
  // More tasks are sent once per read of the worker's stdout, not once per event.
  eachLine(child.stdout!, (line) => {
    let e: Event;
    try {
      e = parseEvent(line);
    } catch (err) {
      hooks.onLog(`worker printed a malformed event (${(err as Error).message}): ${line.slice(0, 200)}`);
      return;
    }
    if (isTerminal(e)) {
      if (!held.delete(e.id)) return; // not ours (already settled): never count a fact twice
      progressed = true;
    }
    hooks.onEvent(e, line + '\n');
  }, refill);
  eachLine(child.stderr!, (line) => {
    const p = parseProgress(line);
    if (p) hooks.onProgress(p);
    else if (line.trim() !== '') {
      lastLog = line;
      hooks.onLog(line);
    }
  });
  const onAbort = () => child.kill('SIGTERM');
  signal.addEventListener('abort', onAbort, { once: true });
  refill();
  return new Promise((resolve) => {
    let outClosed = false;
    let exit: { code: number | null; sig: NodeJS.Signals | null } | null = null;
    const settle = () => {
      if (!outClosed || !exit) return;
      signal.removeEventListener('abort', onAbort);
      if (exit.code !== 0 && !signal.aborted) hooks.onLog(`worker exited with ${exit.sig ?? `code ${exit.code}`} holding ${held.size} task(s)`);
      resolve({ held, exitedCleanly: exit.code === 0, usageError: exit.code === 2, progressed, lastLog });
    };
    child.stdout!.on('close', () => {
      outClosed = true;
      settle();
    });
    child.on('exit', (code, sig) => {
      exit = { code, sig };
      settle();
    });
    child.on('error', (e) => {
      hooks.onLog(`cannot start worker: ${e.message}`);
      exit = { code: -1, sig: null };
      outClosed = true;
      settle();
    });
  });
}
