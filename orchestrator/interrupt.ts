/**
 * SIGINT/SIGTERM: the first stops the workers and lets journals flush (the command then
 * says how to resume); a second leaves at once, and says so too, since nothing else will.
 * `say` prints one line: a command with a progress board gives its `log`, so the board's
 * redraws never erase the line.
 */
import { EXIT } from './errors.js';

type Signals = { on(signal: NodeJS.Signals, listener: () => void): unknown };

export type Interrupt = { signal: AbortSignal; code: () => number | null };

export function interruptible(
  signals: Signals = process,
  say: (line: string) => void = (line) => process.stderr.write(`\n${line}\n`),
  exit: (code: number) => void = (c) => process.exit(c),
): Interrupt {
  const ctl = new AbortController();
  let code: number | null = null;
  const on = (sig: NodeJS.Signals, exitCode: number) =>
    signals.on(sig, () => {
      if (code !== null) {
        // Events of the last ~50 ms may not be journaled: their tasks are simply sent again.
        say(`ferry: ${sig} again — quitting at once; completed work is kept. Run the same command again to resume.`);
        exit(exitCode);
        return;
      }
      code = exitCode;
      say(`ferry: ${sig} — stopping workers and flushing journals (again to quit at once)`);
      ctl.abort();
    });
  on('SIGINT', EXIT.SIGINT);
  on('SIGTERM', EXIT.SIGTERM);
  return { signal: ctl.signal, code: () => code };
}
