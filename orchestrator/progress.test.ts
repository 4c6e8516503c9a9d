import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Progress } from '../protocol/index.js';
import { Board } from './progress.js';

describe('the progress board', () => {
  it("shows the rate so far before a whole second of it, and no concurrency until the worker's first PROGRESS", async () => {
    const lines: string[] = [];
    const board = new Board('plain', (t) => lines.push(t), 60_000);
    board.start('u', 10);
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 4; i++) board.event('u', { kind: 'UP_OK', id: `i${i}`, uri: 'file:///x', ext: 'png', bytes: 10, sha256: '', width: 1, height: 1, existed: false });
    board.render();
    expect(lines.at(-1)).toMatch(/^u {2}4\/10 \(40\.0%\) {2}\d+(\.\d)? obj\/s .* conc – /);
    expect(lines.at(-1)).not.toMatch(/ 0\.0 obj\/s/);
    board.progress('u', { Conc: 16 } as Progress);
    board.render();
    expect(lines.at(-1)).toContain('conc 16');
    board.stop();
  });

  it('shows the concurrency of every worker serving a unit, summed, until one falls silent', () => {
    vi.useFakeTimers();
    try {
      const lines: string[] = [];
      const board = new Board('plain', (t) => lines.push(t), 60_000);
      board.start('u', 10);
      board.progress('u', { Conc: 16 } as Progress, 1);
      board.progress('u', { Conc: 12 } as Progress, 2);
      board.progress('u', { Conc: 14 } as Progress, 1);
      board.render();
      expect(lines.at(-1)).toContain('conc 26');
      vi.advanceTimersByTime(2000);
      board.progress('u', { Conc: 15 } as Progress, 1);
      vi.advanceTimersByTime(2000); // worker 2 said nothing for 4 s: it serves the unit no more
      board.render();
      expect(lines.at(-1)).toContain('conc 15');
      vi.advanceTimersByTime(10_000); // the last one still known stays shown
      board.render();
      expect(lines.at(-1)).toContain('conc 15');
      board.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('prints log lines (a worker that died, its warnings) under --progress none too, and no progress', () => {
    const lines: string[] = [];
    const board = new Board('none', (t) => lines.push(t), 60_000);
    board.skip('s');
    board.start('u', 10);
    board.render();
    board.log('u: worker exited with SIGKILL holding 14 task(s)');
    board.done('u', { rows: 10, migrated: 10, failed: 0, bad: 0, byReason: {}, byClass: {}, byStage: {} });
    board.stop();
    expect(lines).toEqual(['u: worker exited with SIGKILL holding 14 task(s)\n']);
  });

  it("keeps a signal's notice on a terminal through the redraws after it and the final clear", () => {
    const screen = terminal();
    const board = new Board('tty', screen.write, 60_000);
    board.start('u', 10);
    board.render();
    screen.write('^C'); // the terminal's echo, where the cursor was
    board.notice('ferry: SIGINT — stopping workers and flushing journals (again to quit at once)');
    board.render();
    board.render();
    board.stop();
    expect(screen.lines()).toEqual(['', 'ferry: SIGINT — stopping workers and flushing journals (again to quit at once)']);
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('measures a unit from its first event, not from when it queued behind another', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(0);
    const lines: string[] = [];
    const board = new Board('plain', (t) => lines.push(t), 60_000);
    const up = (i: number) => board.event('b', { kind: 'UP_OK', id: `i${i}`, uri: 'file:///x', ext: 'png', bytes: 10, sha256: '', width: 1, height: 1, existed: false });
    board.start('b', 400);
    board.render();
    expect(lines.at(-1)).toMatch(/ETA --\n$/);
    vi.setSystemTime(10_000); // its worker was busy with another unit's last tasks
    for (let i = 0; i < 20; i++) up(i);
    vi.setSystemTime(11_000);
    for (let i = 20; i < 40; i++) up(i);
    board.render();
    // 40 in the 1 s since its first event, 360 to go: 9 s, not the 99 s of 40 in 11 s.
    expect(lines.at(-1)).toMatch(/^b {2}40\/400 \(10\.0%\) {2}40\.0 obj\/s .* ETA 9s\n$/);
    board.stop();
  });

  it("counts a resumed unit's journaled tasks done, out of all its tasks, and only this run's in its rate and ETA", () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(0);
    const lines: string[] = [];
    const board = new Board('plain', (t) => lines.push(t), 60_000);
    // 3000 tasks, of which an interrupted run finished 655 (2 of them failures).
    board.start('r', 3000, { done: 655, failed: 2 });
    board.render();
    expect(lines.at(-1)).toMatch(/^r {2}655\/3000 \(21\.8%\) .* failed 2 .* ETA --\n$/);
    vi.setSystemTime(1000);
    for (let i = 0; i < 20; i++) board.event('r', { kind: 'UP_OK', id: `i${i}`, uri: 'file:///x', ext: 'png', bytes: 10, sha256: '', width: 1, height: 1, existed: false });
    vi.setSystemTime(2000);
    for (let i = 20; i < 40; i++) board.event('r', { kind: 'UP_OK', id: `i${i}`, uri: 'file:///x', ext: 'png', bytes: 10, sha256: '', width: 1, height: 1, existed: false });
    board.event('r', { kind: 'DL_ERR', id: 'x', reason: 'NOT_FOUND', attempts: 1, detail: 'HTTP 404' });
    board.render();
    // 41 in the 1 s since this run's first event: 2304 to go at 41/s is 57 s.
    expect(lines.at(-1)).toMatch(/^r {2}696\/3000 \(23\.2%\) {2}41\.0 obj\/s .* failed 3 .* ETA 57s\n$/);
    board.stop();
  });
});

/** The little of a terminal the board uses: text, CR, LF, cursor up (CSI n A) and erase below (CSI J). */
function terminal() {
  const rows: string[] = [''];
  let row = 0;
  let col = 0;
  const write = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      const m = text.startsWith('\x1b[', i) ? /^(\d*)([AJ])/.exec(text.slice(i + 2)) : null;
      if (m) {
        if (m[2] === 'A') row = Math.max(0, row - Number(m[1] || 1));
        else {
          rows[row] = rows[row]!.slice(0, col);
          rows.length = row + 1;
        }
        i += m[0].length + 1;
      } else if (text[i] === '\r') col = 0;
      else if (text[i] === '\n') {
        row++;
        col = 0;
        rows[row] ??= '';
      } else {
        const line = rows[row]!.padEnd(col);
        rows[row] = line.slice(0, col) + text[i] + line.slice(col + 1);
        col++;
      }
    }
  };
  return { write, lines: () => rows.slice(0, rows.length - (rows.at(-1) === '' ? 1 : 0)) };
}
