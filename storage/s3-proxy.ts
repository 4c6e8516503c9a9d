/**
 * S3 through `HTTP_PROXY` / `HTTPS_PROXY`, with `NO_PROXY` read as for HTTP sources
 * (no-proxy.ts): the AWS SDK's Node handler ignores them, so on a network whose only way out
 * is a proxy every S3 request failed. The SDK's requests go through agents that open each new
 * socket to a proxied host as a CONNECT tunnel; the lean PUT (s3-put.ts) through undici's
 * proxy agent. An S3 endpoint is the operator's, so it is not checked by the network guard.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { type ProxyRoute, proxyRoute } from './no-proxy.js';
import { type ProxyConfig, envProxy } from './proxy-env.js';

export type { ProxyRoute } from './no-proxy.js';

/** The environment's proxy route (or a given configuration's), or null when no proxy is set. */
export function envProxyRoute(config: ProxyConfig | null = envProxy()): ProxyRoute | null {
  return proxyRoute(config);
}

type Done = (err: Error | null, socket?: net.Socket) => void;

/** A failure of the tunnel itself, in words of ours (no credential of the proxy's URL): said as it is. */
function proxyError(message: string, code: string): Error {
  return Object.assign(new Error(message), { name: 'ProxyError', code });
}

/**
 * What a failed S3 request says of the proxy, or null when the proxy is not the cause: the
 * tunnel's own failure, or undici's when the proxy refused the lean PUT's tunnel.
 */
export function proxyFailure(e: unknown): string | null {
  for (let at = e, depth = 0; at instanceof Error && depth < 4; at = at.cause, depth++) {
    if (at.name === 'ProxyError') return at.message;
    const refused = /^Proxy response \((\d{3})\) !== 200/.exec(at.message);
    if (refused) return `the proxy refused the tunnel (HTTP ${refused[1]})`;
  }
  return null;
}

/**
 * Opens a tunnel to `host:port` through an http:// or https:// proxy (CONNECT, with Basic
 * credentials from the proxy URL's userinfo); `done` once, with the socket or the failure.
 * A proxy that does not answer within `timeoutMs` is a timeout.
 */
export function connectTunnel(proxyUri: string, host: string, port: number, timeoutMs: number, done: Done): void {
  let settled = false;
  const once: Done = (err, socket) => {
    if (settled) return;
    settled = true;
    done(err, socket);
  };
  let proxy: URL;
  try {
    proxy = new URL(proxyUri);
  } catch {
    return once(proxyError('the proxy is not a URL', 'ERR_INVALID_URL'));
  }
  const secure = proxy.protocol === 'https:';
  if (!secure && proxy.protocol !== 'http:') return once(proxyError(`a ${proxy.protocol}// proxy cannot carry S3 requests (an http:// or https:// one can)`, 'ERR_PROXY_SCHEME'));
  const at = { host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(proxy.port) || (secure ? 443 : 80) };
  const socket = secure ? tls.connect({ ...at, servername: net.isIP(at.host) ? undefined : at.host }) : net.connect(at);
  const target = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  const fail = (e: Error) => {
    socket.destroy();
    once(e);
  };
  socket.setTimeout(timeoutMs, () => fail(proxyError(`proxy ${proxy.host}: no answer to CONNECT ${target} within ${timeoutMs} ms`, 'ETIMEDOUT')));
  const onError = (e: NodeJS.ErrnoException) => fail(proxyError(`proxy ${proxy.host}: ${e.code ?? e.message}`, e.code ?? 'ECONNRESET'));
  socket.once('error', onError);
  socket.once(secure ? 'secureConnect' : 'connect', () => {
    const user = proxy.username ? `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}` : null;
    const auth = user === null ? '' : `Proxy-Authorization: Basic ${Buffer.from(user).toString('base64')}\r\n`;
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
  });
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 16_384) fail(proxyError(`proxy ${proxy.host}: an answer to CONNECT with no end to its header`, 'ECONNRESET'));
      return;
    }
    socket.off('data', onData);
    const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
    if (!/^HTTP\/1\.[01] 2\d\d/.test(statusLine)) return fail(proxyError(`proxy ${proxy.host} refused CONNECT ${target}: ${statusLine.slice(0, 200)}`, 'ECONNREFUSED'));
    const rest = head.subarray(end + 4);
    if (rest.length > 0) socket.unshift(rest);
    socket.setTimeout(0);
    socket.off('error', onError);
    once(null, socket);
  };
  socket.on('data', onData);
}

type ConnectOptions = http.ClientRequestArgs & { servername?: string };
/** How Node's Agent takes a socket made later (it always passes one). */
type Created = (err: Error | null, stream: Duplex) => void;

function hostOf(o: ConnectOptions): string {
  return String(o.host ?? o.hostname ?? 'localhost').replace(/^\[(.*)\]$/, '$1');
}

function urlOf(scheme: 'http' | 'https', o: ConnectOptions): URL {
  const host = hostOf(o);
  return new URL(`${scheme}://${net.isIPv6(host) ? `[${host}]` : host}:${o.port ?? (scheme === 'https' ? 443 : 80)}`);
}

/**
 * Opens the socket of a connection to a proxied host, as a CONNECT tunnel handed to `cb`
 * (through `wrap`: TLS for https); false when the host goes direct, or the caller gave no
 * callback (Node's Agent always does), for the agent's own connection.
 */
function tunnelled(route: ProxyRoute, timeoutMs: number, scheme: 'http' | 'https', options: ConnectOptions, cb: Created | undefined, wrap: (socket: net.Socket, host: string) => Duplex): boolean {
  const proxy = route(urlOf(scheme, options));
  if (!proxy || !cb) return false;
  const host = hostOf(options);
  connectTunnel(proxy, host, Number(options.port ?? (scheme === 'https' ? 443 : 80)), timeoutMs, (err, socket) => {
    if (err || !socket) return cb(err ?? new Error('no tunnel'), socket as Duplex);
    cb(null, wrap(socket, host));
  });
  return true;
}

/** An http.Agent whose sockets to proxied hosts are CONNECT tunnels (the plain-HTTP endpoints of S3-compatible stores). */
class TunnelHttpAgent extends http.Agent {
  constructor(
    options: http.AgentOptions,
    private readonly route: ProxyRoute,
    private readonly timeoutMs: number,
  ) {
    super(options);
  }

  override createConnection(options: ConnectOptions, cb?: Created): Duplex | undefined {
    if (tunnelled(this.route, this.timeoutMs, 'http', options, cb, (socket) => socket)) return undefined;
    return super.createConnection(options, cb) ?? undefined;
  }
}

/** An https.Agent whose sockets to proxied hosts are TLS over a CONNECT tunnel. */
class TunnelHttpsAgent extends https.Agent {
  constructor(
    options: https.AgentOptions,
    private readonly route: ProxyRoute,
    private readonly timeoutMs: number,
  ) {
    super(options);
  }

  override createConnection(options: ConnectOptions, cb?: Created): Duplex | undefined {
    const tlsOver = (socket: net.Socket, host: string) => tls.connect({ ...(options as tls.ConnectionOptions), socket, servername: options.servername ?? (net.isIP(host) ? undefined : host) });
    if (tunnelled(this.route, this.timeoutMs, 'https', options, cb, tlsOver)) return undefined;
    return super.createConnection(options, cb) ?? undefined; // TLS sessions reused, as https.Agent does
  }
}

/** The SDK's agents: plain ones without a proxy in the environment, tunnelling ones with. */
export function s3Agents(options: http.AgentOptions, connectTimeoutMs: number, route: ProxyRoute | null = envProxyRoute()): { httpAgent: http.Agent; httpsAgent: https.Agent } {
  if (!route) return { httpAgent: new http.Agent(options), httpsAgent: new https.Agent(options) };
  return { httpAgent: new TunnelHttpAgent(options, route, connectTimeoutMs), httpsAgent: new TunnelHttpsAgent(options, route, connectTimeoutMs) };
}
