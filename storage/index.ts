import type { StorageAdapter, StoreOptions } from './adapter.js';
import { FileStore } from './file.js';
import type { Place } from './uri.js';

export * from './adapter.js';
export * from './file.js';
export * from './layout.js';
export { processGone, writerGone, writerTag } from './process.js';
export * from './uri.js';
export * from './write-check.js';

/** Opens the store rooted at a place (for object stores, probing what the endpoint enforces). */
export async function openStore(place: Place, options: StoreOptions = {}): Promise<StorageAdapter> {
  switch (place.scheme) {
    case 'file':
      return new FileStore(place.path);
    // Each SDK is loaded only when its scheme is used (tens of MB of memory each).
    case 's3':
      return (await import('./s3.js')).openS3Store(place.bucket, place.prefix, options);
    case 'gs':
      return (await import('./gcs.js')).openGcsStore(place.bucket, place.prefix, options);
  }
}
