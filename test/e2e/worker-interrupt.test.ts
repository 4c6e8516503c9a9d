/**
 * A standalone worker stopped by SIGINT or SIGTERM, as a user's script or Ctrl-C stops it:
 * it writes the events of what has ended, says in one line how to resume, and exits
 * 130/143 (DESIGN.md, "Exit codes and errors") instead of vanishing without a word.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FERRY, ROOT } from '../helpers/run.js';
import { scratchAndOrigin } from '../helpers/scratch.js';

const scratch = scratchAndOrigin('ferry-interrupt-');

describe('a standalone worker interrupted', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('by %s writes its events so far, says how to resume, and exits %i', async (signal, code) => {
    const dest = path.join(scratch.dir, signal);
    const child = spawn(process.execPath, [FERRY, 'worker', '--tasks', '-', '--dest', dest, '--allow-private-network', '--min-dim', '1', '--timeout', '600000'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const ended = once(child, 'close');
    // One task that ends, one that stays in flight (headers, then nothing); stdin stays open.
    child.stdin.write(`done\t${scratch.origin.url}/ok/int-${signal}\nstuck\t${scratch.origin.url}/stall/int-${signal}\n`);
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
  it('writes the events of every task ended before the signal even when their reader lags, and starts no task after it', async () => {
    // Tasks that end at once (a scheme not fetched over HTTP), then input that stays open.
    const count = 3000;
    const tasks = Array.from({ length: count }, (_, i) => `t${i}\tftp://h.invalid/${i}\n`).join('');
    const worker = [process.execPath, FERRY, 'worker', '--tasks', '-', '--dest', path.join(scratch.dir, 'lag')].map((a) => `'${a}'`).join(' ');
    // Its events read from two seconds after it began; its exit code after the last of them.
    const child = spawn('sh', ['-c', `{ ${worker} 2>&1; echo "exit $?"; } | { sleep 2; cat; }`], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit']});
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stdin.write(tasks);
    await new Promise((r) => setTimeout(r, 1000));
    // The worker is the shell's grandchild: signal it alone, by its command line.
    const pids = (await fs.readdir('/proc')).filter((p) => /^\d+$/.test(p));
    for (const pid of pids) {
      const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmd.startsWith(`${process.execPath}\0${FERRY}\0`) && cmd.includes(path.join(scratch.dir, 'lag'))) process.kill(Number(pid), 'SIGINT');
    }
    child.stdin.write(`late\tftp://h.invalid/late\n`);
    await once(child, 'close');
    child.stdin.destroy();
    expect(out.slice(-400)).toMatch(/\nexit 130\n$/);
    expect(out).toContain('ferry worker: SIGINT: stopped with 0 task(s) read but not ended');
    expect(out.split('\n').filter((l) => l.startsWith('DL_ERR\t')).length).toBe(count);
  });
});
