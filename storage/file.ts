/**
 * A local folder as a store. Writes are atomic (a temporary file in the same folder, then
 * link(2) for create-if-absent or rename(2) to replace), so a reader or a crash never sees
 * a partial object. Files keep no metadata: the sha256 is recomputed from the bytes when
 * asked, which for a file costs one read.
 */
import { createHash, hash } from 'node:crypto';
import { createReadStream, link as linkCb, linkSync, renameSync, unlink as unlinkCb, unlinkSync, writeFile as writeFileCb, writeFileSync } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type CleanupNote, type ObjectInfo, type PutOptions, type PutResult, type ReadResult, type StorageAdapter, StorageError } from './adapter.js';
import { pipeHashed } from './hashed.js';
import { mountOf, mountPoints } from './mounts.js';
import { WRITER_TAG, writerGone, writerTag } from './process.js';
import { relWithin } from './uri.js';

/**
 * Temporary files live under `<root>/.ferry-tmp/`, mirroring their keys' folders but the
 * last, so what a killed writer left is found and removed without walking the objects
 * themselves. Where a key's folder is on another mount than the root (a volume mounted at
 * `<root>/<unit>`, a folder there that is a symlink to another file system), they live in
 * the `.ferry-tmp/` of the highest folder on that mount instead: a temporary file is linked
 * or renamed into place, and neither crosses mounts (EXDEV). The last folder of a key (its shard: 256 per unit) goes into the file's
 * name instead: mirrored, it cost a mkdir per shard in the worker and a walk of them all at
 * the unit's cleanup.
 */
export const TEMP_DIR = '.ferry-tmp';
const TEMP_SUFFIX = '.tmp';
/** Tries at a write whose temporary folder another run's cleanup keeps removing as empty. */
const PUT_TRIES = 3;

// The callback forms: fs/promises wraps every call in a FileHandle and promise machinery
// that cost more CPU than the write of a small object itself (about 3× in user time).
const writeFileFast = promisify(writeFileCb);
const linkFast = promisify(linkCb);
const unlinkFast = promisify(unlinkCb);

/**
 * Whether small writes run inline, on the event loop. On a fast file system (tmpfs, a
 * warm page cache) the thread pool's five hand-offs per object (write, link, unlink…)
 * cost as much CPU as the system calls themselves (measured: ~54 µs against ~29 µs
 * inline for a 22 KB object on tmpfs). A slow file system must not stall the loop: this
 * store goes back to the thread pool for good once most writes of a window of WINDOW are
 * slow (over SLOW_MS), once STALLS of them take over STALL_MS, or once one takes over
 * HANG_MS. Times are wall-clock, so a process preempted mid-write (2 busy cores and more
 * runnable threads) sees a few slow writes however fast the disk: measured here, one such
 * write used to end inline writes in 5 runs of 6 when a single stall or a moving average
 * decided.
 */
export class InlineWrites {
  static readonly MAX_BYTES = 1024 * 1024;
  static readonly WINDOW = 64;
  static readonly SLOW_MS = 0.5;
  static readonly STALL_MS = 20;
  static readonly STALLS = 3;
  static readonly HANG_MS = 200;
  private on = true;
  private seen = 0;
  private slow = 0;
  private stalls = 0;

  use(bytes: number): boolean {
    return this.on && bytes <= InlineWrites.MAX_BYTES;
  }

  took(ms: number): void {
    if (ms > InlineWrites.SLOW_MS) this.slow++;
    if (ms > InlineWrites.STALL_MS) this.stalls++;
    if (ms > InlineWrites.HANG_MS || this.stalls >= InlineWrites.STALLS || this.slow > InlineWrites.WINDOW / 2) this.on = false;
    if (++this.seen === InlineWrites.WINDOW) this.seen = this.slow = this.stalls = 0;
  }
}

/** Where a key's temporary files go, from their temporary root (the store's, or a mount's): `a/b/ab/x.jpg` → `.ferry-tmp/a/b/ab-x.jpg` (+ tag, counter, suffix). */
function tempBase(root: string, rel: string): string {
  const dir = path.dirname(rel);
  if (dir === '.') return path.join(root, TEMP_DIR, rel);
  return path.join(root, TEMP_DIR, path.dirname(dir), `${path.basename(dir)}-${path.basename(rel)}`);
}

/**
 * Temporary names carry their writer: its process space (host, boot, PID namespace), pid and
 * start time, then a counter (`.<writer>-<counter>.tmp`, process.ts: writerTag), unique
 * without a random draw per object. Two runs may write the same unit at once (a shared work
 * dir, a re-run started early, another container sharing the folder): a cleanup removes what
 * a dead writer left, never a live writer's file between its write and its link.
 */
const PROCESS_TAG = writerTag(process.pid);
let tempSeq = 0;
/** What follows a key's temporary base in the names of its temporary files. */
const TEMP_NAME = new RegExp(`^(${WRITER_TAG})-[0-9a-z]+\\.tmp$`);
/** A temporary file not written to for this long is abandoned, whoever's it is (another space's, a writer of unknown start). */
export const TEMP_STALE_MS = 60 * 60_000;

/** The key a temporary file (its name, `<key base>.<writer>-<counter>.tmp`) was written for, or null when it is not one of ours. */
function keyOfTemp(name: string): string | null {
  const dot = name.lastIndexOf('.', name.length - TEMP_SUFFIX.length - 1);
  return dot > 0 && TEMP_NAME.test(name.slice(dot + 1)) ? name.slice(0, dot) : null;
}

/** Whether the writer a temporary file's name names is gone (process.ts: writerGone); a name of no writer is not judged. */
function tempWriterGone(name: string): boolean {
  const tail = name.slice(name.lastIndexOf('.', name.length - TEMP_SUFFIX.length - 1) + 1); // `<writer>-<counter>.tmp`
  const m = TEMP_NAME.exec(tail);
  // A writer still running, of another space, or whose start /proc cannot tell keeps its file until it is stale.
  return m !== null && writerGone(m[1]!);
}

/** Removes a temporary file when its writer is gone or it is stale; a live writer's stays. */
async function removeAbandoned(file: string): Promise<void> {
  if (!tempWriterGone(path.basename(file))) {
    const s = await fs.stat(file).catch(() => null);
    if (!s || Date.now() - s.mtimeMs < TEMP_STALE_MS) return;
  }
  await fs.rm(file, { force: true });
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * `mkdir -p`, a folder at a time, whose error says why. Node's recursive mkdir answers
 * ENOENT for a read-only file system or a denied parent, EEXIST when a file stands where a
 * folder should, and never returns where a folder cannot be made under an existing parent
 * (it spins on `/proc/x`, Node 20). Here a plain mkdir is tried first (the parent nearly
 * always exists), then the parents, then once more: a second refusal is the real cause.
 */
export async function makeFolder(dir: string, mode?: number): Promise<void> {
  const options = mode === undefined ? {} : { mode };
  const first = await fs.mkdir(dir, options).then(() => null, (e: unknown) => e);
  if (first === null || (await isFolder(dir, first))) return;
  const parent = path.dirname(dir);
  if (errno(first) !== 'ENOENT' || parent === dir) throw first;
  await makeFolder(parent, mode);
  const again = await fs.mkdir(dir, options).then(() => null, (e: unknown) => e);
  if (again !== null && !(await isFolder(dir, again))) throw again;
}

/** After mkdir failed with `e`: true when a folder is there (made meanwhile); throws when something else is. */
async function isFolder(dir: string, e: unknown): Promise<boolean> {
  if (errno(e) !== 'EEXIST') return false;
  if ((await fs.stat(dir).catch(() => null))?.isDirectory()) return true;
  throw Object.assign(new Error(`${dir}: ${(await notAFolder(dir)) ?? 'a file'} stands where a folder should be`), { code: 'ENOTDIR' });
}

/** What stands at `at` that is not a folder: a file, or a symbolic link that leads to none (dangling, or a loop); null for a folder or nothing. */
async function notAFolder(at: string): Promise<string | null> {
  const s = await fs.stat(at).catch(() => null);
  if (s) return s.isDirectory() ? null : 'a file';
  const link = await fs.readlink(at).catch(() => null);
  return link === null ? null : `a symbolic link that leads to no folder (to ${link})`;
}

/** Opens a new temporary file, making its folder again while another run's cleanup removes it as empty. */
async function openTemp(tmp: string): Promise<FileHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fs.open(tmp, 'wx', 0o644);
    } catch (e) {
      if (errno(e) !== 'ENOENT' || attempt === PUT_TRIES) throw e;
      await makeFolder(path.dirname(tmp));
    }
  }
}

/**
 * The highest folder from `root` (on `rootMount`) down to `dir` on dir's mount: where the
 * temporary files of keys in `dir` can be linked from. Nearly always the root itself.
 */
async function highestOnMount(root: string, rootMount: Promise<string>, dir: string): Promise<string> {
  const mount = await mountOf(dir);
  if (mount === (await rootMount)) return root;
  const parts = path.relative(root, dir).split(path.sep).filter((s) => s !== '');
  for (let i = 1; i < parts.length; i++) {
    const at = path.join(root, ...parts.slice(0, i));
    if ((await mountOf(at)) === mount) return at;
  }
  return dir;
}

async function removeEmptyFolders(dir: string): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => removeEmptyFolders(path.join(dir, e.name))));
  await fs.rmdir(dir).catch(() => {});
}

/**
 * Removes a temporary folder and its empty parents, up to the temporary root itself: each
 * stays while another unit uses it.
 */
async function removeEmptyParents(dir: string, temp: string): Promise<void> {
  while (await fs.rmdir(dir).then(() => true, () => false)) {
    if (dir === temp || !dir.startsWith(temp)) break;
    dir = path.dirname(dir);
  }
}

/**
 * What stands where a folder of `p` (or of its temporary file `tmp`) should be, for ENOTDIR,
 * which names none: the key is taken, as by a folder at it (no write, --overwrite included,
 * replaces either); `p` when none is found (gone meanwhile).
 */
async function inTheWay(root: string, p: string, tmp: string, e: unknown): Promise<StorageError> {
  for (const file of [p, tmp]) {
    const parts = path.relative(root, path.dirname(file)).split(path.sep);
    for (let i = 0; i <= parts.length; i++) {
      const at = path.join(root, ...parts.slice(0, i));
      const thing = await notAFolder(at);
      if (thing !== null) return new StorageError('EXISTS', `${at}: ${thing} stands where a folder should be (ENOTDIR)`, { cause: e });
    }
  }
  return classify(e, p);
}

/**
 * Whether a failed stat or open of a key means no object is there: nothing, or a file or a
 * symbolic link that leads to no folder (dangling, a loop) where one of its folders should be.
 */
function noObject(e: unknown): boolean {
  const code = errno(e);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP';
}

/** Why a symbolic link leads to nothing that can be read, or null (it leads to a folder). */
async function brokenLink(link: string): Promise<string | null> {
  try {
    await fs.stat(link);
    return null;
  } catch (e) {
    const target = await fs.readlink(link).catch(() => '?');
    const code = errno(e);
    return `a symbolic link to ${target}, which ${code === 'ELOOP' ? 'loops' : code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code})`}`;
  }
}

function classify(e: unknown, what: string): StorageError {
  const code = errno(e);
  if (code === 'ENOENT') return new StorageError('NOT_FOUND', `${what}: not found`, { cause: e });
  if (code === 'EACCES' || code === 'EPERM') return new StorageError('FORBIDDEN', `${what}: permission denied (${code})`, { cause: e });
  if (code === 'EROFS') return new StorageError('FORBIDDEN', `${what}: read-only file system (EROFS)`, { cause: e });
  // A file where one of the key's folders should be: the key is taken, as by a folder at it
  // (no write, --overwrite included, replaces either). Reads and stats see no object there.
  if (code === 'ENOTDIR') return new StorageError('EXISTS', `${what}: a file stands where a folder should be (ENOTDIR)`, { cause: e });
  // A path, or a name in it, past what this file system takes (PATH_MAX, NAME_MAX): no
  // retry makes it fit. Why comes first: the path is long by definition, and a one-line detail may cut its end.
  if (code === 'ENAMETOOLONG') {
    const too = (e as NodeJS.ErrnoException).path ?? what;
    return new StorageError('KEY_TOO_LONG', `a path of ${Buffer.byteLength(too, 'utf8')} bytes, or a name in it, too long for this file system (ENAMETOOLONG): ${too}`, { cause: e });
  }
  if (code === 'EEXIST') return new StorageError('EXISTS', `${what}: exists`, { cause: e });
  // A folder where an object should be: taken, whatever the write (link, rename, a read to compare).
  if (code === 'EISDIR') return new StorageError('EXISTS', `${what}: a folder is there (EISDIR)`, { cause: e });
  // A mount made under the destination after this store chose where its temporary files go.
  if (code === 'EXDEV') return new StorageError('FATAL', `${what}: on another mount than its temporary file (EXDEV): a volume mounted under the destination while ferry wrote to it`, { cause: e });
  if (code === 'ENOSPC') return new StorageError('TRANSIENT', `${what}: no space left on device (ENOSPC)`, { cause: e });
  if (code === 'EMFILE' || code === 'ENFILE' || code === 'EIO' || code === 'EBUSY') return new StorageError('TRANSIENT', `${what}: ${code}`, { cause: e });
  return new StorageError('FATAL', `${what}: ${(e as Error).message}`, { cause: e });
}

export class FileStore implements StorageAdapter {
  readonly capabilities = { conditionalCreate: true };

  constructor(readonly root: string) {}

  private full(key: string): string {
    return this.place(key).p;
  }

  /** A key's file and its path relative to the root; a key that would climb out of the root is refused. */
  private place(key: string): { p: string; rel: string } {
    const p = path.resolve(this.root, key);
    const rel = path.relative(this.root, p);
    if (!relWithin(rel)) throw new StorageError('FATAL', `key "${key}" escapes ${this.root}`);
    return { p, rel };
  }

  uri(key: string): string {
    return pathToFileURL(this.full(key)).href;
  }

  /** The file behind a key, for readers that need random access (the Parquet codec). */
  localPath(key: string): string {
    return this.full(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const start = this.full(prefix);
    let entries;
    try {
      entries = await fs.readdir(start, { recursive: true, withFileTypes: true });
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return;
      throw classify(e, start);
    }
    for (const entry of entries) {
      // A symlink counts when it leads to a file (stat below follows it); folders it leads to are not entered.
      if (!entry.isFile() && !entry.isSymbolicLink()) continue;
      const abs = path.join(entry.parentPath, entry.name);
      if (path.relative(this.root, abs).split(path.sep).includes(TEMP_DIR)) continue; // the root's or a mount's
      const key = path.relative(this.root, abs).split(path.sep).join('/');
      const info = await this.stat(key);
      if (info) yield info;
      else if (entry.isSymbolicLink()) {
        const broken = await brokenLink(abs);
        if (broken) yield { key, size: 0, version: 'unreadable', metadata: {}, unreadable: broken };
      }
    }
  }

  async *rootKeys(start: string): AsyncIterable<string> {
    const entries = await fs.readdir(this.root, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isFile() && e.name.startsWith(start)) yield e.name;
    // A root key's temporary files lie right in the root's `.ferry-tmp/` (tempBase): a write
    // killed before its link left one there and no key.
    const temps = await fs.readdir(path.join(this.root, TEMP_DIR), { withFileTypes: true }).catch(() => []);
    for (const e of temps) {
      const key = e.isFile() && e.name.startsWith(start) ? keyOfTemp(e.name) : null;
      if (key !== null) yield key;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const p = this.full(key);
    try {
      const s = await fs.stat(p);
      if (!s.isFile()) return null;
      return { key, size: s.size, version: `${s.size}-${Math.trunc(s.mtimeMs)}`, metadata: {} };
    } catch (e) {
      if (noObject(e)) return null;
      throw classify(e, p);
    }
  }

  /** The sha256 of the bytes stored under a key (files keep no metadata of their own). */
  async contentSha256(key: string): Promise<string | null> {
    const p = this.full(key);
    const hasher = createHash('sha256');
    try {
      for await (const chunk of createReadStream(p)) hasher.update(chunk as Buffer);
    } catch (e) {
      if (noObject(e)) return null;
      throw classify(e, p);
    }
    return hasher.digest('hex');
  }

  async read(key: string): Promise<ReadResult> {
    const p = this.full(key);
    const handle = await fs.open(p, 'r').catch((e: unknown) => {
      if (noObject(e)) throw new StorageError('NOT_FOUND', `${p}: not found`, { cause: e });
      throw classify(e, p);
    });
    const s = await handle.stat();
    // A folder opens, and fails only when read (EISDIR): no object is there, as stat says.
    if (!s.isFile()) {
      await handle.close();
      throw new StorageError('NOT_FOUND', `${p}: not found (not a file)`);
    }
    return { body: handle.createReadStream(), info: { key, size: s.size, version: `${s.size}-${Math.trunc(s.mtimeMs)}`, metadata: {} }, length: s.size };
  }

  /**
   * Folders made, or being made, by this store: a recursive mkdir per object costs more
   * than the write itself, and the objects that arrive for a new folder while its mkdir
   * runs wait for that one (at concurrency 64, a unit's first objects asked for each
   * folder ~3 times). A failed mkdir is forgotten, so the next object tries again.
   */
  private readonly made = new Map<string, Promise<void>>();

  private ensureDir(dir: string): Promise<void> {
    let made = this.made.get(dir);
    if (!made) {
      made = makeFolder(dir).then(
        () => {},
        (e: unknown) => {
          this.made.delete(dir);
          throw e;
        },
      );
      this.made.set(dir, made);
    }
    return made;
  }

  async put(key: string, body: Buffer | Readable, options: PutOptions): Promise<PutResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.putOnce(key, body, options);
      } catch (e) {
        // A temporary folder removed as empty by another run's cleanup, between our mkdir
        // and our write: forget what we made and write again (a stream cannot be replayed;
        // its file is opened the same way before its body is read: openTemp).
        if (!(e instanceof StorageError) || errno(e.cause) !== 'ENOENT' || attempt === PUT_TRIES || !Buffer.isBuffer(body)) throw e;
        this.made.clear();
      }
    }
  }

  private readonly inline = new InlineWrites();

  /** Each key folder's temporary root (highestOnMount), found once: the root, unless a mount is under it. */
  private readonly tempRoots = new Map<string, Promise<string>>();
  /** The same once found, read without a wait by each write. */
  private readonly tempRootFound = new Map<string, string>();
  /** The root's mount, found once. */
  private rootMount: Promise<string> | undefined;

  private tempRootOf(dir: string): Promise<string> {
    let found = this.tempRoots.get(dir);
    if (!found) {
      this.rootMount ??= mountOf(this.root);
      this.rootMount.catch(() => (this.rootMount = undefined)); // asked again by the next folder
      found = highestOnMount(this.root, this.rootMount, dir).then(
        (root) => {
          this.tempRootFound.set(dir, root);
          return root;
        },
        (e: unknown) => {
          this.tempRoots.delete(dir);
          throw e;
        },
      );
      this.tempRoots.set(dir, found);
    }
    return found;
  }

  /** Where the temporary files of the key at `p` (`rel` from the root) go, without tag, counter and suffix, once its folder exists; the root's where it does not. */
  private async tempBaseOf(p: string, rel: string): Promise<string> {
    const dir = path.dirname(p);
    const root = this.tempRootFound.get(dir) ?? (await this.tempRootOf(dir).catch(() => this.root));
    return tempBase(root, root === this.root ? rel : path.relative(root, p));
  }

  private async putOnce(key: string, body: Buffer | Readable, options: PutOptions): Promise<PutResult> {
    const { p, rel } = this.place(key);
    let tmp = p; // until its name is known: nothing of ours to remove
    try {
      await this.ensureDir(path.dirname(p));
      // Found once per folder: a write into a known one does not wait for it.
      const known = this.tempRootFound.get(path.dirname(p));
      const base = known === this.root ? tempBase(known, rel) : await this.tempBaseOf(p, rel);
      tmp = `${base}.${PROCESS_TAG}-${(tempSeq++).toString(36)}${TEMP_SUFFIX}`;
      await this.ensureDir(path.dirname(tmp));
      let sha256: string;
      let taken: Error | null;
      if (Buffer.isBuffer(body)) {
        sha256 = options.sha256 ?? hash('sha256', body, 'hex');
        if (this.inline.use(body.length)) {
          const t0 = performance.now();
          taken = this.writeInline(tmp, p, body, options.ifAbsent);
          this.inline.took(performance.now() - t0);
        } else {
          await writeFileFast(tmp, body, { mode: 0o644 });
          taken = await this.moveIntoPlace(tmp, p, options.ifAbsent);
        }
      } else {
        sha256 = await pipeHashed(body, (await openTemp(tmp)).createWriteStream());
        taken = await this.moveIntoPlace(tmp, p, options.ifAbsent);
      }
      // Taken: by the same bytes (a re-run) is success without a write; else EXISTS.
      if (taken && (await this.contentSha256(key)) !== sha256) throw taken;
      return taken ? { sha256, existed: true } : { sha256 };
    } catch (e) {
      if (tmp !== p) await unlinkFast(tmp).catch(() => {});
      if (e instanceof StorageError) throw e;
      throw errno(e) === 'ENOTDIR' ? await inTheWay(this.root, p, tmp, e) : classify(e, p);
    }
  }

  /**
   * Links the temporary file into place (create only) or renames it over the key. Returns
   * the EEXIST error when the key is taken (for the caller to compare), else null.
   */
  private async moveIntoPlace(tmp: string, p: string, ifAbsent: boolean): Promise<Error | null> {
    if (!ifAbsent) {
      await fs.rename(tmp, p);
      return null;
    }
    try {
      await linkFast(tmp, p);
      return null;
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      return e as Error;
    } finally {
      await unlinkFast(tmp).catch(() => {});
    }
  }

  /** writeFile and moveIntoPlace, inline: the same steps and the same answer. */
  private writeInline(tmp: string, p: string, body: Buffer, ifAbsent: boolean): Error | null {
    writeFileSync(tmp, body, { mode: 0o644 });
    if (!ifAbsent) {
      renameSync(tmp, p);
      return null;
    }
    try {
      linkSync(tmp, p);
      return null;
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      return e as Error;
    } finally {
      unlinkSync(tmp);
    }
  }

  /** A folder takes names of any length ferry's layout makes (a key-id is at most 200 bytes). */
  keyError(_key: string): StorageError | null {
    return null;
  }

  async remove(key: string): Promise<void> {
    await fs.rm(this.full(key), { force: true });
  }

  /** What writes leave behind: empty temporary folders, the root's and the mounts' (one in use elsewhere keeps its files, and stays). */
  async close(): Promise<void> {
    const roots = await Promise.all([...this.tempRoots.values()].map((r) => r.catch(() => this.root)));
    await Promise.all([...new Set([this.root, ...roots])].map((r) => removeEmptyFolders(path.join(r, TEMP_DIR))));
  }

  /**
   * The folders right in `dir` that are their own temporary root: mounts, or symlinks to
   * another mount (a shard folder, or a nested unit's). Only those can be, so only those are
   * asked (a unit holds 256 shard folders).
   */
  private async ownTempRoots(dir: string): Promise<string[]> {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    const mounts = mountPoints();
    const real = await fs.realpath(dir).catch(() => dir);
    const candidates = entries.filter((e) => e.isSymbolicLink() || (e.isDirectory() && (mounts === null || mounts.has(path.join(real, e.name)))));
    const own = await Promise.all(
      candidates.map(async (e) => {
        const sub = path.join(dir, e.name);
        return (await this.tempRootOf(sub).catch(() => null)) === sub ? sub : null;
      }),
    );
    return own.filter((sub) => sub !== null);
  }

  async discardPartial(key: string): Promise<CleanupNote> {
    const { p, rel } = this.place(key);
    const base = await this.tempBaseOf(p, rel);
    const dir = path.dirname(base);
    const name = path.basename(base) + '.';
    const entries = await fs.readdir(dir).catch(() => []);
    const partial = entries.filter((e) => e.startsWith(name) && TEMP_NAME.test(e.slice(name.length)));
    // The files only: their folder may be in use by another write this moment (between its
    // mkdir and its open); close() removes the temporary folders left empty.
    await Promise.all(partial.map((e) => removeAbandoned(path.join(dir, e))));
    return null;
  }

  /** Temporary files name their writer: what dead writers left goes, whoever's keys they are for. */
  async cleanup(prefix: string): Promise<CleanupNote> {
    this.made.clear();
    const unit = path.resolve(this.root, prefix);
    // The unit's temporary files are in the root's `.ferry-tmp/`, or a mount's: the unit
    // folder's, or one of its shard folders' (tempRootOf).
    const roots = new Set([this.root, await this.tempRootOf(unit).catch(() => this.root), ...(await this.ownTempRoots(unit))]);
    await Promise.all([...roots].map((root) => cleanTemp(path.join(root, TEMP_DIR), path.relative(root, unit))));
    return null;
  }
}

/**
 * Removes what dead writers left in a unit's folder of a temporary root `temp` (`rel`: the
 * unit's folder from that root; a shard folder that is its own root has its files right in
 * `temp`). They lie right in that folder (tempBase: `<shard>-<name>`); its subfolders hold
 * nested units' files, which may be being written now. So may the unit's own, by another run
 * of it: only what dead writers left goes.
 */
async function cleanTemp(temp: string, rel: string): Promise<void> {
  const dir = rel === '..' ? temp : path.join(temp, rel);
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  await Promise.all(entries.filter((e) => !e.isDirectory()).map((e) => removeAbandoned(path.join(dir, e.name))));
  await removeEmptyParents(dir, temp);
}
