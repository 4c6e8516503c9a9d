import type { StorageAdapter, StoreOptions } from './adapter.js';
import { FileStore } from './file.js';
import { openGcsStore } from './gcs.js';
import { openS3Store } from './s3.js';
import type { Place } from './uri.js';

export * from './adapter.js';
export * from './file.js';
export * from './layout.js';
export * from './uri.js';

/** Opens the store rooted at a place (for object stores, probing what the endpoint enforces). */
export async function openStore(place: Place, options: StoreOptions = {}): Promise<StorageAdapter> {
  switch (place.scheme) {
    case 'file':
      return new FileStore(place.path);
    case 's3':
      return openS3Store(place.bucket, place.prefix, options);
    case 'gs':
      return openGcsStore(place.bucket, place.prefix, options);
  }
}
