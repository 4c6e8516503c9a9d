import { describe, expect, it } from 'vitest';
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
});
