/**
 * `file://` URLs in manifests, read only under `--local-source-root DIR` (DESIGN.md,
 * "Sources"): the path, with every symlink resolved, must lie inside DIR (itself
 * resolved), so neither `..` nor a link can reach the rest of the machine.
 */
import { constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { relWithin } from './uri.js';

export type LocalSourceErrorCode = 'BAD_URL' | 'BLOCKED_PATH' | 'NOT_FOUND' | 'FORBIDDEN' | 'TRANSIENT';

export class LocalSourceError extends Error {
  constructor(
    readonly code: LocalSourceErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LocalSourceError';
  }
}

export function isFileUrl(url: string): boolean {
  return /^file:/i.test(url);
}

/**
 * Why `root` cannot be a `--local-source-root`, or null: it must be a folder there now. A
 * root that is not would refuse every file:// row as BLOCKED_PATH, a permanent reason, and
 * complete its unit, which a run given the right root then skips as complete.
 */
export async function localSourceRootProblem(root: string): Promise<string | null> {
  const s = await fs.stat(root).catch((e: NodeJS.ErrnoException) => e);
  if (!(s instanceof Error)) return s.isDirectory() ? null : `${root} is not a folder`;
  return s.code === 'ENOENT' || s.code === 'ENOTDIR' ? `${root} does not exist` : `${root} cannot be read (${s.code ?? s.message})`;
}

/** Opens a file:// source inside `root`; the stream and the file's size and mtime. */
export async function openLocalSource(url: string, root: string): Promise<{ body: Readable; size: number; version: string }> {
  let wanted: string;
  try {
    wanted = fileURLToPath(url);
  } catch {
    throw new LocalSourceError('BAD_URL', `not a file URL: ${url}`);
  }
  const realRoot = await fs.realpath(root).catch(() => {
    throw new LocalSourceError('BLOCKED_PATH', `--local-source-root ${root} does not exist`);
  });
  let real: string;
  try {
    real = await fs.realpath(wanted);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Decide on the lexical path first: a missing file outside the root is still refused.
    if (!inside(realRoot, path.resolve(wanted))) throw new LocalSourceError('BLOCKED_PATH', `${wanted} lies outside --local-source-root`);
    throw new LocalSourceError(code === 'EACCES' ? 'FORBIDDEN' : code === 'ENOENT' || code === 'ENOTDIR' ? 'NOT_FOUND' : 'TRANSIENT', `${wanted}: ${code ?? 'error'}`);
  }
  if (!inside(realRoot, real)) throw new LocalSourceError('BLOCKED_PATH', `${wanted} resolves outside --local-source-root`);
  // A link in place of the file itself, swapped in since the check, is refused (ELOOP).
  const handle = await fs.open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ELOOP') throw new LocalSourceError('BLOCKED_PATH', `${wanted} became a link after it was checked`);
    throw new LocalSourceError(e.code === 'EACCES' ? 'FORBIDDEN' : e.code === 'EISDIR' ? 'NOT_FOUND' : 'TRANSIENT', `${wanted}: ${e.code ?? 'error'}`);
  });
  // A folder on the path swapped for a link between the check and the open would have
  // opened a file outside the root: what was opened decides, not what was checked.
  const opened = await openedPath(handle, real);
  if (opened === null || !inside(realRoot, opened)) {
    await handle.close();
    throw new LocalSourceError('BLOCKED_PATH', `${wanted} resolves outside --local-source-root (it changed while being opened)`);
  }
  const s = await handle.stat();
  if (!s.isFile()) {
    await handle.close();
    throw new LocalSourceError('NOT_FOUND', `${wanted} is not a file`);
  }
  return { body: handle.createReadStream(), size: s.size, version: `${s.size}-${Math.trunc(s.mtimeMs)}` };
}

/**
 * The path of the file `handle` has open, or null when it cannot be told. Linux names it in
 * /proc/self/fd; elsewhere `real` is resolved again and must still be that very file (same
 * device and inode), which leaves only a swap and a swap back within the open as a gap.
 */
async function openedPath(handle: FileHandle, real: string): Promise<string | null> {
  const named = await fs.readlink(`/proc/self/fd/${handle.fd}`).catch(() => null);
  if (named !== null && path.isAbsolute(named)) return named.replace(/ \(deleted\)$/, '');
  const [open, again] = await Promise.all([handle.stat(), fs.realpath(real).catch(() => null)]);
  if (again === null) return null;
  const there = await fs.stat(again).catch(() => null);
  return there !== null && there.dev === open.dev && there.ino === open.ino ? again : null;
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && relWithin(rel);
}
