import { type StorageAdapter, StorageError } from './adapter.js';

/**
 * Fails early, before any download, when a store cannot take a write: a marker written and
 * removed. Without it a read-only folder, a file where the folder should be, a bucket that
 * does not exist or credentials that may not write surface only as a ledger of failed
 * uploads, every object downloaded for nothing. Only the write decides: a store that lets
 * ferry write but not delete (a drop bucket) keeps the marker. With `only: 'a refusal'`
 * (a destination), a busy or failing store passes: its objects' uploads are retried, and
 * ledgered if they still fail.
 */
export async function checkWrites(store: StorageAdapter, only: 'any failure' | 'a refusal' = 'any failure'): Promise<void> {
  const marker = `.ferry-write-check-${process.pid}-${Date.now()}`;
  try {
    await store.put(marker, Buffer.from('ferry'), { contentType: 'text/plain', metadata: {}, ifAbsent: false });
  } catch (e) {
    if (only === 'a refusal' && e instanceof StorageError && (e.code === 'TRANSIENT' || e.code === 'THROTTLED')) return;
    throw e;
  }
  await store.remove(marker).catch(() => undefined);
}
