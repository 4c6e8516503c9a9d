/**
 * S3 and S3-compatible stores (AWS SDK v3). One client per store, with its own keep-alive
 * socket pool sized to the worker's concurrency.
 *
 * Writes:
 * - A Buffer goes in one PutObject. Below 2 MiB it is the lean PutObject of
 *   storage/s3-put.ts (the SDK's signer and resolved endpoint, sent with undici, its sha256
 *   signed so S3 checks the body), where the SDK's per-request middleware would cost
 *   several times the request itself; larger, or where the endpoint needs more than plain
 *   SigV4, the SDK sends it with Content-MD5. Either way a corrupted body is refused.
 * - A Readable is hashed (sha256) while it streams. A body shorter than one part ends up a
 *   single PutObject carrying `ferry-sha256` like a Buffer; a longer one goes through
 *   a multipart upload in parts (storage/multipart.ts), and `ferry-sha256` is added afterwards by a
 *   metadata-only CopyObject (S3 copies up to 5 GiB; above that it is in the outputs only).
 *   Memory: `(queueSize + 1) × partSize` of part buffers, reused.
 * - Conditional create (`If-None-Match: *`) is sent only where the endpoint enforces it
 *   (`capabilities.conditionalCreate`), on the single PutObject or on
 *   CompleteMultipartUpload (AWS enforces it on both); a refused completion is aborted.
 *
 * Errors are classified on codes and HTTP status, never on messages (classifyS3Error),
 * the SDK's and the lean path's alike.
 */
import { createHash, hash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { isUnitObjectKey } from './layout.js';
import { abandonedMarker, markerName } from './markers.js';
import { multipartUpload, tooManyParts } from './multipart.js';
import { CLOCK_SKEW_CODES, EXPECT_CONTINUE_BYTES, type LeanPut, type LeanPutInput, type LeanPutOptions, openLeanPut } from './s3-put.js';
import { envProxyRoute, proxyFailure, s3Agents } from './s3-proxy.js';
import {
  type Capabilities,
  type CleanupNote,
  FERRY_META,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  type ReadResult,
  type StorageAdapter,
  StorageError,
  checkedObjectName,
  objectNameError,
  MAX_OBJECT_NAME_BYTES,
  type StorageErrorCode,
  type StoreOptions,
} from './adapter.js';

const MiB = 2 ** 20;
const DEFAULT_PART_SIZE = 64 * MiB;
const DEFAULT_QUEUE_SIZE = 3;
const DEFAULT_MAX_SOCKETS = 64;
/** Tries per request, as the SDK's own default. */
const DEFAULT_MAX_ATTEMPTS = 3;
/** The largest object S3 copies in one CopyObject. */
const MAX_COPY_BYTES = 5 * 2 ** 30;
/** Multipart uploads aborted at once by cleanup. */
const ABORT_CONCURRENCY = 16;
/** Marker keys of the conditional-write probe; never listed as objects. */
export const PROBE_MARKER = '.ferry-probe-';

/** How `capabilities.conditionalCreate` was decided, for callers to log. */
export type ConditionalWritesDecision = {
  enabled: boolean;
  /** `option`: --conditional-writes on/off; `aws`: AWS itself; `probe`: a custom endpoint tested */
  decidedBy: 'option' | 'aws' | 'probe';
  /** one line: the endpoint probed and what it answered */
  detail: string;
};

// ---------------------------------------------------------------------------------------
// Errors

type SdkErrorShape = { name?: unknown; Code?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown; clockSkewCorrected?: unknown } };

const FORBIDDEN_NAMES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'AllAccessDisabled']);
const THROTTLED_NAMES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'TooManyRequestsException', 'RequestThrottled']);
const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket', 'NoSuchUpload']);
const EXISTS_NAMES = new Set(['PreconditionFailed']);
const TRANSIENT_NAMES = new Set([
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'InternalError', 'ServiceUnavailable', 'OperationAborted',
  // a conditional write that met a concurrent one of its key: nothing says the key is taken, and AWS asks for it again
  'ConditionalRequestConflict',
  // the body S3 got is not the one sent (its sha256, its MD5, its length): damaged on the way, whole when sent again
  'XAmzContentSHA256Mismatch', 'BadDigest', 'IncompleteBody',
]);
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  // no file descriptor left for a socket: this process's state, not the object's (an HTTP source's RESET)
  'EMFILE', 'ENFILE',
  // undici's (the lean PutObject): a socket closed or reset, a timeout, a response cut short
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/**
 * A refusal of this machine's clock, not of the request: S3 refuses a request signed more
 * than 15 min from its own time (RequestTimeTooSkewed, a 403), and the SDK's signer, as the
 * lean PutObject's, learns the offset from the refusal's Date (`clockSkewCorrected`), so
 * the next try is signed at S3's time. A HEAD's refusal has no body to name it: a bare 403
 * ('Forbidden') that corrected the clock is taken for one.
 */
function clockRefusal(status: number | undefined, name: string, corrected: boolean): boolean {
  return CLOCK_SKEW_CODES.has(name) || (corrected && status === 403 && !FORBIDDEN_NAMES.has(name));
}

function codeOf(status: number | undefined, name: string, errno: string, corrected = false): StorageErrorCode {
  if (status === 412 || EXISTS_NAMES.has(name)) return 'EXISTS';
  if (clockRefusal(status, name, corrected)) return 'TRANSIENT';
  // An endpoint whose own limit is lower than S3's says so in a 400.
  if (name === 'KeyTooLongError') return 'KEY_TOO_LONG';
  if (status === 404 || NOT_FOUND_NAMES.has(name)) return 'NOT_FOUND';
  if (status === 401 || status === 403 || FORBIDDEN_NAMES.has(name)) return 'FORBIDDEN';
  // S3 answers 503 Slow Down when it wants fewer requests: back off, as for 429.
  if (status === 429 || status === 503 || THROTTLED_NAMES.has(name)) return 'THROTTLED';
  if ((status !== undefined && status >= 500) || TRANSIENT_NAMES.has(name) || NETWORK_CODES.has(errno)) return 'TRANSIENT';
  return 'FATAL';
}

/** What the SDK's credential chain throws when no source gave credentials (or a named profile has none). */
const CREDENTIALS_ERROR = 'CredentialsProviderError';

/**
 * No credentials: refused as a 401 would be (FORBIDDEN), before any request. The chain's
 * own text is kept, one line: it names what was tried (a profile, the providers), and no
 * request detail or secret, which it never had.
 */
function noCredentials(e: Error, what: string): StorageError {
  const said = e.message.replace(/\s+/g, ' ').trim().slice(0, 300);
  return new StorageError('FORBIDDEN', `${what}: no AWS credentials (${CREDENTIALS_ERROR}${said ? `: ${said}` : ''})`, { cause: e });
}

/**
 * Why requests to S3 with these options could not be signed at all, or null: the SDK's
 * credential chain (environment, profiles, SSO, web identity, container and instance
 * metadata) is asked once, as the first request would ask it. A FORBIDDEN StorageError
 * naming `what`, one line; no request is sent to the store.
 */
export async function s3CredentialsProblem(options: StoreOptions, what: string): Promise<StorageError | null> {
  if (options.s3?.unsigned) return null;
  const client = createS3Client(options);
  try {
    await client.config.credentials();
    return null;
  } catch (e) {
    if (e instanceof Error && e.name === CREDENTIALS_ERROR) return noCredentials(e, what);
    // Another failure of the chain (an expired SSO token, a credential process that failed):
    // its name and first line, as the SDK would have met it at the first request.
    const err = e instanceof Error ? e : new Error(String(e));
    const said = (err.message.split('\n')[0] ?? '').trim().slice(0, 300);
    return new StorageError('FORBIDDEN', `${what}: no usable AWS credentials (${err.name}${said ? `: ${said}` : ''})`, { cause: e });
  } finally {
    client.destroy();
  }
}

/**
 * A StorageError for whatever an S3 call threw, classified on its error name (S3's code),
 * HTTP status and errno. The message is one line naming the operation, never the SDK's
 * text (which can carry request details); the original stays in `cause`.
 */
export function classifyS3Error(e: unknown, what: string): StorageError {
  if (e instanceof StorageError) return e;
  if (e instanceof Error && e.name === CREDENTIALS_ERROR) return noCredentials(e, what);
  const shape = (typeof e === 'object' && e !== null ? e : {}) as SdkErrorShape;
  const raw = shape.$metadata?.httpStatusCode;
  const status = typeof raw === 'number' ? raw : undefined;
  const name = typeof shape.Code === 'string' ? shape.Code : typeof shape.name === 'string' ? shape.name : 'Error';
  const errno = typeof shape.code === 'string' ? shape.code : '';
  const label = proxyFailure(e) ?? [name, errno && errno !== name ? errno : '', status ? `HTTP ${status}` : ''].filter(Boolean).join(', ');
  return new StorageError(codeOf(status, name, errno, shape.$metadata?.clockSkewCorrected === true), `${what}: ${label}`, { cause: e, status });
}

// ---------------------------------------------------------------------------------------
// Client and the conditional-write decision

/** Sockets and timeouts of a store's connections, the SDK's and the lean PutObject's alike. */
function connectionsOf(options: StoreOptions): LeanPutOptions {
  return {
    connections: options.maxSockets ?? DEFAULT_MAX_SOCKETS,
    connectTimeoutMs: Math.min(10_000, options.timeoutMs ?? 10_000),
    // idle time on a socket (--timeout), so a stalled server fails as a timeout (TRANSIENT)
    timeoutMs: options.timeoutMs ?? 120_000,
    proxyRoute: envProxyRoute(),
  };
}

/** Where nothing configures a region, S3's own default: the SDK would refuse to send instead. */
const FALLBACK_REGION = 'us-east-1';

/**
 * The region requests are signed for: the store's option, else the environment (AWS_REGION,
 * and the aws CLI's AWS_DEFAULT_REGION), else what the SDK's own chain finds (the `region`
 * of the config file's profile, where `aws configure` writes it), else us-east-1. A region
 * fixed here would hide the profile's, and S3 then redirects every request (AWS) or
 * refuses it (an endpoint that checks the signing region).
 */
function regionOf(options: StoreOptions): string | (() => Promise<string>) {
  const fixed = options.s3?.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (fixed) return fixed;
  const chain = new S3Client({}).config.region; // the SDK's provider; the client itself is never used
  return () => chain().catch(() => FALLBACK_REGION);
}

/** One client per store: its own keep-alive pool, no per-request checksums. */
export function createS3Client(options: StoreOptions, requestHandler: NodeHttpHandler = requestHandlerOf(options)): S3Client {
  return new S3Client({
    region: regionOf(options),
    // Without an endpoint here the SDK reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (and
    // the config file's endpoint_url) itself; an IP endpoint gets path style by itself.
    ...(options.s3?.endpoint ? { endpoint: options.s3.endpoint } : {}),
    forcePathStyle: options.s3?.forcePathStyle ?? false,
    // Unsigned: the request goes as it is built, so no credential chain is asked (a
    // placeholder identity stands in for the one the SDK resolves before signing).
    ...(options.s3?.unsigned ? { credentials: { accessKeyId: '', secretAccessKey: '' }, signer: { sign: <R>(request: R) => Promise.resolve(request) } } : {}),
    // A bucket in another region than ours answers 301: follow it rather than fail.
    followRegionRedirects: true,
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    // Per-request CRC32s cost CPU at thousands of PUTs/s, and s3rver corrupts streamed
    // bodies that carry them (FACTS.md). Buffers carry Content-MD5 instead.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler,
  });
}

/** A client's sockets: its keep-alive pools, with the store's limits and timeouts. */
function requestHandlerOf(options: StoreOptions): NodeHttpHandler {
  const connections = connectionsOf(options);
  return new NodeHttpHandler({
    ...s3Agents({ keepAlive: true, maxSockets: connections.connections }, connections.connectTimeoutMs, connections.proxyRoute),
    connectionTimeout: connections.connectTimeoutMs,
    socketTimeout: connections.timeoutMs,
  });
}

/**
 * The custom endpoint this client talks to, if any: the option, else what the SDK itself
 * resolves from the environment and config files (its own rules, including
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS), so the decision matches where requests go.
 */
async function customEndpointOf(client: S3Client, options: StoreOptions): Promise<string | undefined> {
  if (options.s3?.endpoint) return options.s3.endpoint;
  const config = client.config as { serviceConfiguredEndpoint?: () => Promise<string | undefined> };
  if (typeof config.serviceConfiguredEndpoint === 'function') {
    try {
      return (await config.serviceConfiguredEndpoint()) || undefined;
    } catch {
      // an unreadable config file: fall back to the environment
    }
  }
  return process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
}

/**
 * Whether an endpoint enforces `If-None-Match: *` on PutObject: writes a marker under the
 * prefix twice with the condition; enforced when the second is refused with 412 (or 409
 * ConditionalRequestConflict). Local emulators accept the header and overwrite. Any other
 * failure (no write permission, header not implemented) means not enforced: callers then
 * check before writing, which is always safe. A bucket that does not exist (NoSuchBucket)
 * holds nothing to decide: that is thrown, for the caller to say. The marker is removed.
 */
export async function probeConditionalCreate(client: S3Client, bucket: string, prefix: string): Promise<{ enforced: boolean; detail: string }> {
  const Key = `${prefix}${markerName(PROBE_MARKER)}`;
  // Content-MD5, which a bucket with a default Object Lock retention requires of every write
  const ContentMD5 = createHash('md5').update('probe').digest('base64');
  const put = () => client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'probe', ContentMD5, IfNoneMatch: '*', ContentType: 'text/plain' }));
  try {
    try {
      await put();
    } catch (e) {
      const err = classifyS3Error(e, 'first conditional PUT');
      if (err.code === 'NOT_FOUND') throw classifyS3Error(e, `probe of conditional create on s3://${bucket}`);
      return { enforced: false, detail: `${err.message}; not enforced` };
    }
    try {
      await put();
      return { enforced: false, detail: 'second conditional PUT accepted: not enforced' };
    } catch (e) {
      const err = classifyS3Error(e, 'second conditional PUT');
      const enforced = err.code === 'EXISTS' || (e as { name?: unknown }).name === 'ConditionalRequestConflict';
      return { enforced, detail: enforced ? `${err.message}: enforced` : `${err.message}; not enforced` };
    }
  } finally {
    await removeMarker(client, bucket, Key);
  }
}

/**
 * Up to three tries of a request whose failure would only leave something behind (a probe
 * marker, an object without its sha256): a worker's client makes one attempt per request.
 */
async function thrice(request: () => Promise<unknown>): Promise<boolean> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      await request();
      return true;
    } catch {
      if (attempt < 3) await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
  return false;
}

/** Deletes a probe marker; what a kill between the probe's PUT and its DELETE leaves, a unit's cleanup removes (S3Store.cleanup). */
async function removeMarker(client: S3Client, bucket: string, Key: string): Promise<void> {
  await thrice(() => client.send(new DeleteObjectCommand({ Bucket: bucket, Key })));
}

/** One probe per endpoint and bucket for the whole process, shared by every store on it; one that failed is forgotten, so the next open tries again. */
const probes = new Map<string, Promise<ConditionalWritesDecision>>();

async function decideConditionalWrites(client: S3Client, bucket: string, prefix: string, options: StoreOptions): Promise<ConditionalWritesDecision> {
  const mode = options.conditionalWrites ?? 'auto';
  if (mode !== 'auto') return { enabled: mode === 'on', decidedBy: 'option', detail: `--conditional-writes ${mode}` };
  const endpoint = await customEndpointOf(client, options);
  if (!endpoint) return { enabled: true, decidedBy: 'aws', detail: 'AWS S3 enforces If-None-Match' };
  const id = `${endpoint}\n${bucket}`;
  let probe = probes.get(id);
  if (!probe) {
    probe = probeConditionalCreate(client, bucket, prefix).then(({ enforced, detail }) => ({
      enabled: enforced,
      decidedBy: 'probe' as const,
      detail: `${endpoint} s3://${bucket}: ${detail}`,
    }));
    probes.set(id, probe);
    probe.catch(() => probes.delete(id));
  }
  return probe;
}

/** A prefix is a folder: empty, or ending with `/` (as parsePlace gives it). */
function folder(prefix: string): string {
  const p = prefix.replace(/^\/+/, '');
  return p === '' || p.endsWith('/') ? p : `${p}/`;
}

/**
 * Opens a store rooted at `s3://bucket/prefix`, probing conditional writes once per bucket
 * where asked. With `shared`, the store uses that client, whose sockets someone else owns:
 * closing the store leaves them open (sharedS3Pool closes them).
 */
export async function openS3Store(bucket: string, prefix: string, options: StoreOptions, shared?: S3Client): Promise<S3Store> {
  const client = shared ?? createS3Client(options);
  try {
    const root = folder(prefix);
    return new S3Store(client, bucket, root, options, await decideConditionalWrites(client, bucket, root, options), shared === undefined);
  } catch (e) {
    if (!shared) client.destroy();
    throw e;
  }
}

/**
 * Stores of many buckets on one socket pool, which the opener owns and closes
 * (storage/index.ts's openReaders). Each bucket keeps a client of its own: the SDK follows
 * a region redirect by swapping its client's region for the time of the request, so
 * buckets of different regions on one client would send each other's requests to the
 * wrong region (and fail 'Region was not restored following S3 region redirect').
 */
export function sharedS3Pool(options: StoreOptions): { open(bucket: string, prefix: string): Promise<S3Store>; close(): void } {
  const handler = requestHandlerOf(options);
  return { open: (bucket, prefix) => openS3Store(bucket, prefix, options, createS3Client(options, handler)), close: () => handler.destroy() };
}

// ---------------------------------------------------------------------------------------
// Streaming helpers

const unquote = (etag: string | undefined): string => (etag ?? '').replace(/^"|"$/g, '');

/** CopySource must be URL-encoded; `/` between segments stays. */
const copySource = (bucket: string, key: string): string => `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

type StreamState = { hash: ReturnType<typeof createHash>; bytes: number; sourceError?: unknown };

/** Passes the body through, hashing and counting it; a body of the wrong length fails before the object completes. */
async function* hashed(body: AsyncIterable<unknown>, state: StreamState, expected: number | undefined): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      state.hash.update(b);
      state.bytes += b.length;
      yield b;
    }
  } catch (e) {
    state.sourceError = e;
    throw e;
  }
  if (expected !== undefined && state.bytes !== expected) {
    state.sourceError = new StorageError('TRANSIENT', `body was ${state.bytes} bytes, expected ${expected}`);
    throw state.sourceError;
  }
}

/** Reads up to `limit` bytes; `done` when the body ended within them. */
async function readHead(it: AsyncIterator<Buffer>, limit: number): Promise<{ chunks: Buffer[]; done: boolean }> {
  const chunks: Buffer[] = [];
  let n = 0;
  while (n < limit) {
    const r = await it.next();
    if (r.done) return { chunks, done: true };
    chunks.push(r.value);
    n += r.value.length;
  }
  return { chunks, done: false };
}

/** The chunks read ahead, then the rest; each head chunk is let go once yielded, so memory does not keep it. */
async function* chain(head: Buffer[], it: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  for (let c = head.shift(); c !== undefined; c = head.shift()) yield c;
  for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
}

// ---------------------------------------------------------------------------------------
// The store

export class S3Store implements StorageAdapter {
  readonly capabilities: Capabilities;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly connections: LeanPutOptions;
  /** tries per request: the client's (the lean PutObject tries as many) */
  private readonly maxAttempts: number;
  /** the lean PutObject, resolved at the first Buffer put; null where the SDK must send */
  private lean: Promise<LeanPut | null> | undefined;
  /** set once the store refused to list or abort multipart uploads: cleanup says so once, then skips them */
  private uploadsRefused = false;
  /** parts carry Content-MD5 once the store refused one without it (multipart.ts) */
  private readonly partChecksums = { required: false };

  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    /** empty, or a folder ending with `/` */
    readonly prefix: string,
    options: StoreOptions,
    readonly conditionalWrites: ConditionalWritesDecision,
    /** false when the client is shared with other stores (openS3Store's `shared`): close leaves it open */
    private readonly ownsClient = true,
  ) {
    this.capabilities = { conditionalCreate: conditionalWrites.enabled };
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.connections = connectionsOf(options);
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  keyError(key: string): StorageError | null {
    return objectNameError(this.prefix + key, this.uri(key));
  }

  /** The object's name in the bucket; KEY_TOO_LONG past S3's limit. */
  private name(key: string): string {
    return checkedObjectName(this.prefix + key, this.uri(key));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.client
        .send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }))
        .catch((e: unknown) => {
          throw classifyS3Error(e, `LIST ${this.uri(prefix)}`);
        });
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(this.prefix)) continue;
        const key = o.Key.slice(this.prefix.length);
        if (key.startsWith(PROBE_MARKER)) continue;
        yield { key, size: o.Size ?? 0, version: unquote(o.ETag), metadata: {} };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async *rootKeys(start: string): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const page = await this.client
        .send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + start, Delimiter: '/', ContinuationToken: token }))
        .catch((e: unknown) => {
          throw classifyS3Error(e, `LIST ${this.uri(start)}`);
        });
      for (const o of page.Contents ?? []) if (o.Key?.startsWith(this.prefix)) yield o.Key.slice(this.prefix.length);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.name(key) }));
      return { key, size: r.ContentLength ?? 0, version: unquote(r.ETag), contentType: r.ContentType, metadata: r.Metadata ?? {} };
    } catch (e) {
      const err = classifyS3Error(e, `HEAD ${this.uri(key)}`);
      if (err.code === 'NOT_FOUND') return null;
      throw err;
    }
  }

  async read(key: string): Promise<ReadResult> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.name(key) }));
      if (!(r.Body instanceof Readable)) throw new StorageError('FATAL', `GET ${this.uri(key)}: no body stream`);
      const info = { key, size: r.ContentLength ?? 0, version: unquote(r.ETag), contentType: r.ContentType, metadata: r.Metadata ?? {} };
      // A store that streams the object (chunked) announces no length: the body's own end decides.
      return { body: r.Body, info, length: r.ContentLength ?? null };
    } catch (e) {
      throw classifyS3Error(e, `GET ${this.uri(key)}`);
    }
  }

  async put(key: string, body: Buffer | Readable, options: PutOptions): Promise<PutResult> {
    if (Buffer.isBuffer(body)) {
      const sha256 = options.sha256 ?? hash('sha256', body, 'hex');
      await this.putBuffer(key, body, options, options.metadata, sha256);
      return { sha256 };
    }
    return this.putStream(key, body, options);
  }

  private conditional(options: PutOptions): { IfNoneMatch?: string } {
    return options.ifAbsent && this.capabilities.conditionalCreate ? { IfNoneMatch: '*' } : {};
  }

  /**
   * The lean PutObject for a body, or null when the SDK sends it (too large, an endpoint that
   * needs more than plain SigV4, a bucket in another region). A resolution that failed (no
   * credentials yet, say) is not kept: this put goes through the SDK, which says why, and
   * the next one tries again.
   */
  private async leanFor(body: Buffer): Promise<LeanPut | null> {
    if (body.length >= EXPECT_CONTINUE_BYTES) return null;
    this.lean ??= openLeanPut(this.client, this.bucket, this.connections).catch(() => {
      this.lean = undefined;
      return null;
    });
    const lean = await this.lean;
    return lean?.usable ? lean : null;
  }

  /**
   * The lean PutObject, tried as the SDK tries any request: up to the client's maxAttempts
   * while it fails TRANSIENT or THROTTLED, after the SDK's jittered waits (a worker's store
   * makes one try: its own loop counts them). The orchestrator's outputs went in one try,
   * so a single 503 SlowDown failed their unit.
   */
  private async leanPut(lean: LeanPut, input: LeanPutInput, key: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await lean.put(input);
      } catch (e) {
        const err = classifyS3Error(e, `PUT ${this.uri(key)}`);
        if (attempt >= this.maxAttempts || (err.code !== 'TRANSIENT' && err.code !== 'THROTTLED')) throw err;
        const base = err.code === 'THROTTLED' ? 500 : 100; // the SDK's bases, ms
        await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(20_000, base * 2 ** attempt)));
      }
    }
  }

  private async putBuffer(key: string, body: Buffer, options: PutOptions, metadata: Record<string, string>, sha256: string): Promise<void> {
    const lean = await this.leanFor(body);
    if (lean) {
      const input = { key: this.name(key), body, sha256, contentType: options.contentType, metadata, ifNoneMatch: this.conditional(options).IfNoneMatch !== undefined };
      if (await this.leanPut(lean, input, key)) return; // else redirected: the SDK follows it
    }
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: this.name(key),
      Body: body,
      ContentLength: body.length,
      ContentMD5: createHash('md5').update(body).digest('base64'),
      ContentType: options.contentType,
      Metadata: metadata,
      ...this.conditional(options),
    });
    await this.client.send(command).catch((e: unknown) => {
      throw classifyS3Error(e, `PUT ${this.uri(key)}`);
    });
  }

  /**
   * Streams a body. Its first part is read ahead: a body that ends within it is one
   * PutObject with its sha256 in the metadata from the start; a longer one is a multipart
   * upload, stamped with its sha256 afterwards. A source that fails is rethrown as it came
   * (the caller classifies its own download); whatever was started is aborted.
   */
  private async putStream(key: string, body: Readable, options: PutOptions): Promise<PutResult> {
    const state: StreamState = { hash: createHash('sha256'), bytes: 0 };
    const it = hashed(body, state, options.size)[Symbol.asyncIterator]();
    try {
      // Refused before a byte moves, not after 10,000 parts went (storage/multipart.ts).
      const parts = options.size === undefined ? null : tooManyParts(options.size, this.partSize);
      if (parts) throw new StorageError('FATAL', `PUT ${this.uri(key)}: ${parts}`);
      // A length known to exceed one part goes straight to the multipart upload: no read-ahead to hold.
      const head = options.size !== undefined && options.size > this.partSize ? { chunks: [], done: false } : await readHead(it, this.partSize);
      if (head.done) {
        const sha256 = state.hash.digest('hex');
        await this.putBuffer(key, Buffer.concat(head.chunks), options, { ...options.metadata, [FERRY_META.sha256]: sha256 }, sha256);
        return { sha256 };
      }
      const etag = await this.upload(key, chain(head.chunks, it), options);
      const sha256 = state.hash.digest('hex');
      // Best effort: the bytes are stored whole either way, and the outputs carry the sha256.
      if (state.bytes <= MAX_COPY_BYTES) await thrice(() => this.stampSha256(key, etag, options, sha256));
      return { sha256 };
    } catch (e) {
      body.destroy();
      if (state.sourceError !== undefined) throw state.sourceError;
      const err = classifyS3Error(e, `PUT ${this.uri(key)}`);
      // The upload was aborted under it (another run's cleanup of the unit, README): nothing
      // is written, and a new upload writes it.
      if ((e as { name?: unknown }).name === 'NoSuchUpload') throw new StorageError('TRANSIENT', `${err.message} (its upload was aborted meanwhile)`, { cause: e, status: err.status });
      throw err;
    }
  }

  /** A multipart upload in a fixed amount of memory (storage/multipart.ts); aborted if anything fails. */
  private async upload(key: string, it: AsyncIterator<Buffer>, options: PutOptions): Promise<string | undefined> {
    return multipartUpload(
      {
        client: this.client,
        bucket: this.bucket,
        key: this.name(key),
        contentType: options.contentType,
        metadata: options.metadata,
        ifNoneMatch: this.conditional(options).IfNoneMatch !== undefined,
        partSize: this.partSize,
        queueSize: this.queueSize,
        checksums: this.partChecksums,
      },
      it,
    );
  }

  /**
   * Adds ferry-sha256 with a metadata-only copy onto itself. CopySourceIfMatch makes sure
   * the bytes stamped are the ones just written, not a concurrent writer's. Should it fail,
   * the object stands with the caller's metadata (ferry-source identifies a large one).
   */
  private async stampSha256(key: string, etag: string | undefined, options: PutOptions, sha256: string): Promise<void> {
    const Key = this.name(key);
    await this.client.send(
      new CopyObjectCommand({
        Bucket: this.bucket,
        Key,
        CopySource: copySource(this.bucket, Key),
        ...(etag ? { CopySourceIfMatch: etag } : {}),
        MetadataDirective: 'REPLACE',
        ContentType: options.contentType,
        Metadata: { ...options.metadata, [FERRY_META.sha256]: sha256 },
      }),
    );
  }

  async remove(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.name(key) }));
    } catch (e) {
      const err = classifyS3Error(e, `DELETE ${this.uri(key)}`);
      if (err.code !== 'NOT_FOUND') throw err;
    }
  }

  /**
   * Aborts the multipart uploads killed writers left open for the unit at `prefix` (its own
   * keys, isUnitObjectKey: not a nested unit's), of the keys `owns`: a listed upload names no
   * writer, and another migration's live run may be streaming its own objects under the same
   * prefix. Removes the probe markers that killed probes left at the store's root (not those
   * of probes under way: a marker removed mid-probe makes the endpoint look as if it did not
   * enforce conditional writes, and that process then checks before every write).
   */
  async cleanup(prefix: string, owns: (key: string) => boolean): Promise<CleanupNote> {
    await this.removeProbeMarkers();
    const full = this.prefix + prefix;
    return this.abortUploads(full, (name) => isUnitObjectKey(full, name) && owns(name.slice(this.prefix.length)), this.uri(prefix));
  }

  async discardPartial(key: string): Promise<CleanupNote> {
    // A name too long for S3 has no upload to abort (and no listing takes it as a prefix).
    if (Buffer.byteLength(this.prefix + key, 'utf8') > MAX_OBJECT_NAME_BYTES) return null;
    const full = this.prefix + key;
    return this.abortUploads(full, (k) => k === full, this.uri(key));
  }

  /**
   * Aborts the open multipart uploads under a key prefix whose keys `own` accepts. Credentials
   * that may write objects need not be allowed to list or abort uploads
   * (s3:ListBucketMultipartUploads, s3:AbortMultipartUpload are permissions of their own):
   * a refusal is a note, not a failure, since the objects themselves are written.
   */
  private async abortUploads(prefix: string, own: (key: string) => boolean, where: string): Promise<CleanupNote> {
    if (this.uploadsRefused) return null; // said once per store; asking again changes nothing
    const what = `cleanup ${where}`;
    try {
      await this.abortEach(prefix, own, what);
      return null;
    } catch (e) {
      const err = classifyS3Error(e, what);
      if (err.code !== 'FORBIDDEN') throw err;
      if (this.uploadsRefused) return null; // a concurrent cleanup (another unit's) said it
      this.uploadsRefused = true;
      return `${err.message}: these credentials may not list or abort multipart uploads in s3://${this.bucket}/, so any that killed runs left open stay until a bucket lifecycle rule aborts them`;
    }
  }

  private async abortEach(prefix: string, own: (key: string) => boolean, what: string): Promise<void> {
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      const page = await this.client
        .send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker, UploadIdMarker }))
        .catch((e: unknown) => {
          throw classifyS3Error(e, what);
        });
      await this.abortAll((page.Uploads ?? []).filter((u) => u.Key !== undefined && own(u.Key)), what);
      const more = page.IsTruncated === true && (page.NextKeyMarker !== undefined || page.NextUploadIdMarker !== undefined);
      KeyMarker = more ? page.NextKeyMarker : undefined;
      UploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (KeyMarker !== undefined || UploadIdMarker !== undefined);
  }

  /** Best effort: a marker is harmless, and listing may not be allowed. Another process's probe under way keeps its own (markers.ts). */
  private async removeProbeMarkers(): Promise<void> {
    try {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + PROBE_MARKER }));
      const abandoned = (page.Contents ?? []).filter((o) => o.Key !== undefined && abandonedMarker(o.Key.slice(this.prefix.length), PROBE_MARKER));
      await Promise.all(abandoned.map((o) => removeMarker(this.client, this.bucket, o.Key!)));
    } catch {
      // not listed: left for a later cleanup
    }
  }

  /** Aborts a page of uploads a few at a time: thousands one by one take minutes on S3. */
  private async abortAll(uploads: { Key?: string; UploadId?: string }[], what: string): Promise<void> {
    for (let i = 0; i < uploads.length; i += ABORT_CONCURRENCY) {
      const batch = uploads.slice(i, i + ABORT_CONCURRENCY);
      await Promise.all(batch.map((u) => (u.Key !== undefined && u.UploadId !== undefined ? this.abort(u.Key, u.UploadId, what) : undefined)));
    }
  }

  private async abort(Key: string, UploadId: string, what: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }));
    } catch (e) {
      const err = classifyS3Error(e, what);
      if (err.code !== 'NOT_FOUND') throw err; // already completed or aborted
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
    await (await this.lean)?.close();
  }
}

