import { type StorageAdapter, StorageError } from './adapter.js';
import { abandonedMarker, markerName } from './markers.js';

/** What the names of the write check's markers start with (markers.ts). */
export const WRITE_CHECK_MARKER = '.ferry-write-check-';

/**
 * Fails early, before any download, when a store cannot take a write: a marker written and
 * removed. Without it a read-only folder, a file where the folder should be, a bucket that
 * does not exist or credentials that may not write surface only as a ledger of failed
 * uploads, every object downloaded for nothing. Only the write decides: a store that lets
 * ferry write but not delete (a drop bucket) keeps the marker. What killed checks left, the
 * next check of the place removes (removeAbandonedMarkers). With `only: 'a refusal'` (a
 * destination), a busy or failing store passes: its objects' uploads are retried, and
 * ledgered if they still fail; one that no connection reaches, or that takes the write's
 * connection and never answers, in a few tries does not.
 */
export async function checkWrites(store: StorageAdapter, only: 'any failure' | 'a refusal' = 'any failure'): Promise<void> {
  const marker = markerName(WRITE_CHECK_MARKER);
  for (let attempt = 1; ; attempt++) {
    try {
      await store.put(marker, Buffer.from('ferry'), { contentType: 'text/plain', metadata: {}, ifAbsent: false });
      break;
    } catch (e) {
      if (only === 'a refusal' && e instanceof StorageError && (e.code === 'TRANSIENT' || e.code === 'THROTTLED')) {
        // A store that answers, even "busy", is there; one no connection reaches, or one
        // that never answers a small write (something else listening on that port), is more
        // likely a wrong endpoint than a blip: asked again a few times, then refused, before
        // every object is downloaded only to fail its upload.
        const missing = silence(e);
        if (missing === null) return;
        if (attempt < REACH_TRIES) {
          await new Promise((resolve) => setTimeout(resolve, attempt * 1000));
          continue;
        }
        throw new StorageError(e.code, `${e.message} (${missing} in ${REACH_TRIES} tries: is the endpoint right?)`, { cause: e });
      }
      throw e;
    }
  }
  await store.remove(marker).catch(() => undefined);
  await removeAbandonedMarkers(store);
}

/**
 * Best effort: the markers that killed checks left at the store's root (a kill between a
 * marker's write and its removal), and what a check killed in the middle of its marker's
 * write left of it (a folder's temporary file in its `.ferry-tmp/`), once the store took this
 * check's write. A marker is harmless, and listing or removing may not be allowed (a drop bucket).
 */
async function removeAbandonedMarkers(store: StorageAdapter): Promise<void> {
  try {
    const abandoned = new Set<string>();
    for await (const key of store.rootKeys(WRITE_CHECK_MARKER)) if (abandonedMarker(key, WRITE_CHECK_MARKER)) abandoned.add(key);
    await Promise.all([...abandoned].map((key) => Promise.all([store.remove(key).catch(() => undefined), store.discardPartial(key).catch(() => undefined)])));
  } catch {
    // not listed: left for a later check
  }
}

/** How many times a destination no connection reaches is tried (1 s, then 2 s apart). */
const REACH_TRIES = 3;

/** Errors that say no connection could be made at all (refused, no such host, no route). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_NONAME', 'EHOSTUNREACH', 'ENETUNREACH']);
/**
 * Errors that say no answer came within --timeout: undici's (the lean PutObject's), Node's
 * and the SDK's handler's (a TimeoutError named, ETIMEDOUT its code).
 */
const UNANSWERED = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT']);

/** What was missing, 'no connection' or 'no answer', when nothing of the store was met; else null. */
function silence(e: unknown): 'no connection' | 'no answer' | null {
  for (let x = e, depth = 0; typeof x === 'object' && x !== null && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    const code = String((x as { code?: unknown }).code);
    if (UNREACHABLE.has(code)) return 'no connection';
    if (UNANSWERED.has(code) || (x as { name?: unknown }).name === 'TimeoutError') return 'no answer';
  }
  return null;
}
