/**
 * SIGINT/SIGTERM: the first stops the workers and lets journals flush (the command then
 * says how to resume); a second leaves at once, and says so too, since nothing else will.
 */
import { EXIT } from './errors.js';

type Signals = { on(signal: NodeJS.Signals, listener: () => void): unknown };

export type Interrupt = { signal: AbortSignal; code: () => number | null };

export function interruptible(
  signals: Signals = process,
  write: (text: string) => void = (t) => process.stderr.write(t),
  exit: (code: number) => void = (c) => process.exit(c),
): Interrupt {
  const ctl = new AbortController();
  let code: number | null = null;
  const on = (sig: NodeJS.Signals, exitCode: number) =>
    signals.on(sig, () => {
      if (code !== null) {
        // Events of the last ~50 ms may not be journaled: their tasks are simply sent again.
        write(`\nferry: ${sig} again — quitting at once; completed work is kept. Run the same command again to resume.\n`);
        exit(exitCode);
        return;
      }
      code = exitCode;
      write(`\nferry: ${sig} — stopping workers and flushing journals (again to quit at once)\n`);
      ctl.abort();
    });
  on('SIGINT', EXIT.SIGINT);
  on('SIGTERM', EXIT.SIGTERM);
  return { signal: ctl.signal, code: () => code };
}
