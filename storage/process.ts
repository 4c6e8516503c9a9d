/**
 * Whether a process is still there, as files that name their writer need to know (temporary
 * files, staging folders): a killed process may linger as a zombie until it is reaped (its
 * orphans wait for init), and its pid may be taken by another process. A pid means a process
 * only within one PID namespace of one boot of one host: two containers that share a host
 * name and a bind-mounted folder, but not a PID namespace, each see the other's pids as no
 * process, or as another one. So a writer is named with its process space too, and only the
 * writers of this process's own space are ever judged gone.
 */
import { hash, randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

function readOr(read: () => string, or: string): string {
  try {
    return read().trim();
  } catch {
    return or;
  }
}

/** Whether /proc shows this process's PID namespace (a container may see its host's, or none). */
const OWN_PROC = readOr(() => readlinkSync('/proc/self'), '') === String(process.pid);

/**
 * This process's space: its host name, boot and PID namespace (`pid:[inode]`), as 12 hex
 * characters. On Linux, a namespace /proc does not tell makes a space of this process alone
 * (it judges no other writer, and none judges it); without /proc at all (macOS), the host name
 * stands for it, as pids are then the host's.
 */
const SPACE = hash(
  'sha256',
  [
    hostname(),
    readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1'), ''),
    readOr(() => readlinkSync('/proc/self/ns/pid'), process.platform === 'linux' ? `unknown:${randomUUID()}` : ''),
  ].join('\0'),
  'hex',
).slice(0, 12);

/** What ferry before the process space named a writer with: a tag of the host name alone. */
const HOST_ONLY = hash('sha256', hostname(), 'hex').slice(0, 8);

/**
 * A process's state and start time (clock ticks since boot) from /proc/<pid>/stat (fields
 * 3 and 22), or null where it has none (no such process, or no /proc of this namespace).
 */
function procStat(pid: number): { state: string; start: string } | null {
  if (!OWN_PROC) return null;
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

/**
 * The name process `pid` of this space writes under: `<space>p<pid>s<start>` (no `s<start>`
 * where /proc does not say). Earlier versions wrote `<host>p<pid>s<start>` and, before,
 * `<host>p<pid>`, with an 8-character tag of the host name alone.
 */
export const writerTag = (pid: number, start = startTicks(pid)): string => `${SPACE}p${pid}${start === null ? '' : `s${start}`}`;

/** A writer tag of any version, for the patterns of the names that carry one. */
export const WRITER_TAG = '(?:[0-9a-f]{12}|[0-9a-f]{8})p\\d+(?:s\\d+)?';
const TAG = /^([0-9a-f]{12}|[0-9a-f]{8})p(\d+)(?:s(\d+))?$/;

/**
 * Whether the writer a tag names is gone, as far as this process can see: one of its own space
 * that is gone (processGone). A writer of another host, boot or PID namespace is never judged
 * (what it leaves goes when stale). A tag of the earlier versions (host name alone) is judged
 * as they judged it, by its pid here: they could not say their namespace, and what they left
 * on this host is most likely a killed run's.
 */
export function writerGone(tag: string): boolean {
  const m = TAG.exec(tag);
  if (!m || (m[1] !== SPACE && m[1] !== HOST_ONLY)) return false;
  return processGone(Number(m[2]), m[3]);
}
