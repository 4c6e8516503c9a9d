import { type StorageAdapter, StorageError } from './adapter.js';

/**
 * Fails early, before any download, when a store cannot take a write: a marker written and
 * removed. Without it a read-only folder, a file where the folder should be, a bucket that
 * does not exist or credentials that may not write surface only as a ledger of failed
 * uploads, every object downloaded for nothing. Only the write decides: a store that lets
 * ferry write but not delete (a drop bucket) keeps the marker. With `only: 'a refusal'`
 * (a destination), a busy or failing store passes: its objects' uploads are retried, and
 * ledgered if they still fail; one that no connection reaches in a few tries does not.
 */
export async function checkWrites(store: StorageAdapter, only: 'any failure' | 'a refusal' = 'any failure'): Promise<void> {
  const marker = `.ferry-write-check-${process.pid}-${Date.now()}`;
  for (let attempt = 1; ; attempt++) {
    try {
      await store.put(marker, Buffer.from('ferry'), { contentType: 'text/plain', metadata: {}, ifAbsent: false });
      break;
    } catch (e) {
      if (only === 'a refusal' && e instanceof StorageError && (e.code === 'TRANSIENT' || e.code === 'THROTTLED')) {
        // A store that answers, even "busy", is there; one no connection reaches is more
        // likely a wrong endpoint than a blip: asked again a few times, then refused, before
        // every object is downloaded only to fail its upload.
        if (!unreachable(e)) return;
        if (attempt < REACH_TRIES) {
          await new Promise((resolve) => setTimeout(resolve, attempt * 1000));
          continue;
        }
        throw new StorageError(e.code, `${e.message} (no connection in ${REACH_TRIES} tries: is the endpoint right?)`, { cause: e });
      }
      throw e;
    }
  }
  await store.remove(marker).catch(() => undefined);
}

/** How many times a destination no connection reaches is tried (1 s, then 2 s apart). */
const REACH_TRIES = 3;

/** Errors that say no connection could be made at all (refused, no such host, no route). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_NONAME', 'EHOSTUNREACH', 'ENETUNREACH']);

function unreachable(e: unknown): boolean {
  for (let x = e, depth = 0; typeof x === 'object' && x !== null && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    if (UNREACHABLE.has(String((x as { code?: unknown }).code))) return true;
  }
  return false;
}
