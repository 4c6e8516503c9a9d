/**
 * A GCS bucket prefix as a store, through @google-cloud/storage 7 (the JSON API).
 *
 * - A Buffer goes in one multipart request carrying its MD5 (`md5Hash`: GCS refuses a body
 *   that does not match before committing it) and checked again against the hash GCS
 *   answers (`validation: 'md5'`).
 * - A Readable goes in one resumable upload *without* a chunk size: after the session is
 *   opened, the rest of the stream is sent in a single PUT as it is read. Chunked sessions
 *   hang on the firebase Storage emulator (FACTS.md), and one streamed request needs no
 *   chunk buffer: memory stays at a few stream chunks whatever the object's size (the
 *   library keeps the last chunk for a retry it will not make). Its sha256, known only at
 *   the end, is then recorded by a metadata patch. The library sends the session request
 *   and that PUT with no timeout: --timeout bounds each wait for the destination to take
 *   bytes or to answer (idleWrites, storage/idle.ts).
 * - The library's own retries are off: the worker retries each upload as one attempt
 *   (DESIGN.md, "No retry storms") and needs to see 429s to slow down.
 * - Sockets: the JSON API, single-request uploads and downloads go through teeny-request,
 *   which always uses its own process-wide keep-alive agent (`maxSockets: Infinity`, fixed
 *   when first created) and ignores an agent passed in. So `options.maxSockets` cannot size
 *   a store's pool without reaching into its internals; the sockets in use are the
 *   requests in flight, which the worker's concurrency already bounds. A resumable
 *   upload's requests go through gaxios instead, each upload with an agent of its own
 *   that is destroyed when it ends: the only way to close a cut upload's socket (ownAgent).
 */
import { createHash, hash, randomBytes } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import { type Bucket, type File, type FileMetadata, Storage } from '@google-cloud/storage';
import { PassThroughClient } from 'google-auth-library';
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
  type StoreOptions,
} from './adapter.js';
import { codingsToRemove, decodedBody } from './content-coding.js';
import { pipeHashed } from './hashed.js';
import { abandonedMarker, markerName } from './markers.js';
import { idleWrites } from './idle.js';

const LIST_PAGE = 1000;
/**
 * Gives a resumable upload's requests (its session POST and its PUT) an agent of their own,
 * for the caller to destroy when the upload ends. The library never aborts a request it has
 * started when its stream is destroyed (it aborts only on an error of its own): a cut
 * upload's socket would otherwise stay open to a stalled destination, one per cut, for
 * good. Not under an HTTP(S)_PROXY, which only the library's default agent goes through.
 */
function ownAgent(file: File): { destroy(): void } | null {
  if (['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some((v) => process.env[v])) return null;
  const agents = { 'http:': new HttpAgent(), 'https:': new HttpsAgent() };
  // At the library's requests' options (teeny-request's type names a `uri` they also carry as `url`).
  type Options = ReturnType<File['interceptors'][number]['request']>;
  file.interceptors.push({ request: (reqOpts) => Object.assign(reqOpts, { agent: (url: URL) => agents[url.protocol as keyof typeof agents] }) as Options });
  return { destroy: () => Object.values(agents).forEach((a) => a.destroy()) };
}

/** The library's own per-request default, for stores opened without --timeout. */
const DEFAULT_TIMEOUT_MS = 60_000;
const PROBE_NAME = '.ferry-probe-';

/* ------------------------------------------------------------------ errors */

// EMFILE/ENFILE: no file descriptor left for a socket, this process's state, not the object's.
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'EMFILE', 'ENFILE']);
/** Library codes for bytes that arrived different from what was sent: worth another try. */
const MISMATCH_CODES = new Set(['FILE_NO_UPLOAD', 'CONTENT_DOWNLOAD_MISMATCH']);
/** node-fetch's FetchError says "timed out" in `type`, not `code`. */
const TIMEOUT_TYPES = new Set(['request-timeout', 'body-timeout']);

type ErrorShape = { code?: unknown; status?: unknown; type?: unknown; response?: { status?: unknown }; cause?: unknown; errors?: unknown };

/** The HTTP status of an ApiError (`code`), a GaxiosError (`status`, `response.status`) or a failed resumable upload. */
function statusOf(e: ErrorShape): number | undefined {
  for (const v of [e.code, e.status, e.response?.status]) if (typeof v === 'number' && v >= 100 && v < 600) return v;
  return undefined;
}

/** A string code on the error or on its cause (Node system errors, library codes). */
function codeOf(e: ErrorShape): string | undefined {
  if (typeof e.code === 'string') return e.code;
  const cause = e.cause as ErrorShape | undefined;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

/** GCS's machine-readable reason (`notFound`, `conditionNotMet`…), safe to print. */
function reasonOf(e: ErrorShape): string {
  const first = Array.isArray(e.errors) ? (e.errors[0] as { reason?: unknown } | undefined) : undefined;
  return typeof first?.reason === 'string' && /^[A-Za-z]{1,40}$/.test(first.reason) ? ` ${first.reason}` : '';
}

/** One line, no query strings (session URIs and signed URLs carry capabilities there). */
function oneLine(message: string): string {
  return message.split('\n')[0]!.replace(/\?\S*/g, '?…').slice(0, 200);
}

/** Classifies any error of the GCS library on its status or code, never its message. */
export function classifyGcsError(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as ErrorShape;
  const status = statusOf(e);
  if (status !== undefined) {
    const msg = `${what}: HTTP ${status}${reasonOf(e)}`;
    if (status === 404) return new StorageError('NOT_FOUND', msg, { cause: err, status });
    if (status === 401 || status === 403) return new StorageError('FORBIDDEN', msg, { cause: err, status });
    if (status === 412) return new StorageError('EXISTS', msg, { cause: err, status });
    if (status === 429 || status === 503) return new StorageError('THROTTLED', msg, { cause: err, status });
    if (status >= 500 || status === 408) return new StorageError('TRANSIENT', msg, { cause: err, status });
    return new StorageError('FATAL', msg, { cause: err, status });
  }
  const code = codeOf(e);
  if (code !== undefined && (NETWORK_CODES.has(code) || MISMATCH_CODES.has(code))) return new StorageError('TRANSIENT', `${what}: ${code}`, { cause: err });
  if (typeof e.type === 'string' && TIMEOUT_TYPES.has(e.type)) return new StorageError('TRANSIENT', `${what}: ${e.type}`, { cause: err });
  const detail = code ?? (err instanceof Error ? oneLine(err.message) : String(err));
  return new StorageError('FATAL', `${what}: ${detail}`, { cause: err });
}

/* --------------------------------------------------------------- endpoints */

type Client = { storage: Storage; custom: boolean; endpoint: string | undefined };

/**
 * One client per store. Without a custom endpoint: GCS itself, with application default
 * credentials, or none at all where `options.gcs.unsigned` (--gcs-no-sign-request, public
 * buckets). `options.gcs.endpoint` wins over STORAGE_EMULATOR_HOST (which the library
 * reads by itself: it then sends the JSON API to that host's root, uploads to
 * `/upload/storage/v1`, and no credentials; a `host:port` without a scheme is taken as an
 * endpoint, see schemelessEmulatorHost). A custom endpoint gets no credentials either (the
 * library's rule for custom endpoints).
 */
function makeClient(options: StoreOptions): Client {
  const endpoint = options.gcs?.endpoint ?? schemelessEmulatorHost();
  const storage = new Storage({
    ...(endpoint ? { apiEndpoint: endpoint } : {}),
    ...(options.gcs?.unsigned ? { authClient: new PassThroughClient() } : {}),
    // Per request, one-request uploads and the probe included (the library's default is 60 s).
    ...(options.timeoutMs ? { timeout: options.timeoutMs } : {}),
    ...(options.gcs?.projectId ? { projectId: options.gcs.projectId } : {}),
    // The library's own retries only where asked (the worker retries, counting its tries).
    retryOptions: (options.maxAttempts ?? 3) > 1 ? { autoRetry: true, maxRetries: (options.maxAttempts ?? 3) - 1 } : { autoRetry: false, retryableErrorFn: () => false },
  });
  // The library would send JSON calls to STORAGE_EMULATOR_HOST even when given an endpoint.
  if (endpoint) storage.baseUrl = `${storage.apiEndpoint}/storage/v1`;
  return { storage, custom: Boolean(endpoint) || Boolean(process.env.STORAGE_EMULATOR_HOST), endpoint };
}

/**
 * STORAGE_EMULATOR_HOST as `host:port`, the form the firebase emulator prints and the Go
 * client and gcloud take, as the plain-HTTP endpoint it names. The library would send its
 * JSON calls to the bare `host:port` (not a URL: "Only HTTP(S) protocols are supported")
 * and its uploads to `https://host:port`, which no local emulator speaks.
 */
function schemelessEmulatorHost(): string | undefined {
  const host = process.env.STORAGE_EMULATOR_HOST;
  return host && !/^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? `http://${host.replace(/\/+$/, '')}` : undefined;
}

/**
 * Why requests to GCS with these options would carry no credentials, or null. Without any,
 * the library sends its requests unauthenticated: a private object then answers 401, which
 * it reports as its own "Could not load the default credentials" (no status), so every row
 * would be ledgered as refused. The application default credentials (the environment's key
 * file, gcloud's, the metadata server) are looked up once, as the first request would;
 * nothing is sent to the store. A custom endpoint (an emulator) is sent none anyway.
 */
export async function gcsCredentialsProblem(options: StoreOptions, what: string): Promise<StorageError | null> {
  if (options.gcs?.unsigned) return null;
  const { storage, custom } = makeClient(options);
  if (custom) return null;
  try {
    await storage.authClient.getClient();
    return null;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const said = (err.message.split('\n')[0] ?? '').trim().slice(0, 300);
    return new StorageError('FORBIDDEN', `${what}: no Google credentials${said ? ` (${said})` : ''}`, { cause: e });
  }
}

const rootProbes = new Map<string, Promise<boolean>>();
const conditionalProbes = new Map<string, Promise<boolean>>();

/** Runs a probe once per key; a probe that failed is forgotten, so the next open tries again. */
function probeOnce(cache: Map<string, Promise<boolean>>, key: string, probe: () => Promise<boolean>): Promise<boolean> {
  let p = cache.get(key);
  if (!p) {
    p = probe();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/**
 * Whether an endpoint serves the JSON API at its root rather than under /storage/v1, as
 * the firebase emulator does for metadata patches (it answers 501 under /storage/v1).
 * A PATCH of a name that does not exist changes nothing: 404 where the route exists.
 */
async function servesJsonAtRoot(storage: Storage, bucket: string): Promise<boolean> {
  try {
    await storage.bucket(bucket).file(`${PROBE_NAME}${randomBytes(8).toString('hex')}`).setMetadata({});
    return false;
  } catch (e) {
    const status = statusOf(e as ErrorShape);
    if (status === 501) return true;
    // Only a definite answer is remembered: an endpoint that is down or busy is asked again.
    if (status === undefined || status === 429 || status >= 500) throw classifyGcsError(e, `probe of ${storage.apiEndpoint}`);
    return false;
  }
}

/**
 * Whether the endpoint enforces `ifGenerationMatch: 0`: writes a fresh marker twice with
 * it; a 412 on the second write means enforced. Emulators accept and ignore it.
 */
async function enforcesConditionalCreate(bucket: Bucket, prefix: string): Promise<boolean> {
  const marker = bucket.file(`${prefix}${markerName(PROBE_NAME)}`);
  const write = () => marker.save(Buffer.alloc(0), { resumable: false, validation: false, preconditionOpts: { ifGenerationMatch: 0 } });
  try {
    await write();
    try {
      await write();
      return false;
    } catch (e) {
      if (statusOf(e as ErrorShape) === 412) return true;
      throw e;
    }
  } catch (e) {
    // A store we may not write to never creates anything: no condition to rely on.
    if (classifyGcsError(e, 'probe').code === 'FORBIDDEN') return false;
    throw classifyGcsError(e, `probe of conditional create on gs://${bucket.name}`);
  } finally {
    await marker.delete({ ignoreNotFound: true }).catch(() => undefined);
  }
}

/** Opens a store at gs://bucket/prefix (prefix empty or ending in `/`), probing a custom endpoint once. */
export async function openGcsStore(bucket: string, prefix: string, options: StoreOptions = {}): Promise<GcsStore> {
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  const { storage, custom, endpoint } = makeClient(options);
  if (endpoint && (await probeOnce(rootProbes, storage.apiEndpoint, () => servesJsonAtRoot(storage, bucket)))) storage.baseUrl = storage.apiEndpoint;
  const mode = options.conditionalWrites ?? 'auto';
  let conditionalCreate = mode === 'on';
  if (mode === 'auto') {
    conditionalCreate = !custom || (await probeOnce(conditionalProbes, `${storage.apiEndpoint} ${bucket}`, () => enforcesConditionalCreate(storage.bucket(bucket), prefix)));
  }
  return new GcsStore(storage.bucket(bucket), prefix, { conditionalCreate }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
}

/* ------------------------------------------------------------------- store */

/** Custom metadata as strings, names lower-case (ObjectInfo's contract). */
function customMetadata(m: FileMetadata['metadata']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m ?? {})) if (v !== null && v !== undefined) out[k.toLowerCase()] = String(v);
  return out;
}

/** Errors on a download stream, classified, on a stream the caller owns. */
function classifiedStream(src: Readable, what: string): Readable {
  const out = new PassThrough();
  src.on('error', (e) => out.destroy(classifyGcsError(e, what)));
  out.on('close', () => src.destroy());
  return src.pipe(out);
}

/**
 * Resolves once a download's answer is a 2xx, with the Content-Encoding it came in (or
 * undefined); rejects with the error `body` is destroyed with (a refusal, classified) or,
 * when no answer comes within `timeoutMs`, a TRANSIENT timeout that also destroys it. The
 * library emits `response` for any status, then destroys the stream with the refusal once
 * its body is read.
 */
function answered(src: Readable, body: Readable, timeoutMs: number, what: string): Promise<string | undefined> {
  type Answer = { statusCode?: number; headers?: Record<string, string | string[] | undefined> };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const cause = Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
      body.destroy(new StorageError('TRANSIENT', `${what}: no answer within ${timeoutMs} ms (--timeout)`, { cause }));
    }, timeoutMs);
    const done = (err: Error | null, coding?: string) => {
      clearTimeout(timer);
      src.off('response', onResponse);
      body.off('error', done);
      if (err) reject(err);
      else resolve(coding);
    };
    const onResponse = (res: Answer) => {
      if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode >= 300) return;
      const coding = res.headers?.['content-encoding'];
      done(null, Array.isArray(coding) ? coding.join(', ') : coding);
    };
    src.on('response', onResponse);
    body.once('error', done);
  });
}

/** An answer of a resumable upload's session (gaxios): status and headers. */
type Answer = { status?: unknown; headers?: unknown };

/**
 * A resumable upload's refusal with the answer it came in. The library turns a refused PUT
 * into a bare `Upload failed` carrying the status only, so the answer's Retry-After (what
 * the worker waits before its next try, retryAfterMs) was lost; the session request's
 * refusal keeps its own `response`.
 */
function withAnswer(err: unknown, answer: Answer | undefined): unknown {
  if (typeof err !== 'object' || err === null || answer === undefined || 'response' in err) return err;
  const status = statusOf(err as ErrorShape);
  return status !== undefined && status === answer.status ? Object.assign(err, { response: answer }) : err;
}

export class GcsStore implements StorageAdapter {
  constructor(
    readonly bucket: Bucket,
    /** empty or ending in `/` */
    readonly prefix: string,
    readonly capabilities: Capabilities,
    /** `--timeout`: how long a streamed upload may take none of its bytes (see putStream) */
    private readonly timeoutMs: number = DEFAULT_TIMEOUT_MS,
  ) {}

  keyError(key: string): StorageError | null {
    return objectNameError(this.prefix + key, this.uri(key));
  }

  private file(key: string, generation?: string | number): File {
    return this.bucket.file(checkedObjectName(this.prefix + key, this.uri(key)), generation === undefined ? undefined : { generation });
  }

  uri(key: string): string {
    return `gs://${this.bucket.name}/${this.prefix}${key}`;
  }

  private info(key: string, m: FileMetadata): ObjectInfo {
    return {
      key,
      size: Number(m.size ?? 0),
      version: String(m.generation ?? m.etag ?? ''),
      ...(m.contentType ? { contentType: m.contentType } : {}),
      metadata: customMetadata(m.metadata),
      // A composite object has no md5Hash (only a CRC32C).
      ...(typeof m.md5Hash === 'string' && m.md5Hash !== '' ? { md5: Buffer.from(m.md5Hash, 'base64').toString('hex') } : {}),
    };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // A prefix is a folder (uri.ts): `list/a` never lists `list/a2/`.
    const full = this.prefix + (prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`);
    let pageToken: string | undefined;
    do {
      let files: File[];
      let next: { pageToken?: string } | undefined;
      try {
        [files, next] = await this.bucket.getFiles({ prefix: full, autoPaginate: false, maxResults: LIST_PAGE, ...(pageToken ? { pageToken } : {}) });
      } catch (e) {
        throw classifyGcsError(e, `list gs://${this.bucket.name}/${full}`);
      }
      for (const f of files) yield this.info(f.name.slice(this.prefix.length), f.metadata);
      pageToken = next?.pageToken;
    } while (pageToken);
  }

  async *rootKeys(start: string): AsyncIterable<string> {
    let pageToken: string | undefined;
    do {
      let files: File[];
      let next: { pageToken?: string } | undefined;
      try {
        [files, next] = await this.bucket.getFiles({ prefix: this.prefix + start, delimiter: '/', autoPaginate: false, maxResults: LIST_PAGE, ...(pageToken ? { pageToken } : {}) });
      } catch (e) {
        throw classifyGcsError(e, `list gs://${this.bucket.name}/${this.prefix}${start}`);
      }
      for (const f of files) yield f.name.slice(this.prefix.length);
      pageToken = next?.pageToken;
    } while (pageToken);
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const m = await this.metadata(key);
    return m && this.info(key, m);
  }

  /** The object's metadata as GCS keeps it, or null when there is none. */
  private async metadata(key: string): Promise<FileMetadata | null> {
    try {
      const [m] = await this.file(key).getMetadata();
      return m;
    } catch (e) {
      const err = classifyGcsError(e, `stat ${this.uri(key)}`);
      if (err.code === 'NOT_FOUND') return null;
      throw err;
    }
  }

  /**
   * Stats first, so a missing object rejects here rather than on the stream; then reads that
   * very generation, resolving once its answer is a 2xx: a refusal of the media request
   * (403, a 404 for a generation replaced meanwhile, a 429 with its Retry-After) rejects
   * here, classified, as the stat's would, not later as a broken body.
   *
   * An object stored with a Content-Encoding (`gzip`: `gsutil cp -Z`, `gcloud storage cp
   * --gzip-local-all`) comes as an HTTP body in that coding does (content-coding.ts): its
   * coding removed, as GCS's own decompressive transcoding and browsers do, unless it is a
   * gzip file labelled as one (`application/gzip`), which comes as stored. Its stored size
   * is then not the length of what comes: none is announced.
   */
  async read(key: string): Promise<ReadResult> {
    const m = await this.metadata(key);
    if (!m) throw new StorageError('NOT_FOUND', `read ${this.uri(key)}: not found`, { status: 404 });
    const info = this.info(key, m);
    const what = `read ${this.uri(key)}`;
    // The library would gunzip a gzip answer itself, whatever the type; ferry decides (below).
    const src = this.file(key, info.version || undefined).createReadStream({ decompress: false });
    const body = classifiedStream(src, what);
    const coding = (await answered(src, body, this.timeoutMs, what)) ?? null;
    const codings = codingsToRemove(coding, m.contentType ?? null);
    // Served in another coding than stored (GCS transcodes when it must): the stored size is not what comes.
    const asStored = (coding ?? '').trim().toLowerCase() === (m.contentEncoding ?? '').trim().toLowerCase();
    if (!codings) return { body, info, length: asStored ? info.size : null };
    const bad = (detail: string) => new StorageError('TRANSIENT', `${what}: ${detail}`);
    return { body: decodedBody(body, codings, bad), info, length: null };
  }

  async put(key: string, body: Buffer | Readable, options: PutOptions): Promise<PutResult> {
    const conditional = options.ifAbsent && this.capabilities.conditionalCreate;
    try {
      return Buffer.isBuffer(body) ? await this.putBuffer(key, body, options, conditional) : await this.putStream(key, body, options, conditional);
    } catch (e) {
      throw classifyGcsError(e, `put ${this.uri(key)}`);
    }
  }

  private async putBuffer(key: string, body: Buffer, options: PutOptions, conditional: boolean): Promise<PutResult> {
    const sha256 = hash('sha256', body, 'hex');
    const md5Hash = createHash('md5').update(body).digest('base64');
    await this.file(key).save(body, {
      resumable: false,
      validation: 'md5',
      contentType: options.contentType,
      metadata: { md5Hash, metadata: { ...options.metadata, [FERRY_META.sha256]: sha256 } },
      ...(conditional ? { preconditionOpts: { ifGenerationMatch: 0 } } : {}),
    });
    return { sha256 };
  }

  private async putStream(key: string, body: Readable, options: PutOptions, conditional: boolean): Promise<PutResult> {
    const file = this.file(key);
    // The sha256 is recorded from the bytes themselves once they are all sent.
    const { [FERRY_META.sha256]: _claimed, ...metadata } = options.metadata;
    const sink = file.createWriteStream({
      resumable: true, // and no chunkSize: one streamed PUT (see the file comment)
      validation: 'crc32c',
      contentType: options.contentType,
      metadata: { metadata, ...(options.size !== undefined ? { contentLength: options.size } : {}) },
      ...(conditional ? { preconditionOpts: { ifGenerationMatch: 0 } } : {}),
    });
    // The library sends the session request and the streamed PUT with no timeout at all: a
    // destination that stops taking bytes, or never answers once given them all, is cut.
    const what = `put ${this.uri(key)}`;
    const agent = ownAgent(file);
    // The session's last answer: its refusal becomes an error without it (see withAnswer).
    let answer: Answer | undefined;
    sink.on('response', (r: Answer) => (answer = r));
    try {
      const sha256 = await pipeHashed(body, idleWrites(sink, this.timeoutMs, (detail) => new StorageError('TRANSIENT', `${what}: ${detail}`))).catch((e: unknown) => {
        throw withAnswer(e, answer);
      });
      await this.recordSha256(file, file.metadata.generation, sha256);
      return { sha256 };
    } finally {
      agent?.destroy();
    }
  }

  /** A metadata patch on the generation just written; if it fails, that object is taken back. */
  private async recordSha256(file: File, generation: string | number | undefined, sha256: string): Promise<void> {
    const pin = generation === undefined ? {} : { ifGenerationMatch: generation };
    try {
      await file.setMetadata({ metadata: { [FERRY_META.sha256]: sha256 } }, pin);
    } catch (e) {
      // Left without its sha256, the object would read as someone else's on the next run.
      await file.delete({ ...pin, ignoreNotFound: true }).catch(() => undefined);
      throw e;
    }
  }

  async remove(key: string): Promise<void> {
    try {
      await this.file(key).delete({ ignoreNotFound: true });
    } catch (e) {
      throw classifyGcsError(e, `remove ${this.uri(key)}`);
    }
  }

  /**
   * Removes the probe markers that killed probes left at the store's root (a kill between
   * enforcesConditionalCreate's writes and its delete), not those of probes under way
   * (markers.ts): a marker removed mid-probe makes the endpoint look as if it did not enforce
   * conditional create, and that process then checks before every write. Objects need
   * nothing: single-request uploads leave nothing behind, and a killed writer's resumable
   * session creates no object, cannot be listed, and expires on GCS after a week.
   */
  async cleanup(_prefix: string): Promise<CleanupNote> {
    await this.removeProbeMarkers();
    return null;
  }

  /** Best effort: a marker is harmless, and listing may not be allowed. */
  private async removeProbeMarkers(): Promise<void> {
    try {
      const [markers] = await this.bucket.getFiles({ prefix: this.prefix + PROBE_NAME, autoPaginate: false, maxResults: LIST_PAGE });
      const abandoned = markers.filter((f) => abandonedMarker(f.name.slice(this.prefix.length), PROBE_NAME));
      await Promise.all(abandoned.map((f) => f.delete({ ignoreNotFound: true }).catch(() => undefined)));
    } catch {
      // not listed: left for a later cleanup
    }
  }

  /** An interrupted resumable upload leaves nothing visible (its session expires in a week). */
  async discardPartial(_key: string): Promise<CleanupNote> {
    return null;
  }

  /** The client holds no sockets of its own (teeny-request's agent is process-wide) and no timers. */
  async close(): Promise<void> {}
}
