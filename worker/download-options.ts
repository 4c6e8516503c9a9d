/** The download stage's options, built once per worker from its flags. */
import { type WorkerFlags, maxBytesOf, storeOptionsOf } from '../protocol/index.js';
import { type Place, type StorageAdapter, describePlace, openReaders } from '../storage/index.js';
import { createHttpClient } from '../storage/http.js';
import type { DownloadOptions } from './download.js';
import { Semaphore } from './limit.js';

/** Buffers of small bodies stay under this, whatever the concurrency. */
const SMALL_BODIES_BUDGET = 256 * 2 ** 20;
/** Bodies past the small threshold buffered at once (each up to --max-bytes). */
const LARGE_BODY_SLOTS = 2;

/** `--origin-header HOST=Name: value` (repeatable) as the client's per-host header map. */
export function originHeaders(list: readonly string[]): Map<string, [string, string][]> {
  const map = new Map<string, [string, string][]>();
  for (const item of list) {
    const eq = item.indexOf('=');
    const colon = item.indexOf(':', eq);
    const host = item.slice(0, eq).toLowerCase();
    const entry: [string, string] = [item.slice(eq + 1, colon).trim(), item.slice(colon + 1).trim()];
    map.set(host, [...(map.get(host) ?? []), entry]);
  }
  return map;
}

/**
 * Object-store sources, one client per bucket, opened on first use and kept. An open that
 * fails (a custom endpoint down or busy at its probe) is forgotten: the task's next try, or
 * the next task of that bucket, opens it again instead of meeting the same failure for the
 * worker's whole life; and closing skips it, having nothing to close.
 */
export function sourceStores(f: WorkerFlags): { get: (place: Place) => Promise<StorageAdapter>; close: () => Promise<void> } {
  const open = new Map<string, Promise<StorageAdapter>>();
  // Sources are only read (openReaders: one client for every S3 bucket); unsigned where asked.
  const base = storeOptionsOf(f);
  const readers = openReaders({
    ...base,
    s3: { ...base.s3, ...(f.s3NoSignRequest ? { unsigned: true } : {}) },
    gcs: { ...base.gcs, ...(f.gcsNoSignRequest ? { unsigned: true } : {}) },
    maxAttempts: 1,
  });
  return {
    get: (place) => {
      const id = describePlace(place);
      const known = open.get(id);
      if (known) return known;
      const opening = readers.open(place);
      open.set(id, opening);
      opening.catch(() => {
        if (open.get(id) === opening) open.delete(id);
      });
      return opening;
    },
    close: async () => {
      const stores = await Promise.allSettled(open.values());
      await Promise.all(stores.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
      await readers.close();
    },
  };
}

export function downloadOptions(f: WorkerFlags, stores: (place: Place) => Promise<StorageAdapter>): DownloadOptions {
  const client = createHttpClient({
    timeoutMs: f.timeout,
    minRate: f.minRate,
    maxRedirects: f.maxRedirects,
    allowPrivateNetwork: f.allowPrivateNetwork,
    // As many sockets as requests may be in flight: the per-host limits (aimd.ts) decide how
    // many a host gets; a lower cap here would only queue requests inside the pool.
    connectionsPerHost: f.concurrency,
    originHeaders: originHeaders(f.originHeader),
  });
  // Memory stays under about SMALL_BODIES_BUDGET + LARGE_BODY_SLOTS × --max-bytes.
  const threshold = Math.min(8 * 2 ** 20, Math.max(256 * 1024, Math.floor(SMALL_BODIES_BUDGET / f.concurrency)));
  return {
    client,
    retries: f.retries,
    maxBytes: maxBytesOf(f),
    largeBodies: { threshold, slots: new Semaphore(LARGE_BODY_SLOTS) },
    // Under --profile any nothing needs the whole body: big ones flow through as streams.
    ...(f.profile === 'any' ? { streamAbove: f.multipartThreshold } : {}),
    stores,
    ...(f.localSourceRoot ? { localSourceRoot: f.localSourceRoot } : {}),
  };
}
