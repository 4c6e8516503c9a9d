/**
 * `ferry worker --tasks <file|-> --dest <uri> [--unit NAME]` — the data plane program.
 * Reads `id<TAB>url` tasks, runs them with bounded concurrency, prints one event line per
 * fact on stdout, PROGRESS on stderr every few seconds and at exit. Exits 0 once every task
 * has its terminal event, whatever the outcomes.
 */
import { randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import { FlagError, MAX_TASK_LINE_BYTES, idProblem, parseTaskLine, storeOptionsOf, tasksAhead } from '../protocol/index.js';
import { type StorageAdapter, StorageError, UriError, checkWrites, describePlace, openStore, parsePlace, unitPrefix } from '../storage/index.js';
import { localSourceRootProblem } from '../storage/local-source.js';
import { endpointEnvProblem } from '../storage/endpoint-env.js';
import { proxyEnvProblem } from '../storage/proxy-env.js';
import { HostLimits } from './aimd.js';
import { type Args, UsageError, parseArgs, reservedUnitProblem } from './args.js';
import { downloadOptions, sourceStores } from './download-options.js';
import { Emitter } from './emit.js';
import { prepareGates } from './gates.js';
import { FairSlots, KeyedLanes, Semaphore, laneOf } from './limit.js';
import type { TaskContext } from './context.js';
import { runTask } from './run.js';
import { taskLines } from './task-lines.js';

/**
 * Per-host adaptive limits under the --concurrency ceiling: one per origin host, and the
 * destination as one more host. No deadlock: a task waits for an origin's slot holding
 * nothing; holding it, for a request slot (--concurrency); holding both, for a body's
 * memory slot; with a body in hand (its request slot), for the destination's slot; holding
 * the destination's slot it waits on nothing. A request slot is never held while waiting
 * for an origin, so one throttled host's queue cannot hold up the others.
 */
function adaptiveLimits(args: Args) {
  if (!args.adaptive) return null;
  const ceiling = args.flags.concurrency;
  const origins = new HostLimits(ceiling);
  const dest = new HostLimits(ceiling);
  return {
    origins,
    destSlot: () => dest.acquire('destination'), // the store is one host
    /** PROGRESS Conc (protocol/PROTOCOL.md): what the origins and the destination allow now. */
    conc: () => Math.min(origins.capacity(), dest.capacity()),
  };
}

/** The tasks file, opened now so that a missing or unreadable one is a usage error naming it. */
async function openTasks(file: string): Promise<NodeJS.ReadableStream> {
  const handle = await open(file).catch((e: unknown) => {
    throw new UsageError(`--tasks ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  });
  if ((await handle.stat()).isDirectory()) {
    await handle.close();
    throw new UsageError(`--tasks ${file}: a folder, not a file`);
  }
  return handle.createReadStream();
}

/** --dest as a place; what is wrong with it is a usage error naming the flag. */
function destPlace(dest: string) {
  try {
    return parsePlace(dest);
  } catch (e) {
    if (e instanceof UriError) throw new UsageError(`--dest: ${e.message}`);
    throw e;
  }
}

async function main(argv: string[]): Promise<number> {
  const args = await parseArgs(argv[0] === 'worker' ? argv.slice(1) : argv);
  const environment = proxyEnvProblem() ?? endpointEnvProblem({ s3: args.flags.s3Endpoint !== null, gcs: args.flags.gcsEndpoint !== null });
  if (environment) throw new UsageError(environment);
  const root = args.flags.localSourceRoot === null ? null : await localSourceRootProblem(args.flags.localSourceRoot);
  if (root) throw new FlagError('local-source-root', root);
  const dest = destPlace(args.dest);
  // Opening probes a custom endpoint (a marker written twice): a bucket that does not exist,
  // or may not be written to, is the user's to fix, said in one line.
  const store = await openStore(dest, { ...storeOptionsOf(args.flags), maxAttempts: 1 }).catch((e: unknown) => {
    throw e instanceof StorageError ? new PlaceError(`--dest ${describePlace(dest)} cannot be used: ${e.message}`) : e;
  });
  // Standalone, a --dest that refuses writes (a file where the folder should be, a read-only
  // folder) is said before any download, as compile says it; an orchestrator has checked
  // its --dest already, once for all its workers.
  if (!process.send) {
    await checkWrites(store, 'a refusal').catch((e: unknown) => {
      throw new PlaceError(`--dest ${describePlace(dest)} cannot be used: ${(e as Error).message}`);
    });
  }
  await prepareGates(args.flags);
  // Requests in flight and bodies in hand (--concurrency), shared fairly among hosts; and
  // tasks read but not ended, more of them, so that tasks parked at a saturated host leave
  // room for other hosts'. Of one host's, at most --concurrency (16 at least) are started
  // at once: the others wait unstarted, cheaply, in its lane.
  const slots = new FairSlots(args.flags.concurrency);
  const held = new Semaphore(tasksAhead(args.flags.concurrency));
  const lanes = new KeyedLanes(Math.max(16, args.flags.concurrency));
  const limits = adaptiveLimits(args);
  const emitter = new Emitter(process.stdout, process.stderr, () => ({ inflight: slots.inflight, conc: limits?.conc() ?? slots.capacity }));
  const sources = sourceStores(args.flags);
  const ctx: TaskContext = {
    flags: args.flags,
    largeSlots: new Semaphore(args.flags.largeConcurrency),
    store,
    unit: args.unit,
    runId: args.runId ?? randomUUID(),
    download: { ...downloadOptions(args.flags, sources.get), slots, ...(limits ? { admit: limits.origins } : {}) },
    ...(limits ? { destSlot: limits.destSlot } : {}),
    emit: (e) => emitter.emit(e),
    flowed: (id, down, up) => emitter.flowed(id, down, up),
    ...(process.send ? {} : { streamedKeys: new Set<string>() }),
  };
  // Started by an orchestrator: its death closes the IPC channel, and we must not linger.
  if (process.send) process.on('disconnect', () => process.exit(1));
  // Whoever reads the events is gone (a dead orchestrator, or `| head`): no fact can reach
  // anyone any more, so stop, quietly, as a process killed by SIGPIPE would. A closed
  // stderr only loses PROGRESS and log lines: the events still flow.
  // So too when the events cannot be written at all (`> file` on a full disk, EIO): said in
  // one line, not as an uncaught error's stack.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') process.stderr.write(`ferry worker: cannot write events to stdout (${e.code ?? e.message}): stopping\n`);
    process.exit(1);
  });
  process.stderr.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
  // Standalone, an interrupt ends the run where it is (DESIGN.md: exit 130/143): the events
  // of what has ended are written, the tasks in flight are abandoned, and one line says how
  // to resume. Under an orchestrator a signal ends the worker at once, as the orchestrator
  // expects (it has journaled every event it read).
  const interrupt = process.send ? null : exitOnInterrupt(emitter, () => held.inflight);
  const ticker = setInterval(() => emitter.progress(), args.progressInterval);
  // And one now, before any task is read: an orchestrator times a worker's silence from its
  // first PROGRESS (a start, its probe of the destination included, may take its time).
  emitter.progress();
  const input = args.tasks === '-' ? process.stdin : await openTasks(args.tasks);
  let lineNo = 0;
  let malformed = 0;
  // The unit of the tasks read now: --unit, until a unit directive names another. Each task
  // keeps the context it was read with, so a switch never moves a task in flight.
  let unitCtx = ctx;
  // After a refused unit directive, the tasks up to the next one have no unit: skipped, not
  // written under the unit before it.
  let unitless = false;
  // The units whose tasks were read (undefined: no unit): each one's leftovers go at exit.
  const served = new Set<string | undefined>();
  for await (const read of taskLines(input, MAX_TASK_LINE_BYTES)) {
    // Lines read while nobody takes the events, or the messages naming bad lines, would only pile them up.
    if (emitter.backedUp()) await emitter.caughtUp();
    lineNo++;
    // Of a line too long to hold, its start: enough to tell a unit directive.
    const text = 'overlong' in read ? read.head : read.text;
    // A byte-order mark (editors on Windows write one) is not part of the first id.
    const line = lineNo === 1 && text.startsWith('\uFEFF') ? text.slice(1) : text;
    let parsed;
    try {
      // Not quoted: its bytes may be a URL's credentials.
      if ('overlong' in read) throw new Error(`the line is longer than ${MAX_TASK_LINE_BYTES} bytes (${read.overlong} bytes)`);
      if (!read.utf8) throw new Error('the line is not UTF-8 text');
      parsed = parseTaskLine(line);
      const reserved = parsed?.kind === 'unit' ? reservedUnitProblem(parsed.unit) : null;
      if (reserved) throw new Error(`the unit directive names ${reserved}`);
    } catch (e) {
      parsed = null;
      malformed++;
      // A unit directive that cannot be read leaves the tasks after it without their unit;
      // any other line starting with TAB (a task whose id is empty, a directive this version
      // does not know) is one bad line, as a standalone user's script would expect.
      const directive = /^\tunit(\t|$)/.test(line);
      if (directive) unitless = true;
      process.stderr.write(`${args.tasks}:${lineNo}: ${(e as Error).message}; ${directive ? 'the tasks up to the next unit directive are skipped' : 'line skipped'}\n`);
    }
    if (!parsed) continue;
    if (parsed.kind === 'unit') {
      unitCtx = { ...ctx, unit: parsed.unit };
      unitless = false;
      continue;
    }
    if (unitless) {
      malformed++;
      continue;
    }
    const task = parsed.task;
    const problem = idProblem(task.id);
    if (problem) {
      malformed++;
      process.stderr.write(`${args.tasks}:${lineNo}: ${problem}; line skipped\n`);
      continue;
    }
    await held.acquire();
    // Interrupted: no task starts any more, and the handler exits once its events are out.
    if (interrupt?.stopped) await new Promise(() => {});
    const taskCtx = unitCtx;
    served.add(taskCtx.unit);
    lanes.run(laneOf(task.url), () => runTask(task, taskCtx).finally(() => held.release()));
  }
  await held.idle();
  clearInterval(ticker);
  // What killed writers left under the units served; no writer of ours is active now. Every
  // task has its terminal event: a cleanup that fails is said, and changes no exit code
  // (the next run's cleanup tries again). An orchestrator cleans each unit as it completes.
  if (!process.send) {
    const streamed = ctx.streamedKeys ?? new Set<string>();
    for (const note of await cleanupUnits(store, served.size > 0 ? served : [ctx.unit], (key) => streamed.has(key))) process.stderr.write(`ferry worker: ${note}\n`);
  }
  await Promise.all([sources.close(), store.close(), ctx.download.client.close()]);
  emitter.progress();
  await emitter.drained();
  return malformed > 0 ? 1 : 0;
}

/** Cleans up each unit's prefix in turn (undefined: the unit-less root) for the keys `owns`, with the notes of those that could not be. */
async function cleanupUnits(store: StorageAdapter, units: Iterable<string | undefined>, owns: (key: string) => boolean): Promise<string[]> {
  const notes: string[] = [];
  for (const unit of units) {
    const note = await store.cleanup(unit ? unitPrefix(unit) + '/' : '', owns).catch((e: unknown) => {
      if (e instanceof StorageError) return `${e.message}; left for a later run`;
      throw e;
    });
    if (note) notes.push(note);
  }
  return notes;
}

/**
 * SIGINT/SIGTERM, the first of them: the events so far written, and no later one; one line
 * on stderr; exit 130/143 once they have all left the process (process.exit() would drop
 * what a lagging reader has not taken yet, a line cut in two included); a second one kills
 * at once. `stopped` tells the task reader to start no more tasks.
 */
function exitOnInterrupt(emitter: Emitter, unfinished: () => number): { stopped: boolean } {
  const state = { stopped: false };
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      if (state.stopped) process.exit(code);
      state.stopped = true;
      emitter.stop();
      process.stderr.write(
        `ferry worker: ${signal}: stopped with ${unfinished()} task(s) read but not ended (no terminal event). ` +
          'Run the same tasks again to finish them: objects already written end as UP_OK with existed=1, and that run removes what this one left half-written\n',
      );
      void emitter.drained().then(() => process.exit(code));
    });
  }
  return state;
}

/** A place the worker needs that cannot be used (exit 1, as compile's). */
class PlaceError extends Error {}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError || e instanceof FlagError || e instanceof UriError) {
      process.stderr.write(`ferry worker: ${(e as Error).message}\n`);
      process.exit(2);
    }
    if (e instanceof PlaceError) {
      process.stderr.write(`ferry worker: ${e.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`ferry worker: internal error (a bug, please report it):\n${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(70);
  },
);
