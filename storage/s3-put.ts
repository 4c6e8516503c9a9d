/**
 * A lean PutObject for small Buffer bodies. The AWS SDK v3 spends most of a small PUT's CPU
 * in its per-request middleware (endpoint rules, schema serialization, retry strategy, its
 * HTTP handler): measured through S3Store.put, 20 KB to fauxqs at concurrency 256, ~0.77 ms
 * of CPU per PUT by the SDK against ~0.10 ms this way (of which ~25 µs is signing). So
 * single-part PUTs go this way and the SDK keeps everything else (storage/s3.ts).
 *
 * Nothing about the request is guessed. Where it goes and how it is signed is what the SDK
 * itself resolves for the bucket, once per store: a PutObject is run through the client's
 * own middleware up to serialization and stopped there, before anything is sent
 * (openLeanPut). Anything but plain SigV4 on a plain endpoint — SigV4a (multi-region access
 * points), S3 Express sessions, endpoint headers — is left to the SDK. Each request is
 * signed by @smithy/signature-v4 (the signer the SDK uses) with the client's own credential
 * provider (cached and refreshed by the SDK), hash, signing region and clock-skew offset.
 *
 * The body's sha256 is signed as x-amz-content-sha256, so S3 refuses a body that does not
 * match it (XAmzContentSHA256Mismatch): the integrity check Content-MD5 gives the SDK path,
 * without hashing the bytes again. It is sent as x-amz-checksum-sha256 too, the checksum a
 * bucket with a default Object Lock retention requires of every write.
 *
 * Errors: an S3 error answer is thrown as an S3ResponseError, shaped as the SDK's service
 * errors are (`name` = S3's code, `$metadata.httpStatusCode`, `$response.headers`), so one
 * classifier (classifyS3Error) and the worker's Retry-After lookup read both paths alike.
 * Network errors are undici's own, with stable codes. undici retries nothing here, so every
 * try is one the worker's loop counted.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { ResponseHandler } from './response.js';
import type { ProxyRoute } from './s3-proxy.js';
import { Pool, ProxyAgent } from './undici.js';

/**
 * Bodies of this size or more are left to the SDK, which sends them with `Expect:
 * 100-continue` (its default threshold), so a refused PUT (412, 403) does not upload its
 * body first; undici's HTTP/1.1 client cannot. The per-request cost matters for small
 * objects anyway.
 */
export const EXPECT_CONTINUE_BYTES = 2 * 2 ** 20;

export type LeanPutInput = {
  /** the object's full key, store prefix included */
  key: string;
  body: Buffer;
  /** the body's sha256, hex: signed as x-amz-content-sha256, so S3 checks the body against it */
  sha256: string;
  contentType: string;
  /** user metadata, sent as x-amz-meta-* */
  metadata: Record<string, string>;
  /** If-None-Match: * (create only) */
  ifNoneMatch: boolean;
};

export type LeanPutOptions = {
  /** sockets to the endpoint */
  connections: number;
  /** connect, response-headers and body-idle timeout, ms */
  timeoutMs: number;
  /** connect timeout, ms */
  connectTimeoutMs: number;
  /** the proxy a request to an endpoint goes through (s3-proxy.ts), absent: direct */
  proxyRoute?: ProxyRoute | null;
};

type Headers = Record<string, string | string[] | undefined>;

/**
 * An S3 error answer, shaped as the SDK's service errors are, for classifyS3Error and the
 * worker's retryAfterMs; `clockSkewCorrected` as the SDK's signer sets it: the answer's Date
 * moved this machine's clock offset by more than CLOCK_SKEW_MS.
 */
class S3ResponseError extends Error {
  readonly $metadata: { httpStatusCode: number; clockSkewCorrected?: true };
  readonly $response: { statusCode: number; headers: Headers };

  constructor(code: string, status: number, headers: Headers, clockSkewCorrected: boolean) {
    super(`PutObject: ${code}, HTTP ${status}`);
    this.name = code;
    this.$metadata = { httpStatusCode: status, ...(clockSkewCorrected ? { clockSkewCorrected: true } : {}) };
    this.$response = { statusCode: status, headers };
  }
}

/** S3's refusals of a request signed too far from its own time (RequestTimeTooSkewed: 15 min), which a corrected clock cures. */
export const CLOCK_SKEW_CODES = new Set(['RequestTimeTooSkewed', 'RequestExpired', 'RequestInTheFuture']);

/** Percent-encoded as the SDK encodes path segments and query parts: RFC 3986, so `!'()*` too. */
const encodePart = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** A key as the SDK puts it in a path: each segment encoded, slashes kept. */
export function encodeKey(key: string): string {
  return key.split('/').map(encodePart).join('/');
}

// ---------------------------------------------------------------------------------------
// The route: what the SDK resolves for a PutObject to this bucket

/** Where a PutObject to the bucket goes and how it is signed. */
export type Route = {
  protocol: string;
  hostname: string;
  port: number | undefined;
  /** the Host header, as the SDK's hostHeaderMiddleware writes it */
  host: string;
  /** the path before the encoded key, ending with `/` */
  basePath: string;
  /** the operation's query (`x-id=PutObject`), signed and sent */
  query: Record<string, string>;
  signingRegion: string;
  signingName: string;
};

/** A key whose encoding exercises every rule of encodeKey: the route is refused unless the SDK encodes it alike. */
const PROBE_KEY = "ferry-route/a b+c!'()*~é%2F.png";

type Serialized = { protocol: string; hostname: string; port?: number; path: string; query: Record<string, unknown>; headers: Record<string, string> };
type Resolution = {
  endpointV2?: { headers?: Record<string, unknown> };
  authSchemes?: { name?: string }[];
  __smithy_context?: { selectedHttpAuthScheme?: { httpAuthOption?: { schemeId?: string; signingProperties?: { signingRegion?: unknown; signingName?: unknown } } } };
};

/** The route from what the SDK serialized, or null when it is anything but plain SigV4 to a plain endpoint. */
function routeOf(request: Serialized, context: Resolution): Route | null {
  const auth = context.__smithy_context?.selectedHttpAuthScheme?.httpAuthOption;
  const schemes = context.authSchemes ?? [];
  if (auth?.schemeId !== 'aws.auth#sigv4' || schemes.length > 1 || (schemes[0] !== undefined && schemes[0].name !== 'sigv4')) return null;
  if (Object.keys(context.endpointV2?.headers ?? {}).length > 0) return null;
  if (Object.keys(request.headers).some((h) => h.toLowerCase() !== 'content-type')) return null;
  const { signingRegion, signingName } = auth.signingProperties ?? {};
  if (typeof signingRegion !== 'string' || typeof signingName !== 'string') return null;
  const suffix = encodeKey(PROBE_KEY);
  if (!request.path.endsWith(`/${suffix}`)) return null;
  const query: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.query)) {
    if (typeof v !== 'string') return null;
    query[k] = v;
  }
  const { protocol, hostname, port } = request;
  const host = typeof port === 'number' ? `${hostname}:${port}` : hostname;
  return { protocol, hostname, port, host, basePath: request.path.slice(0, -suffix.length), query, signingRegion, signingName };
}

/**
 * Runs a PutObject through the client's middleware up to serialization and stops it there:
 * the SDK has then resolved the endpoint (its rules, path or virtual-hosted style, custom
 * endpoints from options, environment and config files) and the auth scheme, and nothing
 * was sent. Rejects with the SDK's error when it cannot resolve them (no credentials, say).
 */
export async function resolveRoute(client: S3Client, bucket: string): Promise<Route | null> {
  const command = new PutObjectCommand({ Bucket: bucket, Key: PROBE_KEY, Body: Buffer.alloc(0) });
  let seen: { request: Serialized; context: Resolution } | undefined;
  command.middlewareStack.addRelativeTo(
    (_next: unknown, context: Resolution) => async (args: { input: unknown; request?: unknown }) => {
      seen = { request: args.request as Serialized, context }; // after serializerMiddleware: its HttpRequest
      throw new Error('stopped after serialization'); // nothing is sent
    },
    { relation: 'after', toMiddleware: 'serializerMiddleware', name: 'ferryLeanPutRoute' },
  );
  await client.send(command).catch((e: unknown) => {
    if (seen === undefined) throw e;
  });
  return seen ? routeOf(seen.request, seen.context) : null;
}

// ---------------------------------------------------------------------------------------
// Sending

/**
 * The SDK's clock-skew correction, shared with the client: requests are signed at local
 * time plus the offset that S3's Date headers taught it, and each answer updates that
 * offset as the SDK's own signer does (unless it carries an Age header: a cache's copy).
 */
class SkewClock {
  constructor(
    private readonly config: { systemClockOffset: number },
    private readonly enabled: boolean,
  ) {}

  now(): Date {
    return new Date(Date.now() + (this.enabled ? this.config.systemClockOffset : 0));
  }

  get offset(): number {
    return this.config.systemClockOffset;
  }

  /** Learns the offset from an answer; true when it differs from `signedWith` and is past CLOCK_SKEW_MS (the SDK's clockSkewCorrected). */
  sample(headers: Headers, sentAt: number, signedWith: number): boolean {
    if (!this.enabled || headers.age !== undefined || typeof headers.date !== 'string') return false;
    const server = Date.parse(headers.date);
    const now = Date.now();
    if (Number.isNaN(server) || now - sentAt > 900_000) return false;
    this.config.systemClockOffset = server - now;
    return this.config.systemClockOffset !== signedWith && Math.abs(this.config.systemClockOffset) >= CLOCK_SKEW_MS;
  }
}

/** An offset the SDK's signer calls a skew it corrected (4 min); S3 refuses past 15. */
const CLOCK_SKEW_MS = 240_000;

/** A PutObject before signing, in the shape SignatureV4 signs (the SDK's HttpRequest). */
type Unsigned = { method: 'PUT'; protocol: string; hostname: string; port: number | undefined; path: string; query: Record<string, string>; headers: Record<string, string> };

/** S3's error code from an XML error body. */
const errorCode = (body: string): string | undefined => /<Code>([^<]{1,200})<\/Code>/.exec(body)?.[1];

export class LeanPut {
  private readonly search: string;
  /** set once S3 redirected a PUT: the bucket is not where the client looks, and the SDK follows redirects */
  private redirected = false;

  constructor(
    private readonly route: Route,
    private readonly signer: SignatureV4,
    private readonly clock: SkewClock,
    /** The route's own pool, or a proxy's agent (which serves any origin, so each request names it). */
    private readonly pool: Pool | ProxyAgent,
    private readonly origin: string,
  ) {
    const q = Object.entries(route.query).map(([k, v]) => `${encodePart(k)}=${encodePart(v)}`);
    this.search = q.length > 0 ? `?${q.join('&')}` : '';
  }

  /** Whether puts may go this way (false once S3 redirected one). */
  get usable(): boolean {
    return !this.redirected;
  }

  /** The request as the SDK would build it, before signing. */
  private request(input: LeanPutInput): Unsigned {
    const { protocol, hostname, port, host, basePath, query } = this.route;
    const headers: Record<string, string> = {
      host,
      'content-type': input.contentType,
      'content-length': String(input.body.length),
      'x-amz-content-sha256': input.sha256,
      // S3 refuses a write to a bucket with a default Object Lock retention unless it
      // carries Content-MD5 or a checksum: the sha256 at hand is one, and costs nothing.
      'x-amz-checksum-sha256': Buffer.from(input.sha256, 'hex').toString('base64'),
    };
    if (input.ifNoneMatch) headers['if-none-match'] = '*';
    for (const [name, value] of Object.entries(input.metadata)) headers[`x-amz-meta-${name}`] = value;
    return { method: 'PUT', protocol, hostname, port, path: basePath + encodeKey(input.key), query, headers };
  }

  /** The signed headers of a request, at the client's skew-corrected time. */
  private async sign(request: Unsigned): Promise<Record<string, string>> {
    const { route } = this;
    const signed = await this.signer.sign(request, { signingDate: this.clock.now(), signingRegion: route.signingRegion, signingService: route.signingName });
    return signed.headers;
  }

  /**
   * Sends one PutObject. Resolves true once S3 stored it, false when S3 redirected it to the
   * bucket's region (nothing stored: the caller sends it through the SDK); throws an
   * S3ResponseError for an error answer and undici's error for a network failure.
   */
  async put(input: LeanPutInput): Promise<boolean> {
    try {
      return await this.send(input);
    } catch (e) {
      // Refused for this machine's clock, and the answer taught S3's time: sent once more,
      // signed at it, as the SDK's retry strategy does (one try of the caller's, as for the SDK).
      if (e instanceof S3ResponseError && e.$metadata.clockSkewCorrected && CLOCK_SKEW_CODES.has(e.name)) return this.send(input);
      throw e;
    }
  }

  private async send(input: LeanPutInput): Promise<boolean> {
    const request = this.request(input);
    const signedWith = this.clock.offset;
    const headers = await this.sign(request);
    const sentAt = Date.now();
    // S3's answer, an empty body or a short XML error, is read whole: no stream per PUT.
    const handler = new ResponseHandler({ choose: () => 'whole' });
    this.pool.dispatch({ origin: this.origin, method: 'PUT', path: request.path + this.search, headers, body: input.body }, handler);
    const res = await handler.head;
    const skewCorrected = this.clock.sample(res.headers, sentAt, signedWith);
    if (res.body.kind !== 'whole') throw new Error('internal: a PutObject answer not read whole');
    const body = await res.body.read;
    if (!body.ok) throw body.error;
    const text = body.bytes.toString('utf8');
    const code = errorCode(text);
    const { status } = res;
    if ((status >= 300 && status < 400) || (status === 400 && code === 'IllegalLocationConstraintException')) {
      this.redirected = true;
      return false;
    }
    // S3 can fail after answering 200 with an error body; the SDK takes that as a 503.
    if (status >= 200 && status < 300 && !text.trimEnd().endsWith('</Error>')) return true;
    throw new S3ResponseError(code ?? 'UnknownError', status < 300 ? 503 : status, res.headers, skewCorrected);
  }

  /** Closes the sockets at once, as S3Client.destroy() does. */
  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** The signer the SDK uses, configured as the client configures it: its hash, S3's single path-encoding, its credentials. */
export function signerFor(config: S3Client['config'], route: Pick<Route, 'signingRegion' | 'signingName'>): SignatureV4 {
  return new SignatureV4({
    service: route.signingName,
    region: route.signingRegion,
    credentials: config.credentials,
    sha256: config.sha256,
    uriEscapePath: config.signingEscapePath,
  });
}

/**
 * The lean PutObject for a bucket, or null where the SDK must send (see routeOf). Rejects
 * when the SDK itself cannot resolve a PutObject now (no credentials, say).
 */
export async function openLeanPut(client: S3Client, bucket: string, options: LeanPutOptions): Promise<LeanPut | null> {
  const route = await resolveRoute(client, bucket);
  if (!route) return null;
  const clock = new SkewClock(client.config, !(await client.config.disableClockSkewCorrection()));
  const origin = `${route.protocol}//${route.host}`;
  const bounds = { connections: options.connections, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs };
  const proxy = options.proxyRoute?.(new URL(origin)) ?? null;
  if (proxy) {
    // Through HTTP(S)_PROXY (s3-proxy.ts): a tunnel per connection, with the same bounds.
    const agent = new ProxyAgent({ uri: proxy, ...bounds, proxyTls: { timeout: options.connectTimeoutMs }, requestTls: { timeout: options.connectTimeoutMs } });
    return new LeanPut(route, signerFor(client.config, route), clock, agent, origin);
  }
  const pool = new Pool(origin, { ...bounds, connect: { timeout: options.connectTimeoutMs } });
  return new LeanPut(route, signerFor(client.config, route), clock, pool, origin);
}
