/**
 * `file://` URLs in manifests, read only under `--local-source-root DIR` (DESIGN.md,
 * "Sources"): the path, with every symlink resolved, must lie inside DIR (itself
 * resolved), so neither `..` nor a link can reach the rest of the machine.
 */
import fs from 'node:fs/promises';
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
  const handle = await fs.open(real, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new LocalSourceError(e.code === 'EACCES' ? 'FORBIDDEN' : e.code === 'EISDIR' ? 'NOT_FOUND' : 'TRANSIENT', `${wanted}: ${e.code ?? 'error'}`);
  });
  const s = await handle.stat();
  if (!s.isFile()) {
    await handle.close();
    throw new LocalSourceError('NOT_FOUND', `${wanted} is not a file`);
  }
  return { body: handle.createReadStream(), size: s.size, version: `${s.size}-${Math.trunc(s.mtimeMs)}` };
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && relWithin(rel);
}
