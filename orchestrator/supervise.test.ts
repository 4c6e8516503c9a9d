// The worker pool against real `ferry worker` processes (the build, bin/ferry.js) and a
// real origin process: one process serves unit after unit, and a dead one is replaced.
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Event, type Task } from '../protocol/index.js';
import { type Origin, startOrigin } from '../test/helpers/run.js';
import { WorkerPool, superviseTasks } from './supervise.js';

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

async function runUnit(pool: WorkerPool, dest: string, unit: string, tasks: Task[]): Promise<Event[]> {
  const events: Event[] = [];
  const logs: string[] = [];
  await superviseTasks(tasks, launch(dest, unit), { onEvent: (e) => events.push(e), onProgress: () => {}, onLog: (l) => logs.push(l) }, new AbortController().signal, pool);
  expect(logs).toEqual([]);
  return events.filter((e) => e.kind !== 'DL_OK');
}

const tasksOf = (prefix: string, n: number): Task[] => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, url: `${origin.url}/file/${prefix}${i}/a.png` }));

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

  it('replaces a process that died between units', async () => {
    const dest = path.join(dir, 'dest-replace');
    const pool = new WorkerPool();
    try {
      await runUnit(pool, dest, 'a', tasksOf('a', 3));
      const worker = pool.take(launch(dest, 'a').args);
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
