/**
 * Two containers that share a host name and a folder (a bind mount) but not a PID namespace:
 * neither may take the other's live writer for gone, the pid it names being no process, or
 * another one, in its own namespace. A real second namespace: `unshare -p -f --mount-proc`
 * (root only; skipped elsewhere).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tidyWorkDir } from '../../orchestrator/journal.js';
import { FERRY, type Origin, ROOT, ferry, startOrigin } from '../helpers/run.js';

const canUnshare = process.getuid?.() === 0 && spawnSync('unshare', ['-p', '-f', '--mount-proc', 'true']).status === 0;

let dir: string;
let origin: Origin;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-pidns-'));
  origin = await startOrigin();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await origin.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** Runs `argv` in a new PID namespace (its processes get pids from `firstPid` on: ones no process has here). */
function inOtherNamespace(argv: string[]): ChildProcess {
  let last = 20_000;
  while ([1, 2, 3].some((i) => existsSync(`/proc/${last + i}`))) last += 10;
  const script = `echo ${last} > /proc/sys/kernel/ns_last_pid && "$@"`;
  const child = spawn('unshare', ['-p', '-f', '--mount-proc', '--kill-child', 'sh', '-c', script, 'sh', ...argv], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

function output(child: ChildProcess): { text(): string } {
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  return { text: () => text };
}

describe.skipIf(!canUnshare)('a folder shared with another PID namespace', () => {
  it("a worker's cleanup keeps the temporary file another namespace's worker is writing", async () => {
    const dest = path.join(dir, 'dest');
    // 40 KB over ~4 s, streamed to its temporary file (--profile any, past --multipart-threshold).
    const url = `${origin.url}/steady/pidns?chunks=40&size=1000&every=100&length=1`;
    const writer = inOtherNamespace([process.execPath, FERRY, 'worker', '--tasks', '-', '--dest', dest, '--unit', 'u', '--profile', 'any', '--multipart-threshold', '1KiB', '--allow-private-network']);
    const said = output(writer);
    writer.stdin!.end(`big\t${url}\n`);
    const tmp = path.join(dest, '.ferry-tmp', 'u');
    await vi.waitFor(async () => expect(await fs.readdir(tmp)).toHaveLength(1), { timeout: 20_000, interval: 50 });
    const other = await ferry(['worker', '--tasks', '-', '--dest', dest, '--unit', 'u']); // ends at once, and cleans `u/`
    expect(other.code, other.stderr).toBe(0);
    expect(await fs.readdir(tmp)).toHaveLength(1);
    await new Promise((resolve) => writer.once('close', resolve));
    expect(said.text()).toMatch(/^UP_OK\tbig\t/m);
    expect((await fs.readFile(path.join(dest, 'u', '95', 'big.bin'))).length).toBe(40_000);
  }, 60_000);

  it("a command's work-dir tidy keeps the staging folder of another namespace's live command", async () => {
    const work = path.join(dir, 'work');
    const journal = new URL('../../dist/orchestrator/journal.js', import.meta.url).href;
    const script = `const { stagingDir } = await import(${JSON.stringify(journal)}); const fs = await import('node:fs');
      fs.mkdirSync(stagingDir(${JSON.stringify(work)}), { recursive: true }); console.log('staged'); process.stdin.resume();`;
    const stager = inOtherNamespace([process.execPath, '--input-type=module', '-e', script]);
    const said = output(stager);
    await vi.waitFor(() => expect(said.text()).toContain('staged'), { timeout: 20_000, interval: 50 });
    const [theirs] = await fs.readdir(path.join(work, 'staging'));
    await tidyWorkDir(work);
    expect(await fs.readdir(path.join(work, 'staging'))).toEqual([theirs]);
    stager.stdin!.end();
  }, 60_000);
});
