/**
 * Large objects (past --multipart-threshold, under --profile any) pass through the worker
 * as streams: type from their first bytes, size gates while they flow, the store's
 * multipart or resumable upload on the other side, never buffered whole. Memory per
 * object is the store's queue of parts (at most 3 × --part-size).
 */
import { Readable, Writable } from 'node:stream';
import { type Reason, maxBytesOf, oneLine } from '../protocol/index.js';
import { type ObjectInfo, type StorageAdapter, StorageError, objectKey } from '../storage/index.js';
import { pipeHashed } from '../storage/hashed.js';
import { classifyError, endedEarly, retryAfterMs } from './download.js';
import type { Streamed } from './download.js';
import { sniffType } from './gates.js';
import type { TaskContext } from './context.js';
import { conflictDetail, ferryMetadata, sourceTag, unfinishedWrite } from './upload.js';

const HEAD_BYTES = 4100; // what file-type needs to tell a type

/** Why a streamed transfer stopped, and on which side; `retryAfterMs`, the wait a refusing store asked for. */
export type StreamFailure = { side: 'download' | 'validate' | 'upload'; reason: Reason; detail: string; retriable: boolean; code?: string | null; retryAfterMs?: number | null };

class SourceError extends Error {
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause), { cause });
  }
}
class CeilingError extends Error {}

/** Reads until `n` bytes (or the end) have come: the head, and the rest still unread. */
async function readHead(stream: Readable, n: number): Promise<{ head: Buffer; rest: AsyncIterator<Buffer> }> {
  const it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const next = await it.next().catch((e: unknown) => {
      throw new SourceError(e);
    });
    if (next.done) break;
    chunks.push(next.value);
    got += next.value.length;
  }
  return { head: Buffer.concat(chunks), rest: it };
}

/**
 * The head, then the rest, counted against the ceiling; source errors marked as such.
 * `passed` hears of each chunk as it goes on.
 */
function flowing(head: Buffer, rest: AsyncIterator<Buffer>, maxBytes: number, passed: (n: number) => void): Readable {
  let total = head.length;
  async function* all() {
    passed(head.length);
    yield head;
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await rest.next();
      } catch (e) {
        throw new SourceError(e);
      }
      if (next.done) break;
      total += next.value.length;
      if (total > maxBytes) throw new CeilingError(`body over max ${maxBytes} bytes`);
      passed(next.value.length);
      yield next.value;
    }
  }
  return Readable.from(all(), { objectMode: false });
}

/** The first error in `e`'s cause chain that is one of `kinds`, if any. */
function causeOf(e: unknown, kinds: (abstract new (...args: never[]) => Error)[]): Error | null {
  for (let at = e, depth = 0; at && depth < 8; at = (at as { cause?: unknown }).cause, depth++) {
    if (kinds.some((k) => at instanceof k)) return at as Error;
  }
  return null;
}

function failureOf(e: unknown): StreamFailure {
  // The source's failure first, wherever it is in the chain: a store (the folder's write
  // pipeline, an SDK's upload) and stream plumbing carry it as their cause.
  const source = causeOf(e, [CeilingError, SourceError]);
  if (source instanceof CeilingError) return { side: 'validate', reason: 'TOO_LARGE', detail: source.message, retriable: false };
  if (source instanceof SourceError) {
    const c = classifyError(source.cause);
    return { side: 'download', reason: c.reason, detail: `${c.code ?? 'error'}: ${source.message}`, retriable: c.retriable, code: c.code };
  }
  const store = causeOf(e, [StorageError]);
  if (store instanceof StorageError) {
    // EXISTS here: the key is taken by what no write replaces (a folder at a folder store's key).
    const reason: Reason = store.code === 'FORBIDDEN' || store.code === 'KEY_TOO_LONG' || store.code === 'THROTTLED' ? store.code : store.code === 'EXISTS' ? 'DEST_CONFLICT' : 'UPLOAD_FAILED';
    return { side: 'upload', reason, detail: store.message, retriable: store.code === 'TRANSIENT' || store.code === 'THROTTLED', retryAfterMs: retryAfterMs(store) };
  }
  return { side: 'upload', reason: 'UPLOAD_FAILED', detail: (e as Error)?.message ?? String(e), retriable: true };
}

/**
 * What stands at a key before a streamed write: an object, null, or `unknown` where the
 * store refused to say. S3 answers a HEAD of a key that does not exist 403 to credentials
 * that may not list the bucket (s3:ListBucket, which a policy on `bucket/prefix/*` alone
 * leaves out): where the store enforces create-only writes, the write itself, made
 * conditional, then says whether the key is free.
 */
async function whatStands(store: StorageAdapter, key: string): Promise<ObjectInfo | null | 'unknown'> {
  try {
    return await store.stat(key);
  } catch (e) {
    if (e instanceof StorageError && e.code === 'FORBIDDEN' && store.capabilities.conditionalCreate) return 'unknown';
    throw e;
  }
}

/**
 * Streams one handed-over body to its key. Emits DL_OK and UP_OK on success; returns the
 * failure otherwise (the caller decides on a retry and the terminal event).
 */
export async function streamObject(id: string, dl: Streamed, ctx: TaskContext): Promise<StreamFailure | null> {
  let bytes = 0;
  try {
    const { head, rest } = await readHead(dl.stream, HEAD_BYTES);
    const type = (await sniffType(head)) ?? { ext: 'bin', contentType: 'application/octet-stream' };
    const key = objectKey(id, type.ext, ctx.unit);
    ctx.streamedKeys?.add(key);
    const source = sourceTag(dl.size, dl.etag);
    // Already there? Decided without a transfer where the store recorded the source and the sha256.
    let compareAfter = false;
    let unknown = false;
    if (!ctx.flags.overwrite) {
      const stands = await whatStands(ctx.store, key);
      unknown = stands === 'unknown';
      const there = stands === 'unknown' ? null : stands;
      const theirs = there?.metadata['ferry-sha256'];
      const sameSource = there !== null && dl.size !== null && !!dl.etag && there.metadata['ferry-source'] === source && there.size === dl.size;
      if (there && sameSource && theirs) {
        dl.stream.destroy();
        ctx.emit({ kind: 'UP_OK', id, uri: ctx.store.uri(key), ext: type.ext, bytes: there.size, sha256: theirs, width: null, height: null, existed: true });
        return null;
      }
      // A store without metadata (files) compares the bytes once they have streamed.
      compareAfter = there !== null && ctx.store.contentSha256 !== undefined && ctx.store.capabilities.conditionalCreate;
      // The bytes decide, hashed on the way and dropped (a re-run must not rewrite an
      // identical object, nor refuse it): one ferry wrote with its sha256, from a source
      // that gives no ETag; or this id's own from this very source (size and ETag) whose
      // sha256 was never recorded (a kill before the metadata patch, an S3 object past what
      // CopyObject stamps). Hashing is the cheaper correct answer there: its bytes are whole
      // (a multipart or resumable upload lands whole or not at all), and writing them again
      // would not record a sha256 that S3 cannot stamp.
      const ours = there !== null && sameSource && unfinishedWrite(there, id);
      if (there && !compareAfter && (theirs || ours)) {
        // Downloaded, not uploaded: only hashed.
        const sha256 = await pipeHashed(flowing(head, rest, maxBytesOf(ctx.flags), (n) => {
          bytes += n;
          ctx.flowed?.(id, n, 0);
        }), new Writable({ write: (_chunk, _enc, done) => done() }));
        const landed = bytes;
        bytes = 0;
        // The object's own size too: its metadata may have been carried over onto other bytes.
        if ((theirs && sha256 !== theirs) || there.size !== landed)
          return { side: 'upload', reason: 'DEST_CONFLICT', detail: `a different object (${there.size} bytes) is already at ${ctx.store.uri(key)} (use --overwrite to replace it)`, retriable: false };
        ctx.emit({ kind: 'DL_OK', id, bytes: landed });
        ctx.emit({ kind: 'UP_OK', id, uri: ctx.store.uri(key), ext: type.ext, bytes: there.size, sha256, width: null, height: null, existed: true });
        return null;
      }
      // This id's own object, cut short by a kill before its sha256 was recorded, is written again.
      if (there && !compareAfter && !unfinishedWrite(there, id)) {
        dl.stream.destroy();
        return { side: 'upload', reason: 'DEST_CONFLICT', detail: `an object not written by ferry, or from another source, is already at ${ctx.store.uri(key)} (use --overwrite to replace it)`, retriable: false };
      }
    }
    // Counted live for PROGRESS (its DL_OK and UP_OK do not count them again).
    const body = flowing(head, rest, maxBytesOf(ctx.flags), (n) => {
      bytes += n;
      ctx.flowed?.(id, n, n);
    });
    const put = await ctx.store
      .put(key, body, {
        contentType: type.contentType,
        metadata: ferryMetadata({ id, source, runId: ctx.runId }),
        ifAbsent: compareAfter || unknown,
        ...(dl.size !== null ? { size: dl.size } : {}),
      })
      .catch((e: unknown) => {
        // Taken: by an object the bytes were compared with, or by what no write replaces.
        if (e instanceof StorageError && e.code === 'EXISTS' && !causeOf(e, [SourceError, CeilingError])) return e;
        throw e;
      });
    const landed = bytes;
    bytes = 0;
    if (put instanceof StorageError) {
      const uri = ctx.store.uri(key);
      // Taken, where the HEAD said nothing: the key exists now, and the next try's HEAD of
      // it (which credentials that may read see) decides as for any object there. Still
      // refused, it is FORBIDDEN: nothing says what is there.
      if (unknown) {
        await ctx.store.stat(key);
        return { side: 'upload', reason: 'UPLOAD_FAILED', detail: oneLine(`${put.message}: taken meanwhile`), retriable: true };
      }
      const detail = compareAfter ? `a different object is already at ${uri} (use --overwrite to replace it)` : conflictDetail({ kind: 'none' }, { sha256: '' }, uri, put.message);
      return { side: 'upload', reason: 'DEST_CONFLICT', detail: oneLine(detail), retriable: false };
    }
    if (landed < ctx.flags.minBytes && !put.existed) {
      await ctx.store.remove(key);
      return { side: 'validate', reason: landed === 0 ? 'EMPTY' : 'TOO_SMALL', detail: `${landed} bytes`, retriable: false };
    }
    ctx.emit({ kind: 'DL_OK', id, bytes: landed });
    ctx.emit({ kind: 'UP_OK', id, uri: ctx.store.uri(key), ext: type.ext, bytes: landed, sha256: put.sha256, width: null, height: null, existed: put.existed === true });
    return null;
  } catch (e) {
    dl.stream.destroy();
    const f = failureOf(e);
    if (f.side === 'download' && endedEarly(f.code ?? null, bytes, dl.size)) {
      return { side: 'download', reason: 'SHORT_BODY', detail: oneLine(`${bytes} of ${dl.size} bytes (${f.code})`), retriable: true };
    }
    return { ...f, detail: oneLine(f.detail) };
  }
}
