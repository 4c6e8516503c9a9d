/**
 * Which mount a folder is on, as link(2) and rename(2) need to know: neither crosses mounts
 * (EXDEV), not even two mounts of one file system (a bind mount). From /proc/self/mountinfo
 * where there is one, read once; elsewhere the file system (st_dev) stands for the mount.
 */
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

let points: Set<string> | null | undefined;

/** This mount namespace's mount points (mountinfo's fifth field, octal escapes undone), or null without /proc. */
export function mountPoints(): Set<string> | null {
  if (points !== undefined) return points;
  let text: string | null = null;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    // no /proc: st_dev decides
  }
  const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  points = text === null ? null : new Set(text.split('\n').flatMap((line) => (line === '' ? [] : [unescape(line.split(' ')[4] ?? '')])));
  return points;
}

/** The mount a folder is on: the deepest mount point holding its real path, or its device where mounts are unknown. */
export async function mountOf(dir: string): Promise<string> {
  const known = mountPoints();
  if (known === null) return `dev:${(await fs.stat(dir)).dev}`;
  for (let at = await fs.realpath(dir); ; at = path.dirname(at)) {
    if (known.has(at) || at === path.dirname(at)) return at;
  }
}
