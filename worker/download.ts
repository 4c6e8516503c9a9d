/**
 * Download with bounded retries: one call is one task's download stage. Every outcome is
 * a result, never an exception, so one bad task (or a bug) cannot take the others down.
 * Attempts per call ≤ 1 + retries (DESIGN.md, "No retry storms"); redirects of one try
 * count as one attempt.
 */
import type { Admission, Lease, Verdict } from './aimd.js';
import { retryWaitMs, sleep, waitPastBound } from './backoff.js';
import { classOf, oneLine, type Reason } from '../protocol/index.js';
import { Readable } from 'node:stream';
import { type StorageAdapter, StorageError } from '../storage/adapter.js';
import { LocalSourceError, isFileUrl, openLocalSource } from '../storage/local-source.js';
import { type Place, parseObjectUrl, sourceUrlText } from '../storage/uri.js';
import { type HttpClient, type WholeBody, discardBody, headerValue, parseHttpUrl } from '../storage/http.js';
import { type BodyMeter, NO_METER, metered } from '../storage/min-rate.js';
import { redactText } from '../storage/redact.js';

type Fetched = {
  ok: true;
  attempts: number;
  contentType: string | null;
  /** the source's ETag (HTTP) or version (object stores) */
  etag: string | null;
  /** Gives back the large-body slot and the request slot (`slots`) this body holds, if any: call it once the body is dropped. */
  release: () => void;
};
/** A body read whole (up to --max-bytes). */
export type Buffered = Fetched & { kind: 'buffer'; body: Buffer };
/**
 * A body past `streamAbove`, handed over unread (its first bytes included): the caller
 * streams it on and owns its errors. `size` is the announced length, when there is one.
 */
export type Streamed = Fetched & { kind: 'stream'; stream: Readable; size: number | null };
export type DownloadOk = Buffered | Streamed;
export { backoffMs } from './backoff.js';
export type DownloadErr = {
  ok: false;
  reason: Reason;
  attempts: number;
  /** One line, redacted. */
  detail: string;
  /** A payload verdict (TOO_LARGE), not a fetch failure: sets bad_image. */
  invalid: boolean;
};
export type DownloadResult = DownloadOk | DownloadErr;

/** What one try ended with, for adaptive per-host concurrency (AIMD) in the caller. */
export type AttemptOutcome = {
  /** 1-based. */
  attempt: number;
  /** HTTP status of the try's last response, null when none arrived. */
  status: number | null;
  /** Error code (UND_ERR_*, E*, FERRY_*) when the try failed without a usable response. */
  code: string | null;
  /** null on success. */
  reason: Reason | null;
  ms: number;
};

export type DownloadOptions = {
  client: HttpClient;
  /** Retries after the first try, for transient reasons only. Default 3. */
  retries?: number;
  /** Body ceiling in bytes (`--max-bytes`); more is TOO_LARGE. Default 100 MiB. */
  maxBytes?: number;
  /** Full-jitter exponential backoff: random in [0, min(cap, base·2^(n-1))]. Defaults 250 and 60000 ms. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Longest Retry-After honoured; longer is THROTTLED at once. Default 60000 ms. */
  maxRetryAfterMs?: number;
  /** Called after each try with the host of `url` (host:port when not default). */
  onAttempt?: (host: string, outcome: AttemptOutcome) => void;
  /**
   * Per-host adaptive concurrency: each try holds a slot of its host (a streamed body
   * until it closes or is released) and gives it back before any backoff sleep.
   */
  admit?: Admission;
  /**
   * The worker's --concurrency, shared among hosts (by the same key as `admit`): each try
   * takes one of these once its host has admitted it and gives it back before any backoff
   * sleep, so a task waiting for a throttled host or sleeping holds none. A successful
   * try's slot goes with its body (the body in hand is memory, counted as a request in
   * flight): the result's `release` gives it back.
   */
  slots?: { acquire(host: string): Promise<void>; release(host: string): void };
  /** Source of randomness for the jitter (tests). Default Math.random. */
  random?: () => number;
  /**
   * Bounded memory: a body over `threshold` bytes (by Content-Length, or once it grows
   * past it) must hold one of the `slots` until the caller releases it. Small bodies are
   * free, so the worker's buffers stay under concurrency × threshold + slots × maxBytes.
   */
  largeBodies?: { threshold: number; slots: { acquire(): Promise<void>; release(): void } };
  /** Bodies longer than this are handed over as streams instead of read whole. */
  streamAbove?: number;
  /** `--local-source-root`: the one folder file:// sources may be read from. */
  localSourceRoot?: string;
  /** Opens object stores for s3:// and gs:// sources (their credentials, their client). */
  stores?: (place: Place) => Promise<StorageAdapter>;
};

export const DOWNLOAD_DEFAULTS = {
  retries: 3,
  maxBytes: 100 * 2 ** 20,
  backoffBaseMs: 250,
  backoffCapMs: 60_000,
  maxRetryAfterMs: 60_000,
} as const;

type Failure = {
  ok: false;
  reason: Reason;
  detail: string;
  invalid: boolean;
  retriable: boolean;
  status: number | null;
  code: string | null;
  retryAfterMs: number | null;
};
type Success = (Omit<Buffered, 'attempts'> | Omit<Streamed, 'attempts'>) & { status: number };

/** What a try opened: a body to read, before any of it is read. */
type Source = { body: Readable; meter: BodyMeter; contentLength: number | null; status: number; contentType: string | null; etag: string | null };
/** What a try opened whose body its client reads whole (HTTP: a 2xx image under every threshold). */
type WholeSource = { whole: Promise<WholeBody>; contentLength: number; status: number; contentType: string | null; etag: string | null };


// Error codes → reasons. Codes, never messages (STYLE.md).
const CODE_REASONS: ReadonlyMap<string, Reason> = new Map(
  Object.entries({
    FERRY_BLOCKED_ADDRESS: 'BLOCKED_ADDRESS',
    FERRY_TOO_MANY_REDIRECTS: 'TOO_MANY_REDIRECTS',
    FERRY_UNSUPPORTED_SCHEME: 'UNSUPPORTED_SCHEME',
    FERRY_BAD_URL: 'BAD_URL',
    ERR_INVALID_URL: 'BAD_URL',
    FERRY_MIN_RATE: 'TIMEOUT',
    FERRY_IDLE_TIMEOUT: 'TIMEOUT',
    // A store source's body failing mid-read (StorageError codes): transient, retried.
    TRANSIENT: 'RESET',
    THROTTLED: 'THROTTLED',
    FERRY_LOOKUP_TIMEOUT: 'TIMEOUT',
    // A body whose Content-Encoding does not decode (cut short, or not that coding).
    FERRY_BAD_ENCODING: 'RESET',
    UND_ERR_CONNECT_TIMEOUT: 'TIMEOUT',
    UND_ERR_HEADERS_TIMEOUT: 'TIMEOUT',
    UND_ERR_BODY_TIMEOUT: 'TIMEOUT',
    ETIMEDOUT: 'TIMEOUT',
    ENOTFOUND: 'DNS',
    EAI_AGAIN: 'DNS',
    EAI_FAIL: 'DNS',
    EAI_NONAME: 'DNS',
    ENODATA: 'DNS',
    ECONNRESET: 'RESET',
    ECONNREFUSED: 'RESET',
    ECONNABORTED: 'RESET',
    EPIPE: 'RESET',
    EHOSTUNREACH: 'RESET',
    ENETUNREACH: 'RESET',
    UND_ERR_SOCKET: 'RESET',
    UND_ERR_CLOSED: 'RESET',
    UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'SHORT_BODY',
    // Out of file descriptors (--concurrency past `ulimit -n`): this machine's limit, not
    // the origin's nor a bug; sockets free up as requests end, so a later try may connect.
    EMFILE: 'RESET',
    ENFILE: 'RESET',
  } satisfies Record<string, Reason>),
);

/** The reason for a final HTTP status, or null for 2xx. */
export function reasonForStatus(status: number): Reason | null {
  if (status >= 200 && status < 300) return null;
  if (status === 404 || status === 410) return 'NOT_FOUND';
  if (status === 401 || status === 403) return 'FORBIDDEN';
  if (status === 429) return 'THROTTLED';
  if (status >= 500 && status < 600) return 'HTTP_5XX';
  // Other 4xx, and 1xx/3xx that reached us as final (a 3xx without Location).
  return 'HTTP_4XX';
}

/** The first string `code` on an error, its causes, or an AggregateError's first member. */
export function errorCode(err: unknown): string | null {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code) return code;
    // undici's parser errors lose their HPE_ code (its table of names has no reverse entries);
    // the AWS SDK's socket timeouts (smithy's TimeoutError) never had one.
    const name = (e as { name?: unknown }).name;
    if (name === 'HTTPParserError') return 'HPE_INVALID_RESPONSE';
    if (name === 'TimeoutError') return 'ETIMEDOUT';
    const members = (e as { errors?: unknown }).errors;
    e = Array.isArray(members) && members.length > 0 ? members[0] : (e as { cause?: unknown }).cause;
  }
  return null;
}

// Coded failures with no reason of their own (TLS, malformed responses, other undici
// errors): RESET, so replay retries them; only a parse error is worth retrying at once.
const TLS_CODE = /^(?:ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/;
const OTHER_KNOWN = /^(?:HPE_|UND_ERR_)/;

/**
 * Maps a thrown error to a reason, on its code only. An error without a known code is a
 * bug: RESET (replayable) but never retried here, and its detail says so.
 */
export function classifyError(err: unknown): { reason: Reason; code: string | null; retriable: boolean } {
  const code = errorCode(err);
  const reason = code ? CODE_REASONS.get(code) : undefined;
  if (reason) return { reason, code, retriable: classOf(reason) === 'transient' };
  return { reason: 'RESET', code, retriable: code?.startsWith('HPE_') ?? false };
}

function isKnownCode(code: string | null): boolean {
  return code !== null && (CODE_REASONS.has(code) || TLS_CODE.test(code) || OTHER_KNOWN.test(code));
}

// HTTP-date's three forms (RFC 9110 §5.6.7): IMF-fixdate and the obsolete RFC 850 date
// (`Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`), and asctime
// (`Sun Nov  6 08:49:37 1994`, which is GMT though it does not say so).
const GMT_DATE = /^[A-Za-z]{3,9}, \d{2}[ -][A-Za-z]{3}[ -]\d{2,4} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * Retry-After (delta-seconds or HTTP-date) in ms, or null when absent or unreadable. Only
 * those forms: Date.parse alone takes `-5`, `1.5` or `2` for dates in 2001, long past, so
 * a malformed value would have meant "retry now" (and made a 503 a throttle).
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = GMT_DATE.test(v) ? Date.parse(v) : ASCTIME_DATE.test(v) ? Date.parse(`${v} GMT`) : NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

type HeaderBag = Record<string, string | string[] | undefined>;
type WithResponse = { cause?: { $response?: { headers?: HeaderBag }; response?: { headers?: HeaderBag } } };

/**
 * The Retry-After a store sent with a refusal, in ms, or null. StorageError keeps the
 * client's error as its cause: the AWS SDK's has the raw response as `$response`, the
 * GCS client's (gaxios) as `response`; header names may come in any case.
 */
export function retryAfterMs(e: unknown): number | null {
  const cause = e instanceof StorageError ? (e as WithResponse).cause : undefined;
  const headers = cause?.$response?.headers ?? cause?.response?.headers;
  if (!headers || typeof headers !== 'object') return null;
  const value = Object.entries(headers).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
  return parseRetryAfter(Array.isArray(value) ? (value[0] ?? null) : (value ?? null));
}


/**
 * An error's message. A connect to a name with several addresses (Happy Eyeballs) fails
 * with an AggregateError whose own message is empty: its members', one per address tried,
 * say what failed where.
 */
function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const members = (err as { errors?: unknown }).errors;
  if (err.message || !Array.isArray(members) || members.length === 0) return err.message;
  return members.map((m) => (m instanceof Error ? m.message : String(m))).join('; ');
}

/** What undici's timeouts mean here: each is --timeout (storage/http.ts), which its message does not say. */
const TIMEOUT_MEANING: Record<string, string> = {
  UND_ERR_CONNECT_TIMEOUT: 'no connection within --timeout',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers within --timeout',
  UND_ERR_BODY_TIMEOUT: 'no body bytes within --timeout',
};

function describe(err: unknown, code: string | null): string {
  const message = messageOf(err);
  const prefix = isKnownCode(code) ? '' : 'internal error (bug?): ';
  const meaning = code && TIMEOUT_MEANING[code] ? ` (${TIMEOUT_MEANING[code]})` : '';
  return oneLine(redactText(`${prefix}${code ?? (err instanceof Error ? err.name : 'error')}: ${message}${meaning}`));
}

function fail(reason: Reason, detail: string, extra: Partial<Failure> = {}): Failure {
  return {
    ok: false,
    reason,
    detail: oneLine(redactText(detail)),
    invalid: classOf(reason) === 'invalid',
    retriable: classOf(reason) === 'transient',
    status: null,
    code: null,
    retryAfterMs: null,
    ...extra,
  };
}

function fromError(err: unknown, status: number | null = null): Failure {
  const { reason, code, retriable } = classifyError(err);
  return { ...fail(reason, describe(err, code)), retriable, status, code };
}

/** Reads the body up to maxBytes (stopping at the first byte over it), or hands it over past streamAbove. */
async function readBody(src: Source, maxBytes: number, o: DownloadOptions): Promise<Success | Failure> {
  const { contentType, etag, status, meter } = src;
  const expected = src.contentLength;
  const tooLarge = (what: string) => fail('TOO_LARGE', `${what} over max ${maxBytes} bytes`, { status });
  if (expected !== null && expected > maxBytes) {
    src.body.destroy();
    return tooLarge(`Content-Length ${expected}`);
  }
  const large = o.largeBodies;
  if (expected !== null && expected <= (large?.threshold ?? Infinity) && expected <= (o.streamAbove ?? Infinity)) {
    return readSmall(src, expected);
  }
  let held = false;
  const release = () => {
    if (held) large?.slots.release();
    held = false;
  };
  if (o.streamAbove !== undefined && expected !== null && expected > o.streamAbove) {
    return { ok: true, kind: 'stream', stream: metered(src.body, meter), size: expected, status, contentType, etag, release };
  }
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    if (large && expected !== null && expected > large.threshold) {
      await waitUnmetered(large.slots, meter);
      held = true;
    }
    const it = (src.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    for (let next = await it.next(); !next.done; next = await it.next()) {
      const chunk = next.value;
      meter.add(chunk.length);
      n += chunk.length;
      if (n > maxBytes) {
        release();
        src.body.destroy();
        return tooLarge('body');
      }
      chunks.push(chunk);
      // Without an announced length, a body is handed over once past the small-body
      // threshold: holding up to a whole part of it first would double the memory.
      if (o.streamAbove !== undefined && n > Math.min(o.streamAbove, large?.threshold ?? o.streamAbove)) {
        // No length announced and already long: hand over what came and the rest, unread.
        release();
        return { ok: true, kind: 'stream', stream: metered(prepend(chunks, it, src.body), meter), size: null, status, contentType, etag, release: () => {} };
      }
      if (large && !held && n > large.threshold) {
        await waitUnmetered(large.slots, meter);
        held = true;
      }
    }
  } catch (err) {
    release();
    return readFailure(err, n, expected, status);
  }
  if (expected !== null && n < expected) {
    release();
    return fail('SHORT_BODY', `${n} of ${expected} bytes`, { status });
  }
  return { ok: true, kind: 'buffer', body: Buffer.concat(chunks, n), status, contentType, etag, release };
}

/**
 * Whether a body that failed with `code` after `received` of `expected` bytes ended early:
 * the origin closed before its Content-Length, a short body, not a reset. Read buffered or
 * streamed alike.
 */
export function endedEarly(code: string | null, received: number, expected: number | null): boolean {
  return expected !== null && received < expected && (code === 'UND_ERR_SOCKET' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH');
}

function readFailure(err: unknown, n: number, expected: number | null, status: number): Failure {
  const code = errorCode(err);
  if (endedEarly(code, n, expected)) {
    return fail('SHORT_BODY', `${n} of ${expected} bytes (${code})`, { status, code });
  }
  return fromError(err, status);
}

/**
 * The common case, an image: a body whose announced length is under every threshold,
 * read whole by events — no async iterator, no large-body slot, no hand-over. Its
 * length was checked against --max-bytes already; a body that runs past it (a file
 * growing while read) is cut and tried again.
 */
function readSmall(src: Source, expected: number): Promise<Success | Failure> {
  const { body, meter, status, contentType, etag } = src;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (chunk: Buffer) => {
      meter.add(chunk.length);
      n += chunk.length;
      chunks.push(chunk);
      if (n > expected) {
        body.off('data', onData);
        body.destroy();
        resolve(fail('RESET', `body longer than its announced ${expected} bytes`, { status }));
      }
    };
    body.on('data', onData);
    body.once('error', (err) => resolve(readFailure(err, n, expected, status)));
    body.once('end', () => {
      if (n < expected) return resolve(fail('SHORT_BODY', `${n} of ${expected} bytes`, { status }));
      const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
      resolve({ ok: true, kind: 'buffer', body: whole, status, contentType, etag, release: () => {} });
    });
  });
}

/** A body its client read whole: the bytes, or the failure that stopped them. */
async function readWhole(src: WholeSource): Promise<Success | Failure> {
  const { status, contentType, etag, contentLength: expected } = src;
  const r = await src.whole;
  if (!r.ok) return readFailure(r.error, r.received, expected, status);
  if (r.bytes.length < expected) return fail('SHORT_BODY', `${r.bytes.length} of ${expected} bytes`, { status });
  return { ok: true, kind: 'buffer', body: r.bytes, status, contentType, etag, release: () => {} };
}

/**
 * The chunks read so far, then the rest of `source` through its iterator. Destroying it
 * destroys `source`, which aborts the request: a generator-backed stream would instead
 * wait, forever for a paused endless body, for the read it is suspended in.
 */
function prepend(head: Buffer[], rest: AsyncIterator<Buffer>, source: Readable): Readable {
  let pulling = false;
  return new Readable({
    highWaterMark: 64 * 1024,
    read() {
      const chunk = head.shift(); // let each go once pushed
      if (chunk !== undefined) {
        this.push(chunk);
        return;
      }
      if (pulling) return;
      pulling = true;
      rest.next().then(
        (next) => {
          pulling = false;
          this.push(next.done ? null : next.value);
        },
        (err: unknown) => this.destroy(err as Error),
      );
    },
    destroy(err, callback) {
      source.destroy(err ?? undefined);
      callback(err);
    },
  });
}

/**
 * Waits for a large-body slot with the body's minimum-rate watch paused: ferry holds the
 * body unread then, the origin is not slow.
 */
async function waitUnmetered(slots: { acquire(): Promise<void> }, meter: BodyMeter): Promise<void> {
  meter.pause();
  try {
    await slots.acquire();
  } finally {
    meter.resume();
  }
}

/**
 * Why a 206 is not the whole object, or null when its Content-Range covers all of it
 * (`bytes 0-(N-1)/N`). ferry never sends Range, yet some origins and caches answer 206
 * anyway: a part stored as the object would be a truncated file under a success.
 */
export function partOnly(contentRange: string | null): string | null {
  if (contentRange === null) return 'no Content-Range';
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+)$/i.exec(contentRange.trim());
  if (m && Number(m[1]) === 0 && Number(m[2]) + 1 === Number(m[3])) return null;
  return `Content-Range ${contentRange.trim()}, not the whole object`;
}

async function openHttp(url: URL, o: DownloadOptions, maxBytes: number, signal?: AbortSignal): Promise<Source | WholeSource | Failure> {
  let res;
  try {
    // A body that readBody would read whole anyway is read by the client (no stream).
    const wholeUpTo = Math.min(maxBytes, o.largeBodies?.threshold ?? Infinity, o.streamAbove ?? Infinity);
    res = await o.client.get(url, signal ? { signal, wholeUpTo } : { wholeUpTo });
  } catch (err) {
    return fromError(err);
  }
  const reason = reasonForStatus(res.status);
  const { body } = res;
  if (reason) {
    if (body.kind === 'stream') await discardBody(body.stream);
    const retryAfterMs =
      res.status === 429 || res.status === 503 ? parseRetryAfter(headerValue(res.headers, 'retry-after')) : null;
    const via = res.redirects > 0 ? ` after ${res.redirects} redirects` : '';
    return fail(reason, `HTTP ${res.status}${via}`, { status: res.status, retryAfterMs });
  }
  const part = res.status === 206 ? partOnly(headerValue(res.headers, 'content-range')) : null;
  if (part !== null) {
    if (body.kind === 'stream') await discardBody(body.stream);
    return fail('SHORT_BODY', `HTTP 206 Partial Content to a GET without Range: ${part}`, { status: res.status });
  }
  const head = { status: res.status, contentType: headerValue(res.headers, 'content-type'), etag: headerValue(res.headers, 'etag') };
  if (body.kind === 'whole') return { whole: body.read, contentLength: res.contentLength!, ...head };
  return { body: body.stream, meter: body.meter, contentLength: res.contentLength, ...head };
}

const STORE_REASONS: Record<StorageError['code'], Reason> = {
  NOT_FOUND: 'NOT_FOUND',
  FORBIDDEN: 'FORBIDDEN',
  THROTTLED: 'THROTTLED',
  TRANSIENT: 'HTTP_5XX',
  EXISTS: 'HTTP_4XX',
  // a key no bucket can hold: no object is there to fetch
  KEY_TOO_LONG: 'BAD_URL',
  FATAL: 'HTTP_4XX',
};

/** An s3:// or gs:// source, read with the store's own client and credentials. */
async function openStoreObject(url: string, o: DownloadOptions): Promise<Source | Failure> {
  if (!o.stores) return fail('UNSUPPORTED_SCHEME', `no object store configured for ${url}`); // checked before, kept for the types
  let place: Place;
  let key: string;
  try {
    const parsed = parseObjectUrl(url);
    key = parsed.key;
    place = { scheme: parsed.scheme, bucket: parsed.bucket, prefix: '' };
  } catch {
    return fail('BAD_URL', `not an object URL: ${url}`);
  }
  try {
    const { body: source, info, length } = await (await o.stores(place)).read(key);
    // The stores' SDKs bound a body's waits loosely or not at all (GCS streams have no
    // timeout): the same idle timeout and minimum rate as HTTP bodies end one that stalls.
    const { body, meter } = o.client.watch(source);
    return { body, meter, contentLength: length, status: 200, contentType: info.contentType ?? null, etag: info.version };
  } catch (err) {
    if (!(err instanceof StorageError)) return fromError(err);
    // A request that got no answer: the network's own reason (DNS, TIMEOUT), else RESET.
    const network = () => CODE_REASONS.get(errorCode(err.cause) ?? '') ?? 'RESET';
    const reason = err.code === 'TRANSIENT' && err.status === undefined ? network() : STORE_REASONS[err.code];
    // A store that throttles may say when to come back, as an HTTP origin does.
    return fail(reason, `${err.code}: ${err.message}`, { status: err.status ?? null, retryAfterMs: err.code === 'THROTTLED' ? retryAfterMs(err) : null });
  }
}

const LOCAL_REASONS: Record<LocalSourceError['code'], Reason> = {
  BAD_URL: 'BAD_URL',
  BLOCKED_PATH: 'BLOCKED_PATH',
  NOT_FOUND: 'NOT_FOUND',
  FORBIDDEN: 'FORBIDDEN',
  TRANSIENT: 'RESET',
};

/** A file:// source, readable only under --local-source-root. */
async function openLocal(url: string, o: DownloadOptions): Promise<Source | Failure> {
  try {
    const f = await openLocalSource(url, o.localSourceRoot ?? '');
    return { body: f.body, meter: NO_METER, contentLength: f.size, status: 200, contentType: null, etag: f.version };
  } catch (err) {
    if (err instanceof LocalSourceError) return fail(LOCAL_REASONS[err.code], err.message);
    return fromError(err);
  }
}

function isStoreUrl(url: string): boolean {
  return /^(s3|gs):\/\//i.test(url);
}

/** One try; `http` is the URL parsed, for an HTTP source. */
async function tryOnce(url: string, http: URL | null, o: DownloadOptions, maxBytes: number, signal?: AbortSignal): Promise<Success | Failure> {
  const src = http ? await openHttp(http, o, maxBytes, signal) : isFileUrl(url) ? await openLocal(url, o) : await openStoreObject(url, o);
  if ('ok' in src) return src;
  if ('whole' in src) return readWhole(src);
  return readBody(src, maxBytes, o);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

/** Calls the hook; an observer that throws must not change the download's outcome. */
function report(o: DownloadOptions, host: string, outcome: AttemptOutcome): void {
  try {
    o.onAttempt?.(host, outcome);
  } catch {
    // ignored on purpose
  }
}

/**
 * A try's verdict for its host's limit. A 429, an object store's SlowDown (THROTTLED) and a
 * 503 that asks to come back later (Retry-After) are throttles; a bare 503 is not: origins
 * answer it for one dead object as often as for load, and a few such objects would pin a
 * healthy host at one request (measured: 10 % of rows a permanent 503, 30× slower). A
 * prompt answer, even a refusal such as 404, is a healthy host; a timeout, reset or other
 * 5xx says nothing about the limit either way.
 */
export function verdictOf(status: number | null, reason: Reason | null, retryAfter = false): Verdict {
  if (reason === 'THROTTLED' || status === 429 || (status === 503 && retryAfter)) return 'throttled';
  if (reason === null) return 'ok';
  return status !== null && classOf(reason) !== 'transient' ? 'ok' : 'neutral';
}

const NO_SLOT: Lease = { release: () => {} };

/** Hosts of object-store sources are buckets: kept apart from web hosts of the same name. */
function slotKey(url: string, host: string): string {
  return isStoreUrl(url) ? `${url.slice(0, 2).toLowerCase()}://${host}` : host;
}

/**
 * A try's success as the download's result. A buffered body is done with its host. A
 * streamed one still talks to it: its host's slot goes back when the stream closes, or
 * when the caller releases the body, whichever is first. Either keeps its request slot
 * (`slot`) until the caller releases the body.
 */
function succeeded(r: Success, lease: Lease, slot: () => void, attempts: number): DownloadOk {
  const { contentType, etag } = r;
  if (r.kind === 'buffer') {
    lease.release('ok');
    return { ok: true, kind: 'buffer', body: r.body, contentType, etag, release: both(r.release, slot), attempts };
  }
  const { stream } = r;
  const release = both(r.release, slot);
  let held = true;
  const done = () => {
    if (held) lease.release(stream.readableEnded ? 'ok' : 'neutral');
    held = false;
  };
  if (stream.closed) done();
  else stream.once('close', done);
  const releaseBoth = () => {
    done();
    release();
  };
  return { ok: true, kind: 'stream', stream, size: r.size, contentType, etag, release: releaseBoth, attempts };
}

/** `f`, once, however often it is called. */
function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    f();
  };
}

/** `a` then `b`, once. */
function both(a: () => void, b: () => void): () => void {
  return once(() => {
    a();
    b();
  });
}

function toErr(f: Failure, attempts: number): DownloadErr {
  return { ok: false, reason: f.reason, attempts, detail: f.detail, invalid: f.invalid };
}

/**
 * GET `url` with retries. `signal` aborts the download (a TIMEOUT result, detail
 * "aborted"). Resolves, never rejects.
 */
export async function download(url: string, opts: DownloadOptions, signal?: AbortSignal): Promise<DownloadResult> {
  try {
    return await downloadWithRetries(url, opts, signal);
  } catch (err) {
    // Unreachable by design; a bug here must become this task's result, not a crash.
    return toErr(fromError(err), 0);
  }
}

async function downloadWithRetries(given: string, o: DownloadOptions, signal?: AbortSignal): Promise<DownloadResult> {
  const url = sourceUrlText(given);
  // BAD_URL / UNSUPPORTED_SCHEME are decided before any try: 0 attempts.
  const store = isStoreUrl(url);
  const file = isFileUrl(url);
  if (store && !o.stores) return toErr(fail('UNSUPPORTED_SCHEME', `no object store configured for ${url}`), 0);
  if (file && !o.localSourceRoot) return toErr(fail('UNSUPPORTED_SCHEME', `file: URLs are read only under --local-source-root: ${url}`), 0);
  let http: URL | null = null;
  try {
    if (!store && !file) http = parseHttpUrl(url); // parsed once, for every try
  } catch (err) {
    return toErr(fromError(err), 0);
  }
  const retries = o.retries ?? DOWNLOAD_DEFAULTS.retries;
  const maxBytes = o.maxBytes ?? DOWNLOAD_DEFAULTS.maxBytes;
  const maxRetryAfter = o.maxRetryAfterMs ?? DOWNLOAD_DEFAULTS.maxRetryAfterMs;
  const host = http ? http.host : hostOf(url);
  const key = slotKey(url, host);
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) return toErr(fail('TIMEOUT', 'aborted'), attempt - 1);
    // Its host's slot first, then the worker's: one throttled host's queue holds no request slot.
    const lease = o.admit ? await o.admit.acquire(key) : NO_SLOT;
    if (o.slots) await o.slots.acquire(key);
    const slot = once(() => o.slots?.release(key));
    const started = Date.now();
    const r = await tryOnce(url, http, o, maxBytes, signal).catch((err: unknown) => {
      lease.release('neutral'); // a bug; the slots must not leak with it
      slot();
      throw err;
    });
    if (o.onAttempt) {
      const failed = r.ok ? null : r;
      report(o, host, { attempt, status: r.status, code: failed?.code ?? null, reason: failed?.reason ?? null, ms: Date.now() - started });
    }
    if (r.ok) return succeeded(r, lease, slot, attempt);
    lease.release(verdictOf(r.status, r.reason, r.retryAfterMs !== null));
    slot();
    if (signal?.aborted) return toErr(fail('TIMEOUT', 'aborted'), attempt);
    if (!r.retriable) return toErr(r, attempt);
    const throttled = waitPastBound(r.retryAfterMs, r.detail, maxRetryAfter);
    if (throttled !== null) return toErr(fail('THROTTLED', throttled), attempt);
    if (attempt > retries) return toErr(r, attempt);
    const base = o.backoffBaseMs ?? DOWNLOAD_DEFAULTS.backoffBaseMs;
    const cap = o.backoffCapMs ?? DOWNLOAD_DEFAULTS.backoffCapMs;
    // Resting, the task holds no slot, yet its host still has work (PROGRESS Conc).
    const resting = o.admit?.rest?.(key);
    await sleep(retryWaitMs(attempt, r.retryAfterMs, base, cap, o.random), signal);
    resting?.();
  }
}
