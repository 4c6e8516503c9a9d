/**
 * Guarded HTTP GET for untrusted manifest URLs: keep-alive pools with a per-host cap, hard
 * connect/headers timeouts, an idle body timeout plus a minimum-rate cut, redirects
 * followed by hand so that every hop goes through the network guard again.
 *
 * Errors are thrown with a stable `code` (ours are `FERRY_*`; undici's `UND_ERR_*` and
 * Node's `E*` pass through) so callers classify on codes, never on messages.
 */
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type BodyMode, ResponseHandler, type HttpBody, type HttpHeaders, type ResponseHead, headerValue } from './response.js';
import { codingsToRemove, decodedBody } from './content-coding.js';
import { idleCut } from './idle.js';
import { type BodyMeter, RateWatch } from './min-rate.js';
import { checkHost, checkLiteralHost, createGuard, guardedLookup, type Guard } from './netguard.js';
import { type ProxyConfig, envProxy } from './proxy-env.js';
import { proxyRoute } from './no-proxy.js';
import { redactUrl } from './redact.js';

export type { ProxyConfig } from './proxy-env.js';
import { EnvHttpProxyAgent, Pool } from './undici.js';
import { OriginPools } from './origin-pools.js';

export type { HttpBody, HttpHeaders, WholeBody } from './response.js';
export { headerValue } from './response.js';
export type OriginHeaders = ReadonlyMap<string, ReadonlyArray<readonly [string, string]>>;

export type HttpClientOptions = {
  /** Connect, headers, and idle time between body chunks, in ms (`--timeout`). Default 30000. */
  timeoutMs?: number;
  /** Bytes/s a body must average over `minRateWindowMs`, else it is cut (`--min-rate`). 0 = off. Default 1024. */
  minRate?: number;
  /** Window of the minimum-rate check, in ms. Default 60000. */
  minRateWindowMs?: number;
  /** Redirects followed per GET (`--max-redirects`). Default 5. */
  maxRedirects?: number;
  /** `--allow-private-network`: allow every address kind but cloud metadata. Default false. */
  allowPrivateNetwork?: boolean;
  /** CIDRs allowed without allowPrivateNetwork (metadata still refused). Default none. */
  allowCidrs?: readonly string[];
  /** Keep-alive connections per origin. Default 64. */
  connectionsPerHost?: number;
  /** Extra request headers per origin host (`--origin-header HOST=Name: value`); key `host` or `host:port`. */
  originHeaders?: OriginHeaders;
  /** 'env' reads HTTPS_PROXY/HTTP_PROXY/NO_PROXY (either case). Default 'env'. */
  proxy?: 'env' | 'none' | ProxyConfig;
  /** Default 'ferry'. */
  userAgent?: string;
};

export type ResolvedHttpOptions = Required<Omit<HttpClientOptions, 'originHeaders' | 'proxy'>> & {
  originHeaders: OriginHeaders;
  proxy: ProxyConfig | null;
};

export type HttpResponse = {
  status: number;
  headers: HttpHeaders;
  /** Content-Length when present and valid, else null (and null for a body whose Content-Encoding ferry removes). */
  contentLength: number | null;
  /**
   * The body: read whole by the client (a 2xx whose Content-Length is at most the GET's
   * `wholeUpTo`), or a stream. The idle timeout applies while it is read. Destroy a stream
   * to stop it. The minimum-rate cut counts what a stream's reader takes: `add` each
   * chunk's length to its meter, or read through `metered(stream, meter)` (min-rate.ts); a
   * stream read without counting is cut once the rate's window has passed.
   */
  body: Exclude<HttpBody, { kind: 'discard' }>;
  /** The URL that answered, after redirects (not redacted: use redactUrl to print it). */
  url: string;
  redirects: number;
};

export type HttpErrorCode =
  | 'FERRY_BAD_URL'
  | 'FERRY_UNSUPPORTED_SCHEME'
  | 'FERRY_TOO_MANY_REDIRECTS'
  | 'FERRY_MIN_RATE'
  | 'FERRY_IDLE_TIMEOUT'
  | 'FERRY_LOOKUP_TIMEOUT'
  | 'FERRY_BAD_ENCODING';

export class HttpGetError extends Error {
  constructor(
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HttpGetError';
  }
}

export interface HttpClient {
  readonly options: ResolvedHttpOptions;
  /**
   * GET `url` (a URL object must come from parseHttpUrl), following redirects. Throws coded
   * errors (see module doc). A 2xx body whose Content-Length is at most `wholeUpTo` comes
   * read whole; every other one as a stream.
   */
  get(url: string | URL, init?: GetInit): Promise<HttpResponse>;
  /**
   * Puts a body fetched by other means (an object store's) under the same idle timeout and
   * minimum-rate cut as an HTTP body: read the body returned, counting on its meter.
   */
  watch(body: Readable): { body: Readable; meter: BodyMeter };
  close(): Promise<void>;
}

export type GetInit = { signal?: AbortSignal; wholeUpTo?: number };

export const HTTP_DEFAULTS = {
  timeoutMs: 30_000,
  minRate: 1024,
  minRateWindowMs: 60_000,
  maxRedirects: 5,
  allowPrivateNetwork: false,
  connectionsPerHost: 64,
  userAgent: 'ferry',
} as const;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function resolveOptions(o: HttpClientOptions): ResolvedHttpOptions {
  const headers = new Map<string, ReadonlyArray<readonly [string, string]>>();
  for (const [host, list] of o.originHeaders ?? []) {
    const key = originKey(host);
    headers.set(key, [...(headers.get(key) ?? []), ...list]);
  }
  const proxy = o.proxy === 'none' ? null : o.proxy === undefined || o.proxy === 'env' ? envProxy() : o.proxy;
  return {
    timeoutMs: o.timeoutMs ?? HTTP_DEFAULTS.timeoutMs,
    minRate: o.minRate ?? HTTP_DEFAULTS.minRate,
    minRateWindowMs: o.minRateWindowMs ?? HTTP_DEFAULTS.minRateWindowMs,
    maxRedirects: o.maxRedirects ?? HTTP_DEFAULTS.maxRedirects,
    allowPrivateNetwork: o.allowPrivateNetwork ?? HTTP_DEFAULTS.allowPrivateNetwork,
    allowCidrs: o.allowCidrs ?? [],
    connectionsPerHost: o.connectionsPerHost ?? HTTP_DEFAULTS.connectionsPerHost,
    originHeaders: headers,
    proxy,
    userAgent: o.userAgent ?? HTTP_DEFAULTS.userAgent,
  };
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/** A URL's host without a final dot: `example.com.` is the name `example.com`. */
const hostOf = (u: URL): string => u.hostname.replace(/\.$/, '');

/**
 * An `--origin-header` host spelt as requestHeaders looks it up: its name or address as the
 * URL parser writes a URL's (lower case, IDN as punycode, IPv4 and IPv6 canonical, IPv6 in
 * brackets, a bare one included), without a final dot, and `:port` when one is given (kept
 * as given: `example.com:443` means https URLs without a port too).
 */
export function originKey(text: string): string {
  const t = text.trim();
  const m = isIP(t) === 6 ? null : /^(.*?)(?::(\d+))?$/.exec(t);
  const host = m ? (m[1] ?? '') : `[${t}]`;
  let name: string;
  try {
    name = new URL(`http://${host}/`).hostname.replace(/\.$/, '');
  } catch {
    return t.toLowerCase(); // no URL has this host: it matches nothing
  }
  return m?.[2] ? `${name}:${Number(m[2])}` : name;
}

/** Parses a URL ferry may fetch over HTTP; throws BAD_URL or UNSUPPORTED_SCHEME. */
export function parseHttpUrl(text: string, base?: URL): URL {
  let u: URL;
  try {
    u = new URL(text, base);
  } catch {
    throw new HttpGetError('FERRY_BAD_URL', `not a URL: ${redactUrl(text)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new HttpGetError('FERRY_UNSUPPORTED_SCHEME', `scheme ${u.protocol} not fetched over HTTP: ${redactUrl(u.href)}`);
  }
  if (u.hostname === '') throw new HttpGetError('FERRY_BAD_URL', `no host: ${redactUrl(u.href)}`);
  return u;
}

/** What a GET needs of its dispatcher. */
type Dispatch = Pick<Dispatcher, 'dispatch'> & { close(): Promise<void> };

/** Whether a URL goes through the proxy (no-proxy.ts: proxyRoute). */
function goesViaProxy(proxy: ProxyConfig | null): (u: URL) => boolean {
  const route = proxyRoute(proxy);
  return route ? (u) => route(u) !== null : () => false;
}

/**
 * The most response-header bytes taken. undici's default is Node's 16 KiB, and an origin's
 * cookies alone pass it (500 `Set-Cookie`, a 20 KiB header): such an object, which curl
 * (300 KiB) and Chrome (256 KiB) fetch, failed as RESET, never retried. 256 KiB as Chrome;
 * it bounds the parser's buffer per connection, as a body's ceiling bounds the body.
 */
export const MAX_HEADER_BYTES = 256 * 1024;

function makeDispatcher(o: ResolvedHttpOptions, guard: Guard, viaProxy: (u: URL) => boolean): Dispatch {
  const agentOpts = {
    connections: o.connectionsPerHost,
    maxHeaderSize: MAX_HEADER_BYTES,
    connectTimeout: o.timeoutMs,
    headersTimeout: o.timeoutMs,
    bodyTimeout: o.timeoutMs,
    // Only direct connections use this lookup; a proxy's own connection is operator-configured.
    connect: { lookup: guardedLookup(guard), timeout: o.timeoutMs },
  };
  const direct = new OriginPools(agentOpts);
  if (!o.proxy) return direct;
  // The tunnel to the proxy (CONNECT) has its own client, which undici leaves without our
  // timeouts: a proxy that accepts and never answers would hold a fetch forever.
  const bounded = { connectTimeout: o.timeoutMs, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs };
  const proxied = new EnvHttpProxyAgent({
    ...agentOpts,
    ...o.proxy,
    // NO_PROXY is decided by viaProxy: only URLs that go through the proxy come here.
    noProxy: '',
    proxyTls: { timeout: o.timeoutMs },
    clientFactory: (origin: URL, opts: object) => new Pool(origin, { ...opts, ...bounded }),
  });
  return {
    dispatch: (opts, handler) => (viaProxy(new URL(String(opts.origin))) ? proxied : direct).dispatch(opts, handler),
    close: async () => {
      await Promise.all([direct.close(), proxied.close()]);
    },
  };
}

/**
 * The `--origin-header` headers for a URL (keys from originKey), names in lower case: the
 * host's, then its host:port's (the scheme's port when the URL gives none), which win
 * where both name one header.
 */
export function originHeadersFor(headers: OriginHeaders, u: URL): Record<string, string> {
  const h: Record<string, string> = {};
  if (headers.size === 0) return h;
  const host = hostOf(u);
  const port = Number(u.port) || DEFAULT_PORTS[u.protocol];
  for (const list of [headers.get(host), headers.get(`${host}:${port}`)]) for (const [name, value] of list ?? []) h[name.toLowerCase()] = value;
  return h;
}

/**
 * A hop's headers. `--origin-header` values go to their host, but not in clear text after
 * the chain was on https (a redirect to http: on the same host would leak them, as curl
 * also refuses).
 */
function requestHeaders(o: ResolvedHttpOptions, u: URL, downgraded: boolean): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': o.userAgent, accept: '*/*', 'accept-encoding': 'identity' };
  if (!downgraded) Object.assign(h, originHeadersFor(o.originHeaders, u));
  if (u.username || u.password) {
    const cred = `${safeDecode(u.username)}:${safeDecode(u.password)}`;
    h.authorization = `Basic ${Buffer.from(cred).toString('base64')}`;
  }
  return h;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HttpGetError('FERRY_LOOKUP_TIMEOUT', `${what} took over ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Reads and drops up to `limit` bytes of a body nobody wants (an error page), so a small
 * one leaves its keep-alive connection reusable; a larger one is cut (connection closed).
 */
export async function discardBody(body: Readable, limit = 64 * 1024): Promise<void> {
  let n = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > limit) break; // leaving the loop destroys the stream
    }
  } catch {
    // Nothing to keep: the connection is gone either way.
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A redirect's Location as text. Header bytes reach us as latin1 (undici's decoding, as
 * HTTP/1.1 defines them), but origins that put a non-ASCII path in Location (nginx
 * rewrites, PHP's header()) send it in UTF-8, as browsers and curl read it: '/ümlaut' came
 * as '/Ã¼mlaut' and was requested as '/%C3%83%C2%BCmlaut', a 404. Bytes that are valid
 * UTF-8 are read as UTF-8; others stay latin1 characters.
 */
export function locationOf(headers: HttpHeaders): string | null {
  const v = headerValue(headers, 'location');
  // eslint-disable-next-line no-control-regex
  if (v === null || /^[\x00-\x7f]*$/.test(v)) return v;
  try {
    return UTF8.decode(Buffer.from(v, 'latin1'));
  } catch {
    return v;
  }
}

/**
 * Where a redirect leads. Its refusal (BAD_URL, UNSUPPORTED_SCHEME) names the redirect:
 * the manifest's own URL was fine, and a ledger row saying `not a URL` beside it misled.
 */
function redirectTarget(location: string, from: URL): URL {
  try {
    return parseHttpUrl(location, from);
  } catch (err) {
    if (!(err instanceof HttpGetError)) throw err;
    throw new HttpGetError(err.code, `redirect from ${redactUrl(from.href)}: ${err.message}`);
  }
}

/** A redirect's body is dropped; a 2xx body of at most `wholeUpTo` bytes is read whole; any other, streamed. */
function modeOf(status: number, headers: HttpHeaders, length: number | null, wholeUpTo: number): BodyMode {
  if (REDIRECTS.has(status) && headerValue(headers, 'location') !== null) return 'discard';
  return status >= 200 && status < 300 && length !== null && length <= wholeUpTo && !codingsOf(status, headers) ? 'whole' : 'stream';
}

/** The content codings ferry removes from a 2xx body (content-coding.ts), or null. */
function codingsOf(status: number, headers: HttpHeaders): string[] | null {
  if (status < 200 || status >= 300) return null;
  return codingsToRemove(headerValue(headers, 'content-encoding'), headerValue(headers, 'content-type'));
}

const badEncoding = (detail: string) => new HttpGetError('FERRY_BAD_ENCODING', detail);

export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  const o = resolveOptions(options);
  const guard = createGuard({ allowPrivateNetwork: o.allowPrivateNetwork, allowCidrs: o.allowCidrs });
  const viaProxy = goesViaProxy(o.proxy);
  const dispatcher = makeDispatcher(o, guard, viaProxy);
  const rates = new RateWatch(o.minRate, o.minRateWindowMs, (detail) => new HttpGetError('FERRY_MIN_RATE', detail));

  /** One hop: the guard decides before any packet is sent to the target. */
  async function hop(u: URL, choose: (status: number, headers: HttpHeaders, length: number | null) => BodyMode, signal: AbortSignal | undefined, downgraded: boolean): Promise<ResponseHead> {
    const refusal = checkLiteralHost(guard, u.hostname);
    if (refusal) throw refusal;
    // Through a proxy the guarded lookup never runs: resolve and check the target ourselves.
    if (viaProxy(u)) await withTimeout(checkHost(guard, u.hostname), o.timeoutMs, `lookup of ${u.hostname}`);
    const handler = new ResponseHandler({ choose, rates, headTimeoutMs: o.timeoutMs, ...(signal ? { signal } : {}) });
    dispatcher.dispatch({ origin: u.origin, path: u.pathname + u.search, method: 'GET', headers: requestHeaders(o, u, downgraded) }, handler);
    return handler.head;
  }

  async function get(url: string | URL, init: GetInit = {}): Promise<HttpResponse> {
    let u = typeof url === 'string' ? parseHttpUrl(url) : url;
    const wholeUpTo = init.wholeUpTo ?? -1;
    let tls = u.protocol === 'https:';
    for (let redirects = 0; ; redirects++) {
      const res = await hop(u, (status, headers, length) => modeOf(status, headers, length, wholeUpTo), init.signal, tls && u.protocol === 'http:');
      const { body } = res;
      const codings = body.kind === 'stream' ? codingsOf(res.status, res.headers) : null;
      if (body.kind === 'stream' && codings) {
        // The announced length is of the coded bytes: the decoded body's is unknown.
        const decoded = { ...body, stream: decodedBody(body.stream, codings, badEncoding) };
        return { status: res.status, headers: res.headers, contentLength: null, body: decoded, url: u.href, redirects };
      }
      if (body.kind !== 'discard') return { status: res.status, headers: res.headers, contentLength: res.contentLength, body, url: u.href, redirects };
      await body.done;
      if (redirects >= o.maxRedirects) {
        throw new HttpGetError('FERRY_TOO_MANY_REDIRECTS', `more than ${o.maxRedirects} redirects from ${redactUrl(String(url))}`);
      }
      u = redirectTarget(locationOf(res.headers)!, u);
      tls ||= u.protocol === 'https:';
    }
  }

  const close = () => {
    rates.close();
    return dispatcher.close();
  };
  const watch = (source: Readable) => {
    const body = idleCut(source, o.timeoutMs, (detail) => new HttpGetError('FERRY_IDLE_TIMEOUT', detail));
    return { body, meter: rates.watch(body) };
  };
  return { options: o, get, watch, close };
}
