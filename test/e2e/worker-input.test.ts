/**
 * A standalone worker fed by a user's script, at scale and under abuse: a line that never
 * ends (a binary file given by mistake), and what comes after it.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_TASK_LINE_BYTES } from '../../protocol/index.js';
import { FERRY, ROOT } from '../helpers/run.js';
import { scratchAndOrigin } from '../helpers/scratch.js';

const scratch = scratchAndOrigin('ferry-input-');

/** The peak resident memory of process `pid` so far, in MB. */
async function peakMb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
}

describe('a standalone worker reading its tasks', () => {
  it('skips a line of hundreds of MB without holding it, names its line number, and runs the tasks around it', async () => {
    const child = spawn(process.execPath, [FERRY, 'worker', '--tasks', '-', '--dest', path.join(scratch.dir, 'long'), '--allow-private-network', '--min-dim', '1'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const ended = once(child, 'close');
    const write = async (data: string | Buffer) => {
      if (!child.stdin.write(data)) await once(child.stdin, 'drain');
    };
    await write(`before\t${scratch.origin.url}/ok/input-before\n\n`);
    // 320 MB of 'a' with no newline, through a pipe: a line's bytes, never a task.
    const mb = Buffer.alloc(1 << 20, 'a');
    let peak = 0;
    for (let i = 0; i < 320; i++) {
      await write(mb);
      if (i % 16 === 15) peak = Math.max(peak, await peakMb(child.pid!));
      expect(peak, `peak RSS after ${i + 1} MB of one line`).toBeLessThan(250);
    }
    await write(`\tafter\t${scratch.origin.url}/ok/x\nafter\t${scratch.origin.url}/ok/input-after`);
    child.stdin.end();
    const [code] = (await ended) as [number | null];
    expect(code, stderr).toBe(1);
    expect(stderr).toContain(`-:3: the line is longer than ${MAX_TASK_LINE_BYTES} bytes (${320 * (1 << 20) + 12 + scratch.origin.url.length} bytes); line skipped`);
    expect(stderr).not.toMatch(/aaaa|internal error/);
    const terminal = stdout.split('\n').filter((l) => /^(UP_OK|UP_ERR|DL_ERR|BAD_IMAGE)\t/.test(l));
    expect(terminal.map((l) => l.split('\t').slice(0, 2).join(' ')).sort()).toEqual(['UP_OK after', 'UP_OK before']);
  }, 120_000);

  it('stops reading tasks while nobody reads its events, so a slow reader costs no memory, and writes them all once read', async () => {
    // Tasks that end at once, no request sent: a scheme not fetched over HTTP.
    const count = 400_000;
    const file = path.join(scratch.dir, 'many.tsv');
    await fs.writeFile(file, Array.from({ length: count }, (_, i) => `t${i}\tftp://h.invalid/${i}\n`).join(''));
    const child = spawn(process.execPath, [FERRY, 'worker', '--tasks', file, '--dest', path.join(scratch.dir, 'many'), '--progress-interval', '200'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const ended = once(child, 'close');
    // Its events unread until it has ended every task or ended none for a second.
    const ends = () => Number(/DlErr=(\d+)[^\n]*\n$/.exec(stderr)?.[1] ?? 0);
    let peak = 0;
    for (let last = -1, still = 0; still < 5 && ends() < count; ) {
      await new Promise((r) => setTimeout(r, 200));
      peak = Math.max(peak, await peakMb(child.pid!));
      expect(peak, `peak RSS with ${ends()} tasks ended, their events unread`).toBeLessThan(180);
      still = ends() === last ? still + 1 : 0;
      last = ends();
    }
    let lines = 0;
    child.stdout.on('data', (d: Buffer) => {
      for (let at = d.indexOf(10); at >= 0; at = d.indexOf(10, at + 1)) lines++;
    });
    const [code] = (await ended) as [number | null];
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(lines).toBe(count);
  }, 120_000);

  it('writes every line it has for stderr before it exits, however late they are read', async () => {
    // A comma-separated file given as tasks: one message a line, more than a pipe holds.
    const count = 3000;
    const file = path.join(scratch.dir, 'rows.csv');
    await fs.writeFile(file, Array.from({ length: count }, (_, i) => `r${i},http://h.invalid/${i}\n`).join(''));
    // Read from a second after it began, as a log shipper that starts late would; its exit code after the last line.
    const worker = [process.execPath, FERRY, 'worker', '--tasks', file, '--dest', path.join(scratch.dir, 'csv')].map((a) => `'${a}'`).join(' ');
    const child = spawn('sh', ['-c', `{ ${worker} 2>&1 >/dev/null; echo "exit $?"; } | { sleep 1; cat; }`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stderr += d));
    await once(child, 'close');
    expect(stderr).toMatch(/\nexit 1\n$/);
    const lines = stderr.split('\n');
    expect(lines.filter((l) => l.endsWith('task line needs "id<TAB>url"; line skipped')).length).toBe(count);
    expect(lines.at(-3)).toMatch(/^PROGRESS v=1 .*DlOk=0 DlErr=0 /);
  });

  it('stops reading tasks while nobody reads its stderr, so the messages of a file of bad lines cost no memory', async () => {
    const count = 600_000;
    const file = path.join(scratch.dir, 'many.csv');
    await fs.writeFile(file, Array.from({ length: count }, (_, i) => `r${i},http://h.invalid/${i}\n`).join(''));
    const child = spawn(process.execPath, [FERRY, 'worker', '--tasks', file, '--dest', path.join(scratch.dir, 'many-csv')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const closed = once(child, 'close');
    // Its stderr unread until it has read nothing for a second (the whole file, or what it may).
    const read = async () => Number(/^rchar: (\d+)/m.exec(await fs.readFile(`/proc/${child.pid}/io`, 'utf8'))?.[1]);
    let peak = 0;
    for (let last = -1, still = 0; still < 5; ) {
      await new Promise((r) => setTimeout(r, 200));
      peak = Math.max(peak, await peakMb(child.pid!));
      expect(peak, 'peak RSS, its stderr unread').toBeLessThan(180);
      const now = await read();
      still = now === last ? still + 1 : 0;
      last = now;
    }
    let lines = 0;
    child.stderr.on('data', (d: Buffer) => {
      for (let at = d.indexOf(10); at >= 0; at = d.indexOf(10, at + 1)) lines++;
    });
    const [code] = (await closed) as [number | null];
    expect(code).toBe(1);
    expect(lines).toBeGreaterThanOrEqual(count);
  }, 120_000);
});
