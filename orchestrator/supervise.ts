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
 *
 * Workers are kept for the run (WorkerPool): once every task of a unit is settled, its
 * worker serves the next unit, named by a directive on the task stream (PROTOCOL.md).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Event, type Progress, type Task, encodeEvent, encodeTask, encodeUnitSwitch, isTerminal, parseEvent, parseProgress } from '../protocol/index.js';
import { eachLine } from './lines.js';

/**
 * `args` are the worker flags, the same for every unit of a run (never `--unit`), so one
 * process serves unit after unit; `concurrency` (also among them) sizes the task window;
 * `unit` is named on the task stream.
 */
export type WorkerLaunch = { args: string[]; concurrency: number; unit: string };

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

export async function superviseTasks(tasks: readonly Task[], launch: WorkerLaunch, hooks: SuperviseHooks, signal: AbortSignal, pool: WorkerPool): Promise<void> {
  const queue: Task[] = [...tasks].reverse(); // popped from the end: input order
  const suspects: Task[] = []; // held during a crash: re-run one at a time, to find the culprit
  const crashes = new Map<string, number>();
  let fruitless = 0;
  while ((queue.length > 0 || suspects.length > 0) && !signal.aborted) {
    const isolating = suspects.length > 0;
    const source = isolating ? suspects : queue;
    const worker = pool.take(launch.args);
    const r = await runSession(worker, source, isolating ? 1 : Math.max(2 * launch.concurrency, 16), launch.unit, hooks, signal);
    if (r.reusable) pool.give(launch.args, worker);
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

type Exit = { code: number | null; sig: NodeJS.Signals | null };

/** What a worker process says, routed to the unit it works for now. */
type Session = { line(line: string): void; chunk(): void; progress(p: Progress): void; log(line: string): void; ended(exit: Exit): void };

/**
 * One `ferry worker` process. It outlives a unit: starting one costs ~0.2 s of CPU and its
 * first thousands of tasks cost about twice what later ones do (the JIT warming up), so a
 * run keeps its workers and hands them unit after unit (WorkerPool).
 */
class WorkerProcess {
  private readonly child: ChildProcess;
  private exit: Exit | null = null;
  private outClosed = false;
  session: Session | null = null;
  lastLog = '';
  readonly exited: Promise<void>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [ferryBin(), 'worker', '--tasks=-', ...args], {
      stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
      // The AWS SDK's Node-version notice is for the operator once (the orchestrator shows it), not once per worker.
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    const { child } = this;
    child.stdin!.on('error', () => {}); // a dead worker's stdin: the exit handler decides what happens
    // More tasks are sent once per read of the worker's stdout, not once per event.
    eachLine(child.stdout!, (line) => this.session?.line(line), () => this.session?.chunk());
    eachLine(child.stderr!, (line) => {
      const p = parseProgress(line);
      if (p) this.session?.progress(p);
      else if (line.trim() !== '') {
        this.lastLog = line;
        this.session?.log(line);
      }
    });
    this.exited = new Promise((resolve) => {
      const settle = () => {
        if (!this.outClosed || !this.exit) return;
        this.session?.ended(this.exit);
        resolve();
      };
      child.stdout!.on('close', () => {
        this.outClosed = true;
        settle();
      });
      child.on('exit', (code, sig) => {
        this.exit = { code, sig };
        settle();
      });
      child.on('error', (e) => {
        this.lastLog = `cannot start worker: ${e.message}`;
        this.session?.log(this.lastLog);
        this.exit = { code: -1, sig: null };
        this.outClosed = true;
        settle();
      });
    });
  }

  get alive(): boolean {
    return this.exit === null && !this.outClosed;
  }

  send(text: string): void {
    this.child.stdin!.write(text);
  }

  /** No more tasks: the worker finishes what it holds and exits. */
  end(): void {
    if (!this.child.stdin!.writableEnded) this.child.stdin!.end();
  }

  kill(): void {
    this.child.kill('SIGTERM');
  }
}

/**
 * A run's worker processes: one is taken for a unit's tasks and given back when they are
 * all settled, for the next unit to reuse (same flags). A process that died is never given
 * back. `close` lets the idle ones exit.
 */
export class WorkerPool {
  private readonly idle = new Map<string, WorkerProcess[]>();
  private readonly all = new Set<WorkerProcess>();
  /** Processes started so far. */
  started = 0;

  take(args: string[]): WorkerProcess {
    const list = this.idle.get(args.join('\0'));
    for (let w = list?.pop(); w; w = list?.pop()) if (w.alive) return w;
    const w = new WorkerProcess(args);
    this.started++;
    this.all.add(w);
    void w.exited.then(() => this.all.delete(w));
    return w;
  }

  give(args: string[], w: WorkerProcess): void {
    if (!w.alive) return;
    const key = args.join('\0');
    this.idle.set(key, [...(this.idle.get(key) ?? []), w]);
  }

  /** Ends every worker's task stream and waits for them to exit. */
  async close(): Promise<void> {
    this.idle.clear();
    const all = [...this.all];
    for (const w of all) w.end();
    await Promise.all(all.map((w) => w.exited));
  }
}

type SessionResult = { held: Map<string, Task>; exitedCleanly: boolean; usageError: boolean; progressed: boolean; lastLog: string; reusable: boolean };

/**
 * One unit's stretch on one worker: fed from `queue` (popped from its end), at most
 * `window` tasks held. Ends when every task sent is settled and the queue is empty (the
 * worker can serve again), or when the worker exits (what it held comes back).
 */
function runSession(worker: WorkerProcess, queue: Task[], window: number, unit: string, hooks: SuperviseHooks, signal: AbortSignal): Promise<SessionResult> {
  const held = new Map<string, Task>();
  let progressed = false;
  return new Promise((resolve) => {
    let done = false;
    const finish = (exitedCleanly: boolean, usageError: boolean, reusable: boolean) => {
      if (done) return;
      done = true;
      worker.session = null;
      signal.removeEventListener('abort', onAbort);
      resolve({ held, exitedCleanly, usageError, progressed, lastLog: worker.lastLog, reusable });
    };
    // Topped up once a quarter of the window is settled: each write carries many tasks,
    // not one or two, and the worker still holds 1.5 times its concurrency, so never starves.
    const refill = () => {
      if (done || (held.size > (3 * window) / 4 && queue.length > 0)) return;
      let chunk = '';
      while (held.size < window && queue.length > 0) {
        const task = queue.pop()!;
        held.set(task.id, task);
        chunk += encodeTask(task);
      }
      if (chunk !== '') worker.send(chunk);
      if (held.size === 0 && queue.length === 0) finish(true, false, worker.alive);
    };
    worker.session = {
      line: (line) => {
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
      },
      chunk: refill,
      progress: (p) => hooks.onProgress(p),
      log: (line) => hooks.onLog(line),
      ended: (exit) => {
        if (exit.code !== 0 && !signal.aborted) hooks.onLog(`worker exited with ${exit.sig ?? `code ${exit.code}`} holding ${held.size} task(s)`);
        finish(exit.code === 0, exit.code === 2, false);
      },
    };
    const onAbort = () => worker.kill();
    signal.addEventListener('abort', onAbort, { once: true });
    if (!worker.alive) return worker.session.ended({ code: -1, sig: null });
    worker.send(encodeUnitSwitch(unit));
    refill();
  });
}
