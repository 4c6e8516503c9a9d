/**
 * The one storage interface every backend implements (after rclone's Fs): a store is
 * rooted at a place and speaks in keys relative to it. Optional abilities are declared
 * as capabilities, so callers never special-case a backend.
 */
import type { Readable } from 'node:stream';

export type Capabilities = {
  /** create-if-absent is atomic and enforced (If-None-Match: *, ifGenerationMatch: 0, link(2)) */
  conditionalCreate: boolean;
  /** `stat` can report the sha256 ferry recorded (metadata) or compute it */
  sha256: boolean;
};

export type ObjectInfo = {
  key: string;
  size: number;
  /** ETag for object stores, mtime for files: what fingerprints a source */
  version: string;
  contentType?: string;
  metadata: Record<string, string>;
};

export type PutOptions = {
  contentType: string;
  metadata: Record<string, string>;
  /** true: fail with StorageError('EXISTS') when the key exists (where the backend can say so) */
  ifAbsent: boolean;
};

export type StorageErrorCode = 'NOT_FOUND' | 'EXISTS' | 'FORBIDDEN' | 'THROTTLED' | 'TRANSIENT' | 'FATAL';

/** Errors carry a classification that callers read, never their message (STYLE.md). */
export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

export interface StorageAdapter {
  readonly capabilities: Capabilities;
  /** The URI recorded in outputs for a key. */
  uri(key: string): string;
  /** Keys under a relative prefix ('' for all), recursively, in no promised order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Metadata of a key, or null when it does not exist. */
  stat(key: string): Promise<ObjectInfo | null>;
  read(key: string): Promise<Readable>;
  /** Writes a whole object atomically: readers never see a partial one. */
  put(key: string, body: Buffer, options: PutOptions): Promise<void>;
  remove(key: string): Promise<void>;
  /**
   * Removes what killed writers left under a prefix: temporary files, open multipart
   * uploads. Call it when no writer of this run is active there.
   */
  cleanup(prefix: string): Promise<void>;
}
