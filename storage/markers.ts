/**
 * Markers ferry writes at a store's root for a moment and removes (the write check's, the
 * conditional-write probe's). A run killed in between leaves one; another run may be between
 * its own marker's write and removal at that moment, and a probe whose marker vanishes takes
 * the endpoint for one that does not enforce conditional writes. So a marker names its writer
 * (process.ts: writerTag) and when it was written, `<start><writer>-<ms>-<n>`, and only an
 * abandoned one is removed by others: its writer gone, or an hour old.
 */
import { WRITER_TAG, writerGone, writerTag } from './process.js';

/** A marker this old is abandoned, whoever wrote it: a check or a probe holds its own for seconds. */
export const MARKER_STALE_MS = 60 * 60_000;

/**
 * After `start`: this version's `<writer>-<ms>-<n>` (n: this process's count, as two probes of
 * one process may start in the same millisecond); an earlier version's write check's `<pid>-<ms>`
 * (judged by its age alone) or probe's 16 hex characters (no age to judge by: removed on
 * sight, as those versions did).
 */
const TAIL = new RegExp(`^(?:(${WRITER_TAG})-(\\d+)-\\d+|\\d+-(\\d+)|[0-9a-f]{16})$`);
let count = 0;

/** A new marker's name, naming this process. */
export function markerName(start: string): string {
  return `${start}${writerTag(process.pid)}-${Date.now()}-${count++}`;
}

/**
 * Whether `name` is a marker starting with `start` that no live check or probe holds. A name
 * that is not exactly a marker's is never one (it may be the user's).
 */
export function abandonedMarker(name: string, start: string, now = Date.now()): boolean {
  const m = name.startsWith(start) ? TAIL.exec(name.slice(start.length)) : null;
  if (!m) return false;
  const [, writer, at, legacyAt] = m;
  if (writer !== undefined) return writerGone(writer) || now - Number(at) > MARKER_STALE_MS;
  return legacyAt === undefined || now - Number(legacyAt) > MARKER_STALE_MS;
}
