import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { interruptible } from './interrupt.js';

describe('interruptible', () => {
  it('stops on a first signal and quits on a second, saying how to resume both times', () => {
    const signals = new EventEmitter();
    const said: string[] = [];
    const exits: number[] = [];
    const stop = interruptible(signals, (t) => said.push(t), (c) => exits.push(c));
    signals.emit('SIGINT');
    expect(stop.signal.aborted).toBe(true);
    expect(stop.code()).toBe(130);
    expect(exits).toEqual([]);
    expect(said.at(-1)).toContain('SIGINT — stopping workers and flushing journals');
    // The second used to exit without a word: the resume line is printed by the first's
    // path only, which process.exit never reaches.
    signals.emit('SIGTERM');
    expect(exits).toEqual([143]);
    expect(said.at(-1)).toContain('SIGTERM again — quitting at once; completed work is kept. Run the same command again to resume.');
  });
});
