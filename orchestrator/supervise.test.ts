// The worker pool against real `ferry worker` processes (the build, bin/ferry.js) and a
// real origin process: one process serves unit after unit, and a dead one is replaced.
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Event, type Task, tasksAhead } from '../protocol/index.js';
import { type Origin, startOrigin } from '../test/helpers/run.js';
import { TaskQueue, WorkerPool, superviseTasks } from './supervise.js';

let dir: string;
let origin: Origin;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-supervise-'));
  await fs.mkdir(path.join(dir, 'origin'));
  const img = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 9, g: 8, b: 7 } } }).png().toBuffer();
  await fs.writeFile(path.join(dir, 'origin', 'a.png'), img);
  origin = await startOrigin(path.join(dir, 'origin'));
});

afterAll(async () => {
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

function launch(dest: string, unit: string) {
  return { args: ['--dest', dest, '--run-id', 'r1', '--concurrency', '4', '--allow-private-network'], concurrency: 4, unit };
}

async function runUnit(pool: WorkerPool, dest: string, unit: string, tasks: Task[], finished?: string[]): Promise<Event[]> {
  const events: Event[] = [];
  const logs: string[] = [];
  await superviseTasks(TaskQueue.of(tasks), launch(dest, unit), { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: (l) => logs.push(l) }, new AbortController().signal, pool);
  finished?.push(unit);
  expect(logs).toEqual([]);
  return events.filter((e) => e.kind !== 'DL_OK');
}

/** Each id's terminal events, with the unit folder its object landed in. */
function landed(events: Event[], dest: string): Record<string, string[]> {
  const by: Record<string, string[]> = {};
  for (const e of events) if (e.kind === 'UP_OK') (by[e.id] ??= []).push(path.relative(dest, new URL(e.uri).pathname).split('/')[0]!);
  return by;
}

const tasksOf = (prefix: string, n: number): Task[] => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, url: `${origin.url}/file/${prefix}${i}/a.png` }));

/**
 * Runs `f` with a pool whose workers die (SIGKILL) on connecting to `killer`, as a payload
 * that crashes a worker would (test/helpers/crash-on-connect.mjs, preloaded).
 */
async function withKiller(f: (killer: Origin, pool: WorkerPool) => Promise<void>, opts: { signal?: string; pool?: WorkerPool } = {}): Promise<void> {
  const killer = await startOrigin();
  const saved = { options: process.env.NODE_OPTIONS, port: process.env.FERRY_TEST_CRASH_PORT, signal: process.env.FERRY_TEST_CRASH_SIGNAL };
  process.env.NODE_OPTIONS = `${saved.options ?? ''} --import ${new URL('../test/helpers/crash-on-connect.mjs', import.meta.url).href}`.trim();
  process.env.FERRY_TEST_CRASH_PORT = new URL(killer.url).port;
  process.env.FERRY_TEST_CRASH_SIGNAL = opts.signal ?? 'SIGKILL';
  const pool = opts.pool ?? new WorkerPool();
  try {
    await f(killer, pool);
  } finally {
    for (const [name, value] of [['NODE_OPTIONS', saved.options], ['FERRY_TEST_CRASH_PORT', saved.port], ['FERRY_TEST_CRASH_SIGNAL', saved.signal]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await pool.close();
    await killer.close();
  }
}
const slowTask = (id: string, key: string, ms: number): Task => ({ id, url: `${origin.url}/file/${key}/a.png?delay=${ms}` });

describe('WorkerPool', () => {
  it('serves unit after unit with one process, each unit under its own prefix', async () => {
    const dest = path.join(dir, 'dest-reuse');
    const pool = new WorkerPool();
    try {
      for (const unit of ['u1', 'sub/u2', 'u3']) {
        const done = await runUnit(pool, dest, unit, tasksOf(unit.replace('/', '-'), 12));
        expect(done.map((e) => e.kind)).toEqual(Array(12).fill('UP_OK'));
        for (const e of done) expect(e.kind === 'UP_OK' && e.uri.startsWith(`file://${dest}/${unit}/`)).toBe(true);
      }
      expect(pool.started).toBe(1);
    } finally {
      await pool.close();
    }
    // Every object landed, under its unit; no temporary file is left once the pool is closed.
    const files = (await fs.readdir(dest, { recursive: true, withFileTypes: true })).filter((f) => f.isFile());
    expect(files).toHaveLength(36);
    expect(files.every((f) => !f.parentPath.includes('.ferry-tmp'))).toBe(true);
  }, 60_000);

  /** Units u1 and u2 started together on a pool of one process: their events, the order they ended in, the processes started. */
  async function twoUnits(dest: string, first: Task[], second: Task[]) {
    const pool = new WorkerPool(1);
    const finished: string[] = [];
    try {
      const [a, b] = await Promise.all([runUnit(pool, dest, 'u1', first, finished), runUnit(pool, dest, 'u2', second, finished)]);
      return { a, b, finished, started: pool.started };
    } finally {
      await pool.close();
    }
  }

  it("hands its worker to the next unit while the last unit's tail is in flight", async () => {
    const dest = path.join(dir, 'dest-overlap');
    const { a, b, finished, started } = await twoUnits(dest, [slowTask('slow', 'overlap-slow', 1500), ...tasksOf('o1-', 3)], tasksOf('o2-', 6));
    // The second unit ran and ended while the first one's slow task still held it open.
    expect(finished).toEqual(['u2', 'u1']);
    expect(started).toBe(1);
    expect(Object.values(landed(a, dest)).flat()).toEqual(Array(4).fill('u1'));
    expect(Object.values(landed(b, dest)).flat()).toEqual(Array(6).fill('u2'));
  }, 60_000);

  it("starts another process, while the bound allows, rather than pile a unit onto one still finishing a tail", async () => {
    // Each process has a share of --concurrency: small units all sent to the first one,
    // while the bound allowed more processes, ran on that one share alone.
    const dest = path.join(dir, 'dest-spread');
    const pool = new WorkerPool(2);
    const finished: string[] = [];
    try {
      const first = runUnit(pool, dest, 'u1', [slowTask('slow', 'spread-slow', 1500)], finished);
      await new Promise((r) => setTimeout(r, 100)); // u1's one task is sent: its worker is back in the pool
      const second = await runUnit(pool, dest, 'u2', tasksOf('p2-', 3), finished);
      expect(pool.started).toBe(2);
      expect(Object.values(landed(second, dest)).flat()).toEqual(Array(3).fill('u2'));
      expect(Object.values(landed(await first, dest)).flat()).toEqual(['u1']);
      expect(finished).toEqual(['u2', 'u1']);
      // With both processes back and nothing in flight, a third unit reuses one of them.
      await runUnit(pool, dest, 'u3', tasksOf('p3-', 2));
      expect(pool.started).toBe(2);
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('never lets one worker hold an id twice: the second unit waits for the first to settle it', async () => {
    const dest = path.join(dir, 'dest-same-ids');
    const { a, b, finished, started } = await twoUnits(
      dest,
      [slowTask('x', 'same-slow', 800), ...tasksOf('s1-', 2)],
      [{ id: 'x', url: `${origin.url}/file/same-fast/a.png` }, ...tasksOf('s2-', 2)],
    );
    // Each unit's "x" was settled once, by its own unit's task, into its own folder.
    expect(landed(a, dest)['x']).toEqual(['u1']);
    expect(landed(b, dest)['x']).toEqual(['u2']);
    expect(a.filter((e) => e.id === 'x')).toHaveLength(1);
    expect(b.filter((e) => e.id === 'x')).toHaveLength(1);
    expect(finished).toEqual(['u1', 'u2']);
    expect(started).toBe(1);
  }, 60_000);

  it('keeps at most its size of processes: a take waits for a give, other flags replace an idle one, a prewarm never overfills', async () => {
    const pool = new WorkerPool(1);
    const argsA = launch(path.join(dir, 'dest-bound-a'), 'u').args;
    const argsB = launch(path.join(dir, 'dest-bound-b'), 'u').args;
    try {
      pool.prewarm(argsA);
      pool.prewarm(argsA); // one is idle already: no second process
      const w = (await pool.take(argsA))!;
      expect(pool.started).toBe(1);
      pool.prewarm(argsB); // the pool is full: nothing started
      expect(pool.started).toBe(1);
      let second: unknown = 'pending';
      const waiting = pool.take(argsA).then((x) => (second = x));
      await new Promise((r) => setTimeout(r, 100));
      expect(second).toBe('pending');
      pool.give(argsA, w);
      expect(await waiting).toBe(w);
      pool.give(argsA, w);
      const other = (await pool.take(argsB))!;
      expect(other).not.toBe(w);
      expect(w.alive).toBe(false); // ended to make room
      expect(pool.started).toBe(2);
      const aborted = new AbortController();
      const never = pool.take(argsA, aborted.signal);
      aborted.abort();
      expect(await never).toBeNull();
    } finally {
      await pool.close();
    }
  }, 60_000);

  it("sends a worker enough tasks to read past a throttled host's: the healthy host's all end first", async () => {
    // Interleaved with tasks of a host that answers only 429 (Retry-After), which park at
    // that host: a window of twice the concurrency (16 here) filled up with them, and the
    // healthy host's tasks behind waited for their tries to run out.
    const throttled = await startOrigin();
    const pool = new WorkerPool();
    try {
      const tasks: Task[] = [];
      for (let i = 0; i < 20; i++) {
        tasks.push({ id: `slow-${i}`, url: `${throttled.url}/throttle/w${i}?after=3` });
        tasks.push({ id: `fast-${i}`, url: `${origin.url}/file/window-${i}/a.png` });
      }
      const dest = path.join(dir, 'dest-window');
      const run = { ...launch(dest, 'u'), args: [...launch(dest, 'u').args, '--retries', '1'] };
      const events: Event[] = [];
      await superviseTasks(TaskQueue.of(tasks), run, { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: () => {} }, new AbortController().signal, pool);
      const terminal = events.filter((e) => e.kind !== 'DL_OK');
      expect(terminal.filter((e) => e.id.startsWith('fast-')).map((e) => e.kind)).toEqual(Array(20).fill('UP_OK'));
      expect(terminal.filter((e) => e.id.startsWith('slow-')).map((e) => e.kind === 'DL_ERR' && e.reason)).toEqual(Array(20).fill('THROTTLED'));
      const lastFast = terminal.findLastIndex((e) => e.id.startsWith('fast-'));
      const firstSlow = terminal.findIndex((e) => e.id.startsWith('slow-'));
      expect({ lastFast, firstSlow }).toEqual({ lastFast: 19, firstSlow: 20 });
    } finally {
      await pool.close();
      await throttled.close();
    }
  }, 60_000);

  it('replaces a process that died between units', async () => {
    const dest = path.join(dir, 'dest-replace');
    const pool = new WorkerPool();
    try {
      await runUnit(pool, dest, 'a', tasksOf('a', 3));
      const worker = (await pool.take(launch(dest, 'a').args))!;
      worker.kill();
      await worker.exited;
      pool.give(launch(dest, 'a').args, worker); // a dead one is not kept
      const done = await runUnit(pool, dest, 'b', tasksOf('b', 3));
      expect(done.map((e) => e.kind)).toEqual(['UP_OK', 'UP_OK', 'UP_OK']);
      expect(pool.started).toBe(2);
    } finally {
      await pool.close();
    }
  }, 60_000);
});

describe('superviseTasks', () => {
  it('pulls tasks from its queue as the window frees, never the whole unit ahead of the worker', async () => {
    const dest = path.join(dir, 'dest-pull');
    const all = tasksOf('p', 200);
    let pulled = 0;
    let aheadAtFirstEvent = -1;
    const queue = new TaskQueue(() => all[pulled++]);
    const pool = new WorkerPool();
    const events: Event[] = [];
    try {
      const hooks = {
        onEvent: (e: Event) => {
          if (aheadAtFirstEvent < 0) aheadAtFirstEvent = pulled;
          events.push(e);
        },
        onProgress: () => {},
        onLog: () => {},
      };
      await superviseTasks(queue, launch(dest, 'pull'), hooks, new AbortController().signal, pool);
    } finally {
      await pool.close();
    }
    // A window of tasksAhead(4) tasks, and one more looked at to know the queue is not empty.
    expect(aheadAtFirstEvent).toBeLessThanOrEqual(tasksAhead(4) + 1);
    expect(tasksAhead(4)).toBeLessThan(all.length / 2);
    expect(events.filter((e) => e.kind === 'UP_OK').map((e) => e.id).sort()).toEqual(all.map((t) => t.id).sort());
  }, 60_000);

  it('finds the tasks that kill their worker by halving what the dead worker held: only they are WORKER_CRASH, the others complete', async () => {
    // Two payloads that kill the worker process (SIGKILL, on connecting to `killer`), among
    // 60 good tasks: a window of tasksAhead(4) = 32 is in flight when the first one kills.
    await withKiller(async (killer, pool) => {
      const tasks = tasksOf('k', 60);
      tasks.splice(10, 0, { id: 'poison-1', url: `${killer.url}/file/p1/a.png` });
      tasks.splice(25, 0, { id: 'poison-2', url: `${killer.url}/file/p2/a.png` });
      const events: Event[] = [];
      const logs: string[] = [];
      await superviseTasks(TaskQueue.of(tasks), launch(path.join(dir, 'dest-kill'), 'k'), { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: (l) => logs.push(l) }, new AbortController().signal, pool);
      const terminal = events.filter((e) => e.kind !== 'DL_OK');
      expect(terminal.filter((e) => e.kind !== 'UP_OK').map((e) => `${e.id} ${e.kind === 'DL_ERR' ? e.reason : e.kind}`).sort()).toEqual(['poison-1 WORKER_CRASH', 'poison-2 WORKER_CRASH']);
      expect(terminal.filter((e) => e.kind === 'UP_OK').map((e) => e.id).sort()).toEqual(tasksOf('k', 60).map((t) => t.id).sort());
      // Each poison: the death that made it a suspect, at most log2(32) = 5 halvings, and its death alone.
      const deaths = logs.filter((l) => /worker \d+ exited with SIGKILL holding [1-9]/.test(l)).length;
      expect(deaths).toBeGreaterThanOrEqual(3);
      expect(deaths).toBeLessThanOrEqual(2 * (1 + Math.log2(tasksAhead(4)) + 1));
    });
  }, 60_000);

  it('runs a unit on every idle worker, and still finds each task that kills one: one outcome per task', async () => {
    await withKiller(
      async (killer, pool) => {
        const dest = path.join(dir, 'dest-lanes');
        const run = async (unit: string, tasks: Task[]) => {
          const events: Event[] = [];
          const workers = new Set<number>();
          const spec = launch(dest, unit);
          await superviseTasks(
            TaskQueue.of(tasks),
            { ...spec, args: [...spec.args, '--progress-interval', '100'] },
            { onEvent: (e) => events.push(e), onProgress: (_p, worker) => workers.add(worker), onLog: () => {} },
            new AbortController().signal,
            pool,
          );
          return { terminal: events.filter((e) => e.kind !== 'DL_OK'), workers };
        };
        const slow = (prefix: string) => tasksOf(prefix, 80).map((t, i) => (i % 3 === 0 ? slowTask(t.id, t.id, 100) : t));
        // Two workers given back idle (units run at once take one each): the next unit takes one, and the other helps it.
        await Promise.all([run('w1', tasksOf('w1-', 2)), run('w2', tasksOf('w2-', 2))]);
        // Nothing dies: both processes served the unit (the ones the first units gave back, 1 and 2).
        const calm = await run('c', slow('c'));
        expect(calm.terminal.filter((e) => e.kind === 'UP_OK')).toHaveLength(80);
        expect([...calm.workers].sort()).toEqual([1, 2]);
        await Promise.all([run('w3', tasksOf('w3-', 2)), run('w4', tasksOf('w4-', 2))]);
        const tasks = slow('m');
        tasks.splice(20, 0, { id: 'poison-a', url: `${killer.url}/file/pa/a.png` });
        tasks.splice(60, 0, { id: 'poison-b', url: `${killer.url}/file/pb/a.png` });
        const { terminal } = await run('m', tasks);
        expect(terminal.filter((e) => e.kind !== 'UP_OK').map((e) => `${e.id} ${e.kind === 'DL_ERR' ? e.reason : e.kind}`).sort()).toEqual(['poison-a WORKER_CRASH', 'poison-b WORKER_CRASH']);
        expect(terminal.map((e) => e.id).sort()).toEqual(tasks.map((t) => t.id).sort());
      },
      { pool: new WorkerPool(2) },
    );
  }, 90_000);

  it('re-runs suspects whose worker was already dead when they were to be sent: none is lost', async () => {
    // The worker taken for the suspects dies before they are sent (as one still finishing
    // another unit's tail does when that unit's poison kills it while the suspects wait for it to be quiet).
    class DyingPool extends WorkerPool {
      takes = 0;
      override async take(args: string[], signal?: AbortSignal) {
        const w = await super.take(args, signal);
        if (++this.takes === 2 && w) {
          w.kill();
          await w.exited;
        }
        return w;
      }
    }
    const pool = new DyingPool();
    await withKiller(async (killer) => {
      const tasks = tasksOf('d', 12);
      tasks.splice(3, 0, { id: 'poison', url: `${killer.url}/file/p/a.png` });
      const events: Event[] = [];
      await superviseTasks(TaskQueue.of(tasks), launch(path.join(dir, 'dest-dead-taken'), 'd'), { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: () => {} }, new AbortController().signal, pool);
      const terminal = events.filter((e) => e.kind !== 'DL_OK');
      expect(terminal.map((e) => (e.kind === 'UP_OK' ? e.id : `${e.id} ${e.kind === 'DL_ERR' ? e.reason : e.kind}`)).sort()).toEqual([...tasksOf('d', 12).map((t) => t.id), 'poison WORKER_CRASH'].sort());
    });
    await pool.close();
  }, 60_000);

  it('counts no death against a unit, and logs none, for workers that died before its session sent them anything', async () => {
    // As a worker that another unit's task killed while this unit's suspects waited for it
    // to be quiet: more such workers in a row than a unit's deaths may be, then a live one.
    const dead = 5 + Math.log2(tasksAhead(4)) + 2;
    class DeadPool extends WorkerPool {
      takes = 0;
      override async take(args: string[], signal?: AbortSignal) {
        const w = await super.take(args, signal);
        if (++this.takes <= dead && w) {
          w.kill();
          await w.exited;
        }
        return w;
      }
    }
    const poolLogs: string[] = [];
    const pool = new DeadPool(Infinity, (l) => poolLogs.push(l));
    try {
      const events: Event[] = [];
      const logs: string[] = [];
      await superviseTasks(TaskQueue.of(tasksOf('dd', 5)), launch(path.join(dir, 'dest-dead-taken-many'), 'dd'), { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: (l) => logs.push(l) }, new AbortController().signal, pool);
      expect(events.filter((e) => e.kind === 'UP_OK').map((e) => e.id).sort()).toEqual(tasksOf('dd', 5).map((t) => t.id));
      expect(pool.takes).toBe(dead + 1);
      expect(logs).toEqual([]);
      expect(poolLogs).toEqual([]); // ended by the test (as a run's stop ends them): no news
    } finally {
      await pool.close();
    }
  }, 60_000);

  it("logs a worker's own lines under its name, not under the unit it happens to serve", async () => {
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = `${saved ?? ''} --import=data:text/javascript,process.stderr.write('a%20library%20warning%5Cn')`.trim();
    const poolLogs: string[] = [];
    const pool = new WorkerPool(1, (l) => poolLogs.push(l));
    try {
      const dest = path.join(dir, 'dest-worker-logs');
      for (const unit of ['l1', 'l2']) expect(await runUnit(pool, dest, unit, tasksOf(unit, 2))).toHaveLength(2); // runUnit: no line for the units
      expect(poolLogs).toEqual(['worker 1: a library warning']);
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
      await pool.close();
    }
  }, 60_000);

  it('kills a worker that falls silent (stopped, or hung), so that its tasks run again: the one that hangs it is WORKER_CRASH', async () => {
    // A task whose connection stops its worker (SIGSTOP), among good ones: without a
    // watchdog the unit waited for that worker for ever.
    const poolLogs: string[] = [];
    const pool = new WorkerPool(Infinity, (l) => poolLogs.push(l), 1500);
    await withKiller(
      async (killer) => {
        const tasks = tasksOf('h', 3);
        tasks.splice(1, 0, { id: 'hang', url: `${killer.url}/file/hang/a.png` });
        const events: Event[] = [];
        const logs: string[] = [];
        const run = { ...launch(path.join(dir, 'dest-hang'), 'h'), args: [...launch('', 'h').args.slice(2), '--dest', path.join(dir, 'dest-hang'), '--progress-interval', '200'] };
        await superviseTasks(TaskQueue.of(tasks), run, { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: (l) => logs.push(l) }, new AbortController().signal, pool);
        const terminal = events.filter((e) => e.kind !== 'DL_OK');
        expect(terminal.map((e) => (e.kind === 'UP_OK' ? e.id : `${e.id} ${e.kind === 'DL_ERR' ? e.reason : e.kind}`)).sort()).toEqual([...tasksOf('h', 3).map((t) => t.id), 'hang WORKER_CRASH'].sort());
        expect(poolLogs.length).toBeGreaterThanOrEqual(2);
        expect(poolLogs.every((l) => /^worker \d+ printed nothing for \d+ s \(hung or stopped\): it is killed/.test(l))).toBe(true);
        expect(logs.every((l) => /^worker \d+ exited with SIGKILL holding [1-9]/.test(l))).toBe(true);
      },
      { signal: 'SIGSTOP', pool },
    );
  }, 60_000);

  it('kills a worker whose stdout closed while it lives on: its place in the pool is freed, its tasks run again', async () => {
    // The first worker started closes its stdout (fd 1) and lives on; a pool of one waited for its exit for ever.
    const marker = path.join(dir, 'stdout-closed-once');
    const hook = `import fs from 'node:fs'; if (process.argv.includes('worker')) { try { fs.closeSync(fs.openSync(${JSON.stringify(marker)}, 'wx')); fs.closeSync(1); } catch {} }`;
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = `${saved ?? ''} --import=data:text/javascript,${encodeURIComponent(hook)}`.trim();
    const poolLogs: string[] = [];
    const pool = new WorkerPool(1, (l) => poolLogs.push(l));
    try {
      const events: Event[] = [];
      await superviseTasks(TaskQueue.of(tasksOf('c', 3)), launch(path.join(dir, 'dest-closed-stdout'), 'c'), { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: () => {} }, new AbortController().signal, pool);
      expect(events.filter((e) => e.kind === 'UP_OK').map((e) => e.id).sort()).toEqual(tasksOf('c', 3).map((t) => t.id));
      expect(pool.started).toBe(2);
      expect(poolLogs).toEqual(['worker 1 closed its stdout but did not exit: it is killed, and what it held runs again']);
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
      await pool.close();
    }
  }, 60_000);

  it('fails the unit when every worker dies before finishing a task, after a bounded number of deaths', async () => {
    await withKiller(async (killer, pool) => {
      const tasks = Array.from({ length: 40 }, (_, i) => ({ id: `all-${i}`, url: `${killer.url}/file/all-${i}/a.png` }));
      const logs: string[] = [];
      const run = superviseTasks(TaskQueue.of(tasks), launch(path.join(dir, 'dest-all-kill'), 'all'), { onEvent: () => {}, onProgress: () => {}, onLog: (l) => logs.push(l) }, new AbortController().signal, pool);
      const limit = 5 + Math.log2(tasksAhead(4));
      await expect(run).rejects.toThrow(`the worker died ${limit} times in a row without finishing a task`);
      expect(logs.filter((l) => /worker \d+ exited with SIGKILL holding [1-9]/.test(l))).toHaveLength(limit);
    });
  }, 60_000);

  it('a queue gives tasks put back first, in their order, then the rest in order', () => {
    const t = (id: string): Task => ({ id, url: `http://h/${id}` });
    const queue = TaskQueue.of([t('a'), t('b'), t('c')]);
    expect(queue.take()?.id).toBe('a');
    expect(queue.take()?.id).toBe('b');
    queue.putBack([t('x'), t('y')]);
    expect(queue.empty).toBe(false);
    expect([queue.take(), queue.take(), queue.take()].map((x) => x?.id)).toEqual(['x', 'y', 'c']);
    expect(queue.empty).toBe(true);
    expect(queue.take()).toBeUndefined();
  });
});
