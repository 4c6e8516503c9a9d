/**
 * The control plane's files on any store: manifests read from the manifest prefix, the
 * three outputs published to --out. Everything is staged in the work dir first, so the
 * Parquet codec always reads and writes a local file (it needs random access), and a
 * unit's outputs appear in order: Parquet, ledger, then manifest.json last.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { PlaceError } from './errors.js';
import { eachLine } from './lines.js';
import { idleCut } from '../storage/idle.js';
import { FileStore, WRITE_CHECK_MARKER, abandonedMarker, checkWrites, markerName, makeFolder, type Place, type StorageAdapter, type StoreOptions, StorageError, describePlace, openStore, readCredentialsProblem } from '../storage/index.js';

/**
 * The stores a command uses, opened once each. The orchestrator reads manifests and writes
 * outputs that replace what was there, and cleans --dest: it writes nothing conditionally, so
 * it opens every place without the conditional-write probe, which writes and removes a marker
 * (DESIGN.md: the source is only ever read; and no cleanup looks for markers under --out).
 * The workers, which do write conditionally, decide for --dest themselves.
 */
export class Stores {
  private readonly open = new Map<string, Promise<StorageAdapter>>();
  private readonly credentials = new Map<string, Promise<StorageError | null>>();
  private readonly options: StoreOptions;

  constructor(options: StoreOptions) {
    this.options = { ...options, conditionalWrites: 'off' };
  }

  /** The store at a place: the manifest prefix, a unit's source manifest, --out or --dest. */
  get(place: Place): Promise<StorageAdapter> {
    const id = describePlace(place);
    let store = this.open.get(id);
    if (!store) {
      store = openStore(place, this.options);
      this.open.set(id, store);
    }
    return store;
  }

  /**
   * Why the manifest URLs of `scheme` cannot be fetched at all (no credentials to sign with),
   * or null; `unsigned` (--s3-no-sign-request, --gcs-no-sign-request) needs none. Asked once
   * per command: every worker inherits this process's environment, so its answer is theirs.
   */
  readCredentials(scheme: 's3' | 'gs', unsigned: boolean): Promise<StorageError | null> {
    const id = `${scheme}${unsigned ? ' unsigned' : ''}`;
    let check = this.credentials.get(id);
    if (!check) {
      const store = scheme === 's3' ? 's3' : 'gcs';
      const options = { ...this.options, [store]: { ...this.options[store], ...(unsigned ? { unsigned } : {}) } };
      check = readCredentialsProblem(scheme, options, `its ${scheme}:// URLs cannot be fetched`);
      this.credentials.set(id, check);
    }
    return check;
  }

  async close(): Promise<void> {
    const all = await Promise.allSettled(this.open.values());
    await Promise.all(all.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
    this.open.clear();
  }
}

/**
 * An object's body that ends after --timeout (`timeoutMs`) without a byte: the GCS
 * library's read streams have no timeout of their own, and a stalled manifest held the
 * whole run (a first SIGTERM waits for work in flight, and this never ends).
 */
async function readBody(store: StorageAdapter, key: string, timeoutMs: number): Promise<Readable> {
  const { body } = await store.read(key);
  return idleCut(body, timeoutMs, (detail) => new StorageError('TRANSIENT', `read ${store.uri(key)}: ${detail}`));
}

/** A local file holding an object's bytes: the file itself for folders, else a streamed copy. */
export async function localCopy(store: StorageAdapter, key: string, staging: string, timeoutMs: number): Promise<{ file: string; done(): Promise<void> }> {
  if (store instanceof FileStore) return { file: store.localPath(key), done: async () => {} };
  const file = path.join(staging, `${process.pid}-${Date.now()}-${path.basename(key)}`);
  await fs.mkdir(staging, { recursive: true });
  await pipeline(await readBody(store, key, timeoutMs), createWriteStream(file, { mode: 0o600 }));
  return { file, done: () => fs.rm(file, { force: true }) };
}

/** A small object's text, or null when it does not exist. */
export async function readText(store: StorageAdapter, key: string, timeoutMs: number): Promise<string | null> {
  try {
    const body = await readBody(store, key, timeoutMs);
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    if (e instanceof StorageError && e.code === 'NOT_FOUND') return null;
    throw e;
  }
}

/**
 * A text object's lines, each handed to `onLine` as it is read (a ledger may be larger
 * than one string can hold); false when the object does not exist. What `onLine` throws
 * stops the read and is thrown here.
 */
export async function readLines(store: StorageAdapter, key: string, timeoutMs: number, onLine: (line: string) => void): Promise<boolean> {
  let body: Readable;
  try {
    body = await readBody(store, key, timeoutMs);
  } catch (e) {
    if (e instanceof StorageError && e.code === 'NOT_FOUND') return false;
    throw e;
  }
  let failed: { error: unknown } | null = null;
  eachLine(body, (line) => {
    if (failed) return;
    try {
      onLine(line);
    } catch (error) {
      failed = { error };
      body.destroy();
    }
  });
  await finished(body).catch((e: unknown) => {
    if (!failed) throw e;
  });
  if (failed) throw (failed as { error: unknown }).error;
  return true;
}

/**
 * Publishes a staged file under a key (replacing what is there). A folder store's
 * temporary folder may vanish between its mkdir and its open (another run sharing the place
 * tidied it as empty): the file is read again and put once more.
 */
export async function publishFile(store: StorageAdapter, key: string, file: string, contentType: string): Promise<void> {
  const { size } = await fs.stat(file);
  const put = () => store.put(key, createReadStream(file), { contentType, metadata: {}, ifAbsent: false, size });
  await put().catch((e: unknown) => {
    if (e instanceof StorageError && e.code === 'NOT_FOUND') return put();
    throw e;
  });
}

export async function publishText(store: StorageAdapter, key: string, text: string, contentType: string): Promise<void> {
  await store.put(key, Buffer.from(text), { contentType, metadata: {}, ifAbsent: false });
}

/**
 * Fails early, before any download, when --out or --dest cannot take a write (see
 * checkWrites): without it an unwritable --out would surface only after every unit's work.
 * A store that cannot be opened fails the check either way.
 */
export async function checkWritable(opening: Promise<StorageAdapter>, what: string, only: 'any failure' | 'a refusal' = 'any failure'): Promise<void> {
  await checked(what, async () => {
    await checkWrites(await opening, only);
  });
}

/**
 * The same early check for the work dir, which journals every event: made (0700) and written
 * to; what killed checks left there goes (write-check.ts).
 */
export async function checkWorkDir(dir: string, what: string): Promise<void> {
  await checked(what, async () => {
    await makeFolder(dir, 0o700);
    const marker = path.join(dir, markerName(WRITE_CHECK_MARKER));
    await fs.writeFile(marker, 'ferry');
    await fs.rm(marker);
  });
  const abandoned = (await fs.readdir(dir).catch(() => [])).filter((name) => abandonedMarker(name, WRITE_CHECK_MARKER));
  await Promise.all(abandoned.map((name) => fs.rm(path.join(dir, name), { force: true }).catch(() => undefined))); // best effort: a marker is harmless
}

async function checked(what: string, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (e) {
    throw new PlaceError(`${what} is not writable: ${(e as Error).message}`);
  }
}
