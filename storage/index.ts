import type { StorageAdapter, StorageError, StoreOptions } from './adapter.js';
import { FileStore } from './file.js';
import type { Place } from './uri.js';

export * from './adapter.js';
export * from './file.js';
export * from './layout.js';
export { processGone, writerGone, writerTag } from './process.js';
export * from './uri.js';
export * from './write-check.js';
export { abandonedMarker, markerName } from './markers.js';

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

const sharedS3 = async (options: StoreOptions) => (await import('./s3.js')).sharedS3Pool(options);

export type Readers = { open(place: Place): Promise<StorageAdapter>; close(): Promise<void> };

/**
 * Opens places that are only read (no conditional-write probe), where one run may name many
 * buckets (a manifest's s3:// URLs): every S3 bucket's client sends through one socket pool.
 * A pool per bucket kept its idle sockets until the end, so a unit over thousands of
 * buckets held a socket for each, and under `ulimit -n` its later buckets failed with
 * EMFILE. Close the stores, then this.
 */
export function openReaders(options: StoreOptions): Readers {
  const readOnly = { ...options, conditionalWrites: 'off' as const };
  let s3: ReturnType<typeof sharedS3> | undefined;
  return {
    open: async (place) => {
      if (place.scheme !== 's3') return openStore(place, readOnly);
      s3 ??= sharedS3(readOnly);
      return (await s3).open(place.bucket, place.prefix);
    },
    close: async () => {
      if (s3) (await s3).close();
    },
  };
}

/**
 * Why objects of `scheme` cannot be read at all with these options (no credentials to sign
 * S3 requests with, none for GCS), or null. A StorageError naming `what`; nothing is sent
 * to the store.
 */
export async function readCredentialsProblem(scheme: 's3' | 'gs', options: StoreOptions, what: string): Promise<StorageError | null> {
  if (scheme === 'gs') return (await import('./gcs.js')).gcsCredentialsProblem(options, what);
  return (await import('./s3.js')).s3CredentialsProblem(options, what);
}
