/**
 * Idempotent upload of one validated payload (DESIGN.md, "Writing objects, idempotently"):
 * a conditional create where the store enforces one, a check first where it does not,
 * and an unconditional write under --overwrite. An object already there with the same
 * sha256 is success (`existed`); anything else there is DEST_CONFLICT.
 */
import { hash } from 'node:crypto';
import type { Reason } from '../protocol/index.js';
import { type ObjectInfo, type StorageAdapter, StorageError, keyId } from '../storage/index.js';
import { type Lease, type Verdict, NO_LEASE } from './aimd.js';
import { MAX_BACKOFF_MS, retryWaitMs, sleep, waitPastBound } from './backoff.js';
import { retryAfterMs } from './download.js';

export type Payload = { id: string; key: string; body: Buffer; contentType: string; sha256: string; source: string; runId: string };
export type UploadResult = { ok: true; existed: boolean; attempts: number } | { ok: false; reason: Reason; attempts: number; detail: string };
export type UploadOptions = {
  overwrite: boolean;
  retries: number;
  backoffBaseMs?: number;
  /** The jitter's source (tests fix it). */
  random?: () => number;
  /** A slot of the destination, held for one try (its HEAD and PUT), never across a backoff. */
  admit?: () => Promise<Lease>;
};

type Store = StorageAdapter;

/**
 * What identifies an object ferry wrote: `ferry-id` is the key-id (percent-encoded, or
 * hashed when long), `ferry-source` the source's size and ETag. A streamed object's
 * sha256 is added by the store once known.
 */
export function ferryMetadata(p: { id: string; source: string; runId: string; sha256?: string }): Record<string, string> {
  return { 'ferry-id': keyId(p.id), ...(p.sha256 ? { 'ferry-sha256': p.sha256 } : {}), 'ferry-source': p.source, 'ferry-run': p.runId };
}

/** The longest ETag `ferry-source` carries as it came: S3 takes 2 KB of user metadata in all. */
const MAX_SOURCE_ETAG = 200;

/**
 * `ferry-source`: the source's size and ETag, compared for equality only (a re-run finds a
 * large object's bytes whole by it). An ETag a store could refuse as metadata, past
 * MAX_SOURCE_ETAG or not printable ASCII (HTTP allows any byte past 0x80 in one; S3 signs
 * and limits header bytes), is carried as `h-` + its sha256, which compares as well.
 */
export function sourceTag(size: number | null, etag: string | null): string {
  const e = etag ?? '';
  return `${size ?? ''}:${e.length <= MAX_SOURCE_ETAG && /^[\x20-\x7e]*$/.test(e) ? e : `h-${hash('sha256', e, 'hex')}`}`;
}

/**
 * Whether the object at a key is this id's own, cut short by a kill: ferry wrote it for
 * this id (its `ferry-id`) but its sha256 was never recorded, as when a run dies between a
 * streamed upload's last byte and the metadata patch that records its sha256. Nothing
 * says what its bytes are, and it is no one else's: it is written again, as any task that
 * was in flight when a run died (DESIGN.md, "Crash-proof"), never refused as a conflict.
 */
export function unfinishedWrite(info: ObjectInfo, id: string): boolean {
  return info.metadata['ferry-id'] === keyId(id) && info.metadata['ferry-sha256'] === undefined;
}

/**
 * What stands at a key: nothing a store can describe (absent, or not an object at all: a
 * folder at a folder store's key), or an object, its size and sha256 (recorded metadata,
 * or the bytes themselves; null when neither says), and whether it is an unfinished write
 * of this id.
 */
export type There = { kind: 'none' } | { kind: 'object'; size: number; sha256: string | null; md5: string | undefined; unfinished: boolean };

async function whatIsThere(store: Store, key: string, id: string): Promise<There> {
  const info = await store.stat(key);
  if (!info) return { kind: 'none' };
  const sha256 = info.metadata['ferry-sha256'] ?? (store.contentSha256 ? await store.contentSha256(key) : null);
  return { kind: 'object', size: info.size, sha256, md5: info.md5, unfinished: sha256 === null && unfinishedWrite(info, id) };
}

/**
 * The same bytes as the payload: its sha256, its size and, where the store computed one,
 * its MD5. Metadata survives tools that rewrite an object's bytes and copy its metadata
 * along, so the recorded sha256 alone is not trusted where the object's own size or the
 * store's own hash says otherwise.
 */
function same(there: There, p: Payload): boolean {
  if (there.kind !== 'object' || there.sha256 !== p.sha256 || there.size !== p.body.length) return false;
  return there.md5 === undefined || there.md5 === hash('md5', p.body, 'hex');
}

/**
 * Why an object at the key is not this payload, naming the key's URI (one line); `refusal`,
 * the store's own word when no object is there to describe (a folder at the key, a file
 * where one of its folders should be).
 */
export function conflictDetail(there: There, p: { sha256: string }, uri: string, refusal?: string): string {
  const fix = '(use --overwrite to replace it)';
  if (there.kind === 'none') return `${uri} is taken by something that is not an object${refusal ? ` (${refusal})` : ''}, or was removed meanwhile: move it away, then replay with --reasons DEST_CONFLICT`;
  if (there.sha256 === null) return `an object without ferry metadata (${there.size} bytes) is already at ${uri} ${fix}`;
  if (there.sha256 === p.sha256) return `an object whose bytes (${there.size}) are not the ones its ferry-sha256 names, edited since, is already at ${uri} ${fix}`;
  return `a different object (sha256 ${there.sha256.slice(0, 16)}…, ${there.size} bytes) is already at ${uri} ${fix}`;
}

async function once(store: Store, p: Payload, overwrite: boolean): Promise<{ existed: boolean } | { conflict: string }> {
  const options = { contentType: p.contentType, metadata: ferryMetadata(p), ifAbsent: !overwrite, sha256: p.sha256 };
  if (!overwrite && !store.capabilities.conditionalCreate) {
    const there = await whatIsThere(store, p.key, p.id);
    if (there.kind === 'object' && !there.unfinished) return same(there, p) ? { existed: true } : { conflict: conflictDetail(there, p, store.uri(p.key)) };
    options.ifAbsent = false;
  }
  try {
    const put = await store.put(p.key, p.body, options);
    return { existed: put.existed === true };
  } catch (e) {
    if (!(e instanceof StorageError) || e.code !== 'EXISTS') throw e;
    const there = await whatIsThere(store, p.key, p.id);
    if (!overwrite && same(there, p)) return { existed: true };
    if (there.kind === 'object' && there.unfinished) return { existed: (await store.put(p.key, p.body, { ...options, ifAbsent: false })).existed === true };
    return { conflict: conflictDetail(there, p, store.uri(p.key), e.message) };
  }
}

/** What a failed store call says about the destination's limit: SlowDown and 429/503 lower it. */
export function storeVerdict(e: unknown): Verdict {
  return e instanceof StorageError && e.code === 'THROTTLED' ? 'throttled' : 'neutral';
}

/** One try, holding a destination slot while it talks to the store. */
async function held(store: Store, p: Payload, opts: UploadOptions): Promise<Awaited<ReturnType<typeof once>>> {
  const lease = opts.admit ? await opts.admit() : NO_LEASE;
  try {
    const r = await once(store, p, opts.overwrite);
    lease.release('ok');
    return r;
  } catch (e) {
    lease.release(storeVerdict(e));
    throw e;
  }
}

export async function uploadPayload(store: Store, p: Payload, opts: UploadOptions): Promise<UploadResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await held(store, p, opts);
      if ('conflict' in r)
        return {
          ok: false,
          reason: 'DEST_CONFLICT',
          attempts: attempt,
          detail: r.conflict,
        };
      return { ok: true, existed: r.existed, attempts: attempt };
    } catch (e) {
      const code = e instanceof StorageError ? e.code : 'FATAL';
      const detail = (e as Error).message;
      if (code === 'FORBIDDEN' || code === 'KEY_TOO_LONG') return { ok: false, reason: code, attempts: attempt, detail };
      const retriable = code === 'TRANSIENT' || code === 'THROTTLED';
      const asked = retriable ? retryAfterMs(e) : null;
      const throttled = waitPastBound(asked, detail);
      if (throttled !== null) return { ok: false, reason: 'THROTTLED', attempts: attempt, detail: throttled };
      if (!retriable || attempt > opts.retries) return { ok: false, reason: code === 'THROTTLED' ? 'THROTTLED' : 'UPLOAD_FAILED', attempts: attempt, detail };
      await sleep(retryWaitMs(attempt, asked, opts.backoffBaseMs ?? 250, MAX_BACKOFF_MS, opts.random));
    }
  }
}
