import type { StorageAdapter, StoreOptions } from './adapter.js';
import { FileStore } from './file.js';
import { type Place, UriError, describePlace } from './uri.js';

export * from './adapter.js';
export * from './file.js';
export * from './layout.js';
export * from './uri.js';

/** Opens the store rooted at a place (for object stores, probing what the endpoint enforces). */
export async function openStore(place: Place, _options: StoreOptions = {}): Promise<StorageAdapter> {
  if (place.scheme === 'file') return new FileStore(place.path);
  throw new UriError(`${describePlace(place)}: ${place.scheme}:// stores are not supported in this version (local folders only)`);
}
