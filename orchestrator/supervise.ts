/**
 * Runs a unit's tasks through worker processes and reports what they say. The worker is a
 * child process spoken to only through protocol lines: tasks on its stdin, events on its
 * stdout, PROGRESS and logs on its stderr, and an IPC channel whose closing tells it that
 * its parent is gone.
 *
 * Flow control: at most a window of tasks (what a worker of that concurrency holds at
 * once, `tasksAhead`: several times its concurrency, so that it can read past tasks parked
 * at a throttled host) is outstanding at a worker, so the tasks a crash can interrupt are
 * bounded, and known. A worker that
 * dies on its own is respawned; the tasks it held are re-run first, together but apart
 * from any other task, and a group that kills its worker again is halved, so a payload
 * that kills the worker is found alone in about log2(window) more deaths, while its
 * innocent neighbours finish at full concurrency: a task that killed a worker, then killed
 * one again alone, is ledgered WORKER_CRASH. A worker that refuses its arguments, or dies
 * again and again without finishing anything, fails the unit.
 *
 * Workers are kept for the run (WorkerPool): once every task of a unit has been sent, its
 * worker goes back to the pool and may serve the next unit, named by a directive on the
 * task stream (PROTOCOL.md), while the first unit's last tasks are still in flight: a unit
 * ends without leaving the worker idle through its tail. Events carry no unit; each goes
 * to the session that holds its id, and a task whose id another session on that worker
 * still holds waits for it, so an id is never held twice by one worker.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Event, type Progress, type Task, encodeEvent, encodeTask, encodeUnitSwitch, isTerminal, parseEvent, parseProgress, secretsToEnv, tasksAhead } from '../protocol/index.js';
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
  /** A worker's PROGRESS (of the whole process: `worker` says which, as a unit may have several). */
  onProgress(p: Progress, worker: number): void;
  /** A line about this unit: a worker that died holding some of its tasks. The worker's own lines go to its pool's log. */
  onLog(line: string): void;
};

export class SuperviseError extends Error {
  readonly code = 'WORKER';
}

const MAX_FRUITLESS_SPAWNS = 5;

/** How long a worker whose stdout has closed may take to exit, as it does once it has closed, before it is killed. */
const EXIT_AFTER_CLOSE_MS = 5_000;

/**
 * A worker prints PROGRESS every second (compile starts it so) even with nothing to do: one
 * silent this long has its event loop stuck (a payload that hangs a parser) or is stopped
 * (SIGSTOP), and would hold its units for ever. It is killed, as a worker that dies is.
 */
export const WORKER_SILENCE_MS = 60_000;

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

/**
 * Tasks in order, pulled one at a time (a unit's are read from its task file as they are
 * sent, never all held), with the ones handed back taken again first.
 */
export class TaskQueue {
  private readonly back: Task[] = []; // popped from the end
  private ahead: Task | undefined;

  constructor(private readonly pull: () => Task | undefined) {}

  static of(tasks: readonly Task[]): TaskQueue {
    let i = 0;
    return new TaskQueue(() => tasks[i++]);
  }

  /** The tasks not taken yet, taken now. */
  rest(): Task[] {
    const rest: Task[] = [];
    for (let t = this.take(); t; t = this.take()) rest.push(t);
    return rest;
  }

  take(): Task | undefined {
    if (this.back.length > 0) return this.back.pop();
    const t = this.ahead ?? this.pull();
    this.ahead = undefined;
    return t;
  }

  /** Tasks taken and not sent: they come out again first, in their order. */
  putBack(tasks: Task[]): void {
    for (let i = tasks.length - 1; i >= 0; i--) this.back.push(tasks[i]!);
  }

  get empty(): boolean {
    if (this.back.length > 0) return false;
    this.ahead ??= this.pull();
    return this.ahead === undefined;
  }
}

export async function superviseTasks(queue: TaskQueue, launch: WorkerLaunch, hooks: SuperviseHooks, signal: AbortSignal, pool: WorkerPool): Promise<void> {
  const window = tasksAhead(launch.concurrency);
  // Tasks a dead worker held, in groups re-run apart from any other task; a group that
  // kills its worker again is halved, down to the task that kills a worker alone.
  const suspects: Task[][] = [];
  const crashes = new Map<string, number>();
  // Halving a window of suspects down to one takes up to log2(window) deaths in a row
  // without a finished task; a worker that cannot live fails the unit after a few more.
  const maxFruitless = MAX_FRUITLESS_SPAWNS + Math.ceil(Math.log2(window));
  let fruitless = 0;
  let lived = false; // a worker of the unit finished a task: workers can live, tasks kill them
  // Once the unit has failed, its lanes send nothing more: the tasks they hold settle, and the first failure is thrown.
  let failure: unknown = null;
  const tasks = new TaskQueue(() => (failure === null ? queue.take() : undefined));

  /** Runs sessions, the first on `first` when given, until no task or suspect is left. */
  const lane = async (first: WorkerProcess | null): Promise<void> => {
    let spare = first;
    while ((!tasks.empty || suspects.length > 0) && !signal.aborted && failure === null) {
      const group = suspects.shift();
      const worker = spare ?? (await pool.take(launch.args, signal));
      spare = null;
      if (!worker) {
        if (group) suspects.unshift(group);
        return;
      }
      // Suspects run alone: no other unit's task may share the worker that they might kill.
      if (group) await worker.quiet();
      let given = false;
      const giveEarly = () => {
        given = true;
        pool.give(launch.args, worker);
      };
      const groupQueue = group ? TaskQueue.of(group) : null;
      const r = groupQueue
        ? await runSession(worker, groupQueue, group!.length, launch.unit, hooks, signal, null)
        : await runSession(worker, tasks, window, launch.unit, hooks, signal, { tail: launch.concurrency, give: giveEarly });
      if (r.reusable && !given) pool.give(launch.args, worker);
      if (signal.aborted) return;
      // Suspects the session never sent (its worker, taken from the pool, was already dead):
      // no worker held them this time, so they are run again as they were.
      const unsent = groupQueue?.rest() ?? [];
      if (unsent.length > 0) suspects.unshift(unsent);
      if (r.usageError) throw new SuperviseError(`the worker refused its arguments: ${r.lastLog || 'exit code 2'}`);
      lived ||= r.progressed;
      if (r.progressed) fruitless = 0;
      // A worker that died holding nothing of this unit (another unit's task killed it, say, or
      // it was dead when taken) cost this unit nothing: it is not one of this unit's deaths.
      if (!r.lost) continue;
      if (!r.progressed) fruitless++;
      if (fruitless >= maxFruitless) throw new SuperviseError(`the worker died ${fruitless} times in a row without finishing a task: ${r.lastLog}`);
      const held = [...r.held.values()];
      for (const task of held) crashes.set(task.id, (crashes.get(task.id) ?? 0) + 1);
      if (group && held.length === 1) {
        // Held by a worker that died, then alone by another that died too: the culprit.
        const task = held[0]!;
        const e: Event = { kind: 'DL_ERR', id: task.id, reason: 'WORKER_CRASH', attempts: crashes.get(task.id)!, detail: 'the worker died while holding this task, and again while holding it alone' };
        hooks.onEvent(e, encodeEvent(e));
        if (lived) fruitless = 0; // the deaths found their cause
      } else if (group && held.length > 1) {
        const half = Math.ceil(held.length / 2);
        suspects.unshift(held.slice(0, half), held.slice(half));
      } else if (held.length > 0) suspects.push(held);
    }
  };

  // A worker given back with no unit waiting for one (the run's last units) helps this unit
  // while it has tasks to send: a unit is not held to one worker's share of --concurrency
  // while the others idle.
  const lanes = new Set<Promise<void>>();
  const start = (first: WorkerProcess | null) => {
    const running: Promise<void> = lane(first)
      .catch((e: unknown) => void (failure ??= e))
      .finally(() => lanes.delete(running));
    lanes.add(running);
  };
  const offer = () => {
    if (failure !== null || signal.aborted || tasks.empty) return;
    const w = pool.takeNow(launch.args);
    if (w) start(w);
  };
  const stopOffers = pool.onSpare(offer);
  try {
    start(null);
    // A worker idle already (given back before this unit's tasks were planned) helps at once.
    offer();
    while (lanes.size > 0) await Promise.all([...lanes]);
  } finally {
    stopOffers();
  }
  if (failure !== null) throw failure;
}

/** How a worker process ended: it exited (a code or a signal), or it never started. */
type Exit = { kind: 'exited'; code: number | null; sig: NodeJS.Signals | null } | { kind: 'unstarted'; why: string };

function describeExit(worker: number, exit: Exit): string {
  if (exit.kind === 'unstarted') return `worker ${worker} could not start (${exit.why})`;
  return `worker ${worker} exited with ${exit.sig ?? `code ${exit.code}`}`;
}

const exitedCleanly = (exit: Exit) => exit.kind === 'exited' && exit.code === 0;

/** One unit's stretch on a worker: what the worker says about that unit's tasks goes to it. */
type Session = {
  holds(id: string): boolean;
  /** Tasks sent and not settled. */
  readonly holding: number;
  event(e: Event, line: string): void;
  chunk(): void;
  progress(p: Progress): void;
  ended(exit: Exit): void;
};

/**
 * One `ferry worker` process. It outlives a unit: starting one costs ~0.2 s of CPU and its
 * first thousands of tasks cost about twice what later ones do (the JIT warming up), so a
 * run keeps its workers and hands them unit after unit (WorkerPool).
 */
class WorkerProcess {
  private readonly child: ChildProcess;
  private exit: Exit | null = null;
  private outClosed = false;
  /** Attached sessions, oldest first: the newest is the unit being fed now. */
  private readonly sessions: Session[] = [];
  private quietWaiters: (() => void)[] = [];
  /** Ended by us (the run stopped, or it fell silent and that was said): its exit is no news. */
  private killed = false;
  /** When it last printed anything, once its first PROGRESS said it runs (0 before: still starting). */
  private heard = 0;
  private readonly watchdog: NodeJS.Timeout;
  lastLog = '';
  readonly exited: Promise<void>;

  /**
   * `id` names it in log lines: what it prints on stderr, and what it prints on stdout that
   * is no event, concern no unit in particular (a worker serves several in turn), so they go
   * to `log` under its own name.
   */
  constructor(
    args: string[],
    readonly id: number,
    private readonly log: (line: string) => void,
    silenceMs: number,
  ) {
    const { argv, env } = secretsToEnv(args); // header values stay out of `ps`
    this.child = spawn(process.execPath, [ferryBin(), 'worker', '--tasks=-', ...argv], {
      stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
      // The AWS SDK's Node-version notice is for the operator once (the orchestrator shows it), not once per worker.
      env: { ...process.env, ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    const { child } = this;
    child.stdin!.on('error', () => {}); // a dead worker's stdin: the exit handler decides what happens
    // More tasks are sent once per read of the worker's stdout, not once per event.
    eachLine(child.stdout!, (line) => this.route(line), () => {
      this.hear(false);
      for (const s of [...this.sessions]) s.chunk();
    });
    eachLine(child.stderr!, (line) => {
      const p = parseProgress(line);
      this.hear(p !== null);
      // PROGRESS is the whole process's: every unit it serves now goes at its pace.
      if (p) for (const s of this.sessions) s.progress(p);
      else if (line.trim() !== '') {
        this.lastLog = line;
        this.log(`worker ${this.id}: ${line}`);
      }
    });
    this.watchdog = this.watch(silenceMs);
    this.exited = new Promise((resolve) => {
      const settle = () => {
        if (!this.outClosed || !this.exit) return;
        clearInterval(this.watchdog);
        const exit = this.exit;
        // Each session holding tasks says what it lost; a death that cost no unit anything is said once, here.
        const lost = this.sessions.some((s) => s.holding > 0);
        if (!lost && !this.killed && !exitedCleanly(exit)) this.log(`${describeExit(this.id, exit)}, holding no task`);
        for (const s of [...this.sessions]) s.ended(exit);
        resolve();
      };
      child.stdout!.on('close', () => {
        this.outClosed = true;
        settle();
        // A process that lives on without its stdout can report nothing more, and would hold
        // its place in the pool for ever: past a short wait for its exit, it is killed.
        if (!this.exit) setTimeout(() => this.closedButAlive(), EXIT_AFTER_CLOSE_MS).unref();
      });
      child.on('exit', (code, sig) => {
        this.exit = { kind: 'exited', code, sig };
        settle();
      });
      child.on('error', (e) => {
        this.lastLog = `cannot start worker: ${e.message}`;
        // Only a spawn that failed ends it here: a process that runs says so by exiting.
        if (child.pid !== undefined) return this.log(`worker ${this.id}: ${e.message}`);
        this.exit = { kind: 'unstarted', why: e.message };
        this.outClosed = true;
        settle();
      });
    });
  }

  private closedButAlive(): void {
    if (this.exit || this.killed) return;
    this.killed = true;
    this.log(`worker ${this.id} closed its stdout but did not exit: it is killed, and what it held runs again`);
    this.child.kill('SIGKILL');
  }

  private hear(progress: boolean): void {
    if (progress || this.heard > 0) this.heard = Date.now();
  }

  /** Kills the process once it has printed nothing for `silenceMs` (see WORKER_SILENCE_MS). */
  private watch(silenceMs: number): NodeJS.Timeout {
    const every = Math.max(100, silenceMs / 4);
    let checked = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      // This check itself came late (our own event loop was busy): the worker's lines may
      // be waiting unread in the pipe, so its silence is not known. It is timed from now.
      if (now - checked > 2 * every && this.heard > 0) this.heard = now;
      checked = now;
      if (this.heard === 0 || now - this.heard < silenceMs || this.killed) return;
      this.killed = true;
      this.log(`worker ${this.id} printed nothing for ${Math.round((now - this.heard) / 1000)} s (hung or stopped): it is killed, and what it held runs again`);
      this.child.kill('SIGKILL');
    }, every);
    timer.unref();
    return timer;
  }

  get alive(): boolean {
    return this.exit === null && !this.outClosed;
  }

  /** How it ended, once its process has (null before). */
  get exitStatus(): Exit | null {
    return this.exit;
  }

  attach(s: Session): void {
    this.sessions.push(s);
  }

  detach(s: Session): void {
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    if (this.sessions.length === 0) for (const wake of this.quietWaiters.splice(0)) wake();
  }

  /** No session is attached: nothing of any unit is in flight here. */
  get settled(): boolean {
    return this.sessions.length === 0;
  }

  /** Resolves once no session is attached (the tasks of other units have all settled). */
  quiet(): Promise<void> {
    return this.sessions.length === 0 ? Promise.resolve() : new Promise((resolve) => this.quietWaiters.push(resolve));
  }

  /** Whether a session on this worker holds a task of that id. */
  holds(id: string): boolean {
    return this.sessions.some((s) => s.holds(id));
  }

  /** An event goes to the session holding its id; one held by none is not counted twice. */
  private route(line: string): void {
    let e: Event;
    try {
      e = parseEvent(line);
    } catch (err) {
      this.log(`worker ${this.id} printed a malformed event (${(err as Error).message}): ${line.slice(0, 200)}`);
      return;
    }
    const owner = this.sessions.find((s) => s.holds(e.id));
    if (owner) owner.event(e, line);
    else if (!isTerminal(e) && this.sessions.length === 1) this.sessions[0]!.event(e, line);
  }

  send(text: string): void {
    this.child.stdin!.write(text);
  }

  /** No more tasks: the worker finishes what it holds and exits. */
  end(): void {
    if (!this.child.stdin!.writableEnded) this.child.stdin!.end();
  }

  kill(): void {
    this.killed = true;
    this.child.kill('SIGTERM');
    // A stopped process (SIGSTOP) keeps a SIGTERM pending until it runs again, and the run's
    // stop would wait for it for ever: it is continued, to die (as a shell does for a stopped job).
    this.child.kill('SIGCONT');
  }
}

/**
 * A run's worker processes, at most `size` alive at once: one is taken for a unit's tasks
 * and given back once they are all sent, for the next unit to reuse (same flags). A take
 * prefers a process with nothing in flight, then a new one while the bound allows, and only
 * then one still finishing a unit's tail: each process has a share of --concurrency, so
 * small units piled onto one process while the others were never started would use that
 * share alone. A process that died is never given back. A take past the bound waits for a
 * give or an exit; one for other flags ends an idle process to make room. `close` lets
 * them all exit.
 */
export class WorkerPool {
  private readonly idle = new Map<string, WorkerProcess[]>();
  private readonly all = new Set<WorkerProcess>();
  private waiters: (() => void)[] = [];
  private closed = false;
  /** Processes started so far. */
  started = 0;

  /**
   * `log` takes the lines that concern a worker rather than a unit, each naming it (`worker
   * 2: …`); a worker silent for `silenceMs` is killed (WORKER_SILENCE_MS).
   */
  constructor(
    readonly size = Infinity,
    private readonly log: (line: string) => void = (line) => process.stderr.write(line + '\n'),
    private readonly silenceMs = WORKER_SILENCE_MS,
  ) {}

  /** A worker for these flags, or null once the run is aborted or the pool closed. */
  async take(args: string[], signal?: AbortSignal): Promise<WorkerProcess | null> {
    const key = args.join('\0');
    while (!this.closed && !signal?.aborted) {
      const list = this.idle.get(key);
      const settled = popAlive(list, (w) => w.settled);
      if (settled) return settled;
      if (this.all.size < this.size) return this.spawn(args);
      const finishing = popAlive(list);
      if (finishing) return finishing;
      const other = this.takeAnyIdle();
      if (other) {
        other.end();
        await other.exited;
        continue;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
    return null;
  }

  /** An idle process of any flags, out of the idle lists. */
  private takeAnyIdle(): WorkerProcess | null {
    for (const list of this.idle.values()) {
      const w = popAlive(list);
      if (w) return w;
    }
    return null;
  }

  private spawn(args: string[]): WorkerProcess {
    const w = new WorkerProcess(args, ++this.started, this.log, this.silenceMs);
    this.all.add(w);
    void w.exited.then(() => {
      this.all.delete(w);
      this.wake();
    });
    return w;
  }

  /** Starts a process for these flags now, unless one is idle or the pool is full: a take soon finds it ready. */
  prewarm(args: string[]): void {
    if (this.closed || this.all.size >= this.size || this.idle.get(args.join('\0'))?.some((w) => w.alive && w.settled)) return;
    const key = args.join('\0');
    this.idle.set(key, [...(this.idle.get(key) ?? []), this.spawn(args)]);
    this.wake();
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  give(args: string[], w: WorkerProcess): void {
    if (!w.alive) return;
    const key = args.join('\0');
    this.idle.set(key, [...(this.idle.get(key) ?? []), w]);
    // A unit waiting for a worker takes it first; with none waiting, a running unit may (once
    // the giver's own turn is over: a give may come from inside a session's refill).
    if (this.waiters.length > 0) this.wake();
    else for (const offer of this.spareListeners) queueMicrotask(offer);
  }

  private readonly spareListeners = new Set<() => void>();

  /**
   * `offer` is called whenever a worker is given back and no take waits for one (takeNow may
   * then have it); returns what stops the calls. A prewarmed worker is never offered: it is
   * the next unit's.
   */
  onSpare(offer: () => void): () => void {
    this.spareListeners.add(offer);
    return () => this.spareListeners.delete(offer);
  }

  /** An idle worker for these flags, taken now (one with nothing in flight first), or null: never a new one. */
  takeNow(args: string[]): WorkerProcess | null {
    if (this.closed) return null;
    const list = this.idle.get(args.join('\0'));
    return popAlive(list, (w) => w.settled) ?? popAlive(list);
  }

  /** Ends every worker's task stream and waits for them to exit. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    this.idle.clear();
    const all = [...this.all];
    for (const w of all) w.end();
    await Promise.all(all.map((w) => w.exited));
  }
}

/** The last live process of a list that `fits`, taken out of it; dead ones are dropped. */
function popAlive(list: WorkerProcess[] | undefined, fits: (w: WorkerProcess) => boolean = () => true): WorkerProcess | null {
  if (!list) return null;
  for (let i = list.length - 1; i >= 0; i--) {
    const w = list[i]!;
    if (!w.alive) list.splice(i, 1);
    else if (fits(w)) return list.splice(i, 1)[0]!;
  }
  return null;
}

/**
 * `lost`: the worker died while this session held tasks (they are in `held`), or it never
 * started; a death that took nothing of this session's is not its loss.
 */
type SessionResult = { held: Map<string, Task>; lost: boolean; usageError: boolean; progressed: boolean; lastLog: string; reusable: boolean };

/**
 * One unit's stretch on one worker: fed from `queue` (in order, tasks put back first), at most
 * `window` tasks held. `handOver.give` is called once the queue is empty (every task
 * handed over) and at most `handOver.tail` of them are unsettled: the worker may then serve
 * another unit while this one's last tasks finish. Not before: a worker handed over with
 * most of its window (8 × its concurrency) still to do could take the next unit from a
 * worker that will be idle sooner. Ends when
 * every task sent is settled (the worker can serve again), or when the worker exits
 * (what it held comes back).
 */
function runSession(
  worker: WorkerProcess,
  queue: TaskQueue,
  window: number,
  unit: string,
  hooks: SuperviseHooks,
  signal: AbortSignal,
  handOver: { tail: number; give: () => void } | null,
): Promise<SessionResult> {
  const held = new Map<string, Task>();
  // Tasks whose id another session on this worker still holds: sent once it settles.
  const waiting: Task[] = [];
  let progressed = false;
  return new Promise((resolve) => {
    let done = false;
    const finish = (end: { lost: boolean; usageError: boolean; reusable: boolean }) => {
      if (done) return;
      done = true;
      worker.detach(session);
      signal.removeEventListener('abort', onAbort);
      queue.putBack(waiting);
      resolve({ held, ...end, progressed, lastLog: worker.lastLog });
    };
    // Topped up once a quarter of the window is settled: each write carries many tasks,
    // not one or two, and the worker still holds 1.5 times its concurrency, so never starves.
    const refill = () => {
      if (done || (held.size > (3 * window) / 4 && !queue.empty)) return;
      if (waiting.length > 0) queue.putBack(waiting.splice(0));
      let chunk = '';
      while (held.size < window && !queue.empty) {
        const task = queue.take()!;
        if (worker.holds(task.id)) {
          waiting.push(task);
          continue;
        }
        held.set(task.id, task);
        chunk += encodeTask(task);
      }
      if (chunk !== '') worker.send(chunk);
      if (queue.empty && waiting.length === 0 && handOver && held.size <= handOver.tail) {
        const { give } = handOver;
        handOver = null;
        give();
      }
      if (held.size === 0 && queue.empty && waiting.length === 0) finish({ lost: false, usageError: false, reusable: worker.alive });
    };
    const session: Session = {
      holds: (id) => held.has(id),
      get holding() {
        return held.size;
      },
      event: (e, line) => {
        if (isTerminal(e)) {
          if (!held.delete(e.id)) return; // not ours (already settled): never count a fact twice
          progressed = true;
        }
        hooks.onEvent(e, line + '\n');
      },
      chunk: refill,
      progress: (p) => hooks.onProgress(p, worker.id),
      ended: (exit) => {
        // A worker that exits, even with 0, before every task it was sent has its outcome lost them.
        const lost = held.size > 0 || exit.kind === 'unstarted';
        if (held.size > 0 && !signal.aborted) hooks.onLog(`${describeExit(worker.id, exit)} holding ${held.size} task(s)`);
        finish({ lost, usageError: exit.kind === 'exited' && exit.code === 2, reusable: false });
      },
    };
    const onAbort = () => worker.kill();
    signal.addEventListener('abort', onAbort, { once: true });
    worker.attach(session);
    // Dead before this session sent anything (its process ended while the session waited
    // for it to be quiet): nothing was lost here, unless the process never started at all.
    if (!worker.alive) {
      const exit = worker.exitStatus;
      return exit?.kind === 'unstarted' ? session.ended(exit) : finish({ lost: false, usageError: false, reusable: false });
    }
    worker.send(encodeUnitSwitch(unit));
    refill();
  });
}
