/**
 * The one storage interface every backend implements (after rclone's Fs): a store is
 * rooted at a place and speaks in keys relative to it. Optional abilities are declared
 * as capabilities, so callers never special-case a backend. One conformance suite
 * (storage/conformance.test.ts) runs against every backend on real local servers.
 */
import type { Readable } from 'node:stream';

export type Capabilities = {
  /**
   * Create-if-absent is atomic and enforced by this endpoint (If-None-Match: *,
   * ifGenerationMatch: 0, link(2)). Decided per endpoint, not per SDK: local emulators
   * accept the condition and ignore it, so a custom endpoint is probed.
   */
  conditionalCreate: boolean;
};

export type ObjectInfo = {
  key: string;
  size: number;
  /** ETag (object stores) or size+mtime (files): what fingerprints a source */
  version: string;
  contentType?: string;
  /** user metadata, names lower-case without any x-amz-meta- prefix */
  metadata: Record<string, string>;
  /**
   * The MD5 of the bytes (hex) as the store itself computed it, where it guarantees one
   * (GCS's md5Hash; not S3's ETag, which is no MD5 under SSE-KMS nor for a multipart upload).
   * Unlike user metadata, no tool can carry it over onto other bytes.
   */
  md5?: string;
  /**
   * Set by a listing only: why the name it lists cannot be read (a folder's symbolic link
   * that leads nowhere or loops), so that a manifest behind a missing mount is not skipped
   * without a word.
   */
  unreadable?: string;
};

export type PutOptions = {
  contentType: string;
  /** user metadata (ferry-id, ferry-sha256, ferry-source, ferry-run) */
  metadata: Record<string, string>;
  /** fail with StorageError('EXISTS') when the key exists (enforced only where conditionalCreate) */
  ifAbsent: boolean;
  /** the body's length when known (a stream's Content-Length) */
  size?: number;
  /**
   * A Buffer body's sha256 (hex) when the caller has it already: stores use it instead of
   * hashing the same bytes again (S3 signs it as x-amz-content-sha256, so it is checked).
   */
  sha256?: string;
};

export type PutResult = {
  /** sha256 of the bytes written, hex: computed while streaming a Readable body */
  sha256: string;
  /**
   * true when `ifAbsent` found the key taken by identical bytes, so nothing was written
   * (stores that can compare after streaming: files). A different object there is EXISTS.
   */
  existed?: boolean;
};

export type ReadResult = {
  body: Readable;
  info: ObjectInfo;
  /** the bytes the body carries, as the answer announced them; null when it did not (a chunked answer) */
  length: number | null;
};

/** KEY_TOO_LONG: the store can never hold an object under that name (no retry helps). */
export type StorageErrorCode = 'NOT_FOUND' | 'EXISTS' | 'FORBIDDEN' | 'THROTTLED' | 'TRANSIENT' | 'KEY_TOO_LONG' | 'FATAL';

/** Errors carry a classification that callers read, never their message (STYLE.md). */
export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options);
    this.name = 'StorageError';
    this.status = options?.status;
  }
  readonly status: number | undefined;
}

/**
 * What a cleanup had to leave because the store refused to list or remove it (credentials
 * that may write objects but not list open multipart uploads, say), one line for the
 * caller to log; null when it did all it should. A refusal is no failure of the unit: its
 * objects are written, and a bucket lifecycle rule removes what killed runs left.
 */
export type CleanupNote = string | null;

export interface StorageAdapter {
  readonly capabilities: Capabilities;
  /** The URI recorded in outputs for a key (s3://b/k, gs://b/k, file:///p). */
  uri(key: string): string;
  /** Objects under a relative prefix ('' for all), recursively, paginated; no promised order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * The keys right at the store's root (no folder entered) whose names start with `start`,
   * and those such keys that an interrupted write left only a partial of (a folder's
   * temporary file, which discardPartial removes): how the markers ferry writes there are
   * found again (write-check.ts). A key may come twice.
   */
  rootKeys(start: string): AsyncIterable<string>;
  /** Metadata of a key, or null when it does not exist. */
  stat(key: string): Promise<ObjectInfo | null>;
  /** The object's bytes as a stream, with its metadata. NOT_FOUND when absent. */
  read(key: string): Promise<ReadResult>;
  /**
   * Writes a whole object; readers never see a partial one. A Buffer goes in one request
   * with an integrity check (Content-MD5 or a checksum header where the backend takes
   * one); a Readable is streamed (multipart or resumable above the part size) and never
   * buffered whole, its sha256 computed on the way and recorded in the metadata.
   */
  put(key: string, body: Buffer | Readable, options: PutOptions): Promise<PutResult>;
  remove(key: string): Promise<void>;
  /**
   * Why this store could never hold an object at `key`, known without a request
   * (KEY_TOO_LONG: past the object-name limit, the store's prefix included), or null.
   */
  keyError(key: string): StorageError | null;
  /** The sha256 of a key's bytes, for stores that keep no metadata of their own (files). */
  contentSha256?(key: string): Promise<string | null>;
  /**
   * Removes what killed writers left for one unit's objects (`prefix` = the unit's key
   * prefix, `isUnitObjectKey`): temporary files, open multipart uploads; nested units'
   * are theirs. Call it when no writer of this run is active there. An open upload names
   * no writer, so only those of keys that `owns` (the caller's tasks' keys: layout.ts
   * unitKeyOwner) are aborted: another migration may be writing its own objects under the
   * same prefix. What the store's permissions keep it from seeing or removing is a note for
   * the caller to log.
   */
  cleanup(prefix: string, owns: (key: string) => boolean): Promise<CleanupNote>;
  /**
   * Removes what interrupted writes of exactly this key left (a temporary file, an open
   * multipart upload), whoever wrote them; the key itself is untouched. Call it when no
   * writer of this run is writing the key. Its note is cleanup's.
   */
  discardPartial(key: string): Promise<CleanupNote>;
  /** Releases sockets and timers. */
  close(): Promise<void>;
}

/** Options for opening any store; each backend reads its own part. */
export type StoreOptions = {
  s3?: {
    /** custom endpoint (MinIO, R2, OSS, Ceph, local servers); else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL */
    endpoint?: string;
    region?: string;
    forcePathStyle?: boolean;
    /**
     * Requests sent unsigned, needing no credentials (`--s3-no-sign-request`, as the aws
     * CLI's): for sources in public buckets. Never set for a place ferry writes.
     */
    unsigned?: boolean;
  };
  gcs?: {
    /** custom endpoint; else STORAGE_EMULATOR_HOST */
    endpoint?: string;
    projectId?: string;
    /**
     * Requests sent with no credentials (`--gcs-no-sign-request`): for sources in public
     * buckets. Never set for a place ferry writes.
     */
    unsigned?: boolean;
  };
  /** sockets per store, sized to the worker's concurrency */
  maxSockets?: number;
  /**
   * Tries per request inside the SDK (default 3). The worker sets 1: its own retry loop
   * counts every try of a stage, so retries never multiply.
   */
  maxAttempts?: number;
  /** idle time allowed on a request's socket, ms (`--timeout`; default 120 s) */
  timeoutMs?: number;
  /** `--conditional-writes`: auto probes custom endpoints once per bucket */
  conditionalWrites?: 'auto' | 'on' | 'off';
  /** streamed bodies: part size (default 64 MiB) and parts buffered/uploading at once (default 3) */
  partSize?: number;
  queueSize?: number;
};

/** Reads user metadata written by ferry under either spelling. */
export const FERRY_META = { id: 'ferry-id', sha256: 'ferry-sha256', source: 'ferry-source', run: 'ferry-run' } as const;

/** S3 and GCS both refuse an object name over 1,024 bytes of UTF-8 (the bucket's prefix included). */
export const MAX_OBJECT_NAME_BYTES = 1024;

/**
 * KEY_TOO_LONG when a store would refuse `name`, the whole object name a key becomes in its
 * bucket, else null: decided before any request, so it is never retried. The message says
 * why before naming `uri`, which is long by definition (a one-line detail may cut its end).
 */
export function objectNameError(name: string, uri: string): StorageError | null {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes <= MAX_OBJECT_NAME_BYTES) return null;
  return new StorageError('KEY_TOO_LONG', `an object name of ${bytes} bytes (UTF-8), over the ${MAX_OBJECT_NAME_BYTES} that S3 and GCS take: ${uri}`);
}

/** `name`, or KEY_TOO_LONG thrown where the store would refuse it (objectNameError). */
export function checkedObjectName(name: string, uri: string): string {
  const error = objectNameError(name, uri);
  if (error) throw error;
  return name;
}
