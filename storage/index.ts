import type { StorageAdapter } from './adapter.js';
import { FileStore } from './file.js';
import { type Place, UriError, describePlace } from './uri.js';

export * from './adapter.js';
export * from './file.js';
export * from './layout.js';
export * from './uri.js';

/** Opens the store rooted at a place. */
export function openStore(place: Place): StorageAdapter & { sha256?(key: string): Promise<string | null> } {
  if (place.scheme === 'file') return new FileStore(place.path);
  throw new UriError(`${describePlace(place)}: ${place.scheme}:// stores are not supported in this version (local folders only)`);
}
