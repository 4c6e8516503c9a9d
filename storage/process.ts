/**
 * Whether a process on this host is still there, as files that name their writer need to
 * know (temporary files, staging folders): a killed process may linger as a zombie until it
 * is reaped (its orphans wait for init), and its pid may be taken by another process.
 */
import { readFileSync } from 'node:fs';

/**
 * A process's state and start time (clock ticks since boot) from /proc/<pid>/stat (fields
 * 3 and 22), or null where it has none (no such process, or no /proc).
 */
function procStat(pid: number): { state: string; start: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', start: fields[19] ?? '' };
  } catch {
    return null;
  }
}

/** When process `pid` started (clock ticks since boot), or null where /proc does not say. */
export function startTicks(pid: number): string | null {
  return procStat(pid)?.start ?? null;
}

/**
 * Whether process `pid` is gone: no such process, a zombie, or — when `start` (its start time,
 * as startTicks gave it) is known — another process that took its pid.
 */
export function processGone(pid: number, start?: string): boolean {
  const proc = procStat(pid);
  if (proc) return proc.state === 'Z' || proc.state === 'X' || (start !== undefined && start !== proc.start);
  try {
    process.kill(pid, 0);
    return false; // running, where /proc does not tell more
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
