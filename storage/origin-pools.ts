/**
 * Keep-alive pools, one per origin, with a bound on the idle ones: a pool with no request
 * in flight is kept for reuse, but past `maxIdle` of them the least recently used is
 * closed (its sockets, and their file descriptors, go). undici's Agent keeps every origin's
 * pool and its idle sockets until their keep-alive timeout (4 s): rows spread over
 * thousands of hosts held a socket per host visited in the last seconds, and under
 * `ulimit -n 256` a unit of 2,000 hosts failed most of its rows with EMFILE. Go's HTTP
 * transport (rclone's) bounds its idle connections the same way (MaxIdleConns).
 *
 * A request that dies on a kept-alive connection before any byte of its response came is
 * sent again at once, on another connection: the server closed the idle connection as the
 * request went out (its keep-alive timeout, a load balancer's idle cut, a restart). undici
 * fails such a request (`other side closed`, ECONNRESET), and each one cost a task an
 * attempt and a backoff, or the task itself under `--retries 0`. Go's transport, curl and
 * browsers re-send it (RFC 9112 §9.3.1: a GET may be retried when the connection closed
 * before any of the response). Only when the connection had read a response before the
 * request went out on it, so an origin that resets every new connection gets no more
 * requests than before; at most MAX_RESENDS times per request (each time on a connection
 * the server had closed: when it closed all of them, a request may meet several).
 */
import { subscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher, Pool as UndiciPool, buildConnector as Connector } from 'undici';
import { Pool, buildConnector } from './undici.js';

type Headers = Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2];

/** Idle origins kept by default: any one origin stays warm; a crawl's thousands do not. */
export const MAX_IDLE_ORIGINS = 64;

/** Re-sends of one request whose kept-alive connection died under it (one per dead connection met). */
export const MAX_RESENDS = 8;

/** Bytes each socket had read when its latest request went out on it (one at a time: undici does not pipeline here). */
const readAtSend = new WeakMap<Socket, number>();
let watchingSends = false;

/** undici publishes each request as its head is written, with the socket it goes on. */
function watchSends(): void {
  if (watchingSends) return;
  watchingSends = true;
  subscribe('undici:client:sendHeaders', (message) => {
    const { socket } = message as { socket?: Socket };
    if (socket) readAtSend.set(socket, socket.bytesRead);
  });
}

type Entry = { pool: Pool; inFlight: number };

/**
 * Whether `err` ended `socket` because the server closed it: its RST, a write after it, or
 * its FIN (undici's `other side closed`, a SocketError; its other ones, as `bad response`
 * for a 100 Continue it does not take, come with the socket still open).
 */
function closedByServer(err: unknown, socket: Socket): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === 'ECONNRESET' || code === 'EPIPE' || (code === 'UND_ERR_SOCKET' && socket.readableEnded);
}

/**
 * `connect`, whose sockets mark the error they end with in `late` when the server closed
 * them and they had read something past their handshake (a response) before their latest
 * request went out: the connection had been kept alive. A response that does not parse,
 * or any other error, is not marked.
 */
function markingConnector(connect: Connector.connector, late: WeakSet<object>): Connector.connector {
  return (options, callback) =>
    connect(options, (...args) => {
      const socket: Socket | null = args[1];
      if (socket) {
        const handshake = socket.bytesRead;
        socket.prependListener('error', (err: unknown) => {
          if ((readAtSend.get(socket) ?? handshake) > handshake && closedByServer(err, socket)) late.add(err as object);
        });
      }
      callback(...args);
    });
}

export class OriginPools {
  private readonly busy = new Map<string, Entry>();
  /** Pools with nothing in flight, least recently used first. */
  private readonly idle = new Map<string, Entry>();
  private closed = false;
  /** Errors of connections that had carried a response (markingConnector). */
  private readonly late = new WeakSet<object>();
  private readonly options: UndiciPool.Options;

  constructor(
    options: UndiciPool.Options,
    private readonly maxIdle = MAX_IDLE_ORIGINS,
  ) {
    watchSends();
    // As undici's Client builds its connector from these options, marking its sockets.
    const { connect } = options;
    const base = typeof connect === 'function' ? connect : buildConnector({ ...(options.connectTimeout !== undefined ? { timeout: options.connectTimeout } : {}), ...connect });
    this.options = { ...options, connect: markingConnector(base, this.late) };
  }

  /** Pools open now (busy or idle). */
  get size(): number {
    return this.busy.size + this.idle.size;
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(opts.origin);
    let entry = this.busy.get(origin) ?? this.idle.get(origin);
    if (!entry) entry = { pool: new Pool(origin, this.options), inFlight: 0 };
    this.idle.delete(origin);
    this.busy.set(origin, entry);
    entry.inFlight++;
    const send = (h: Dispatcher.DispatchHandler) => entry.pool.dispatch(opts, h);
    return send(new Settled(handler, () => this.settled(origin, entry), (err) => this.late.has(err), send));
  }

  /** One request of the origin is over: the pool turns idle when it was the last. */
  private settled(origin: string, entry: Entry): void {
    if (--entry.inFlight > 0 || this.busy.get(origin) !== entry) return;
    this.busy.delete(origin);
    if (this.closed) return void entry.pool.close().catch(() => {});
    this.idle.set(origin, entry);
    for (const [name, oldest] of this.idle) {
      if (this.idle.size <= this.maxIdle) break;
      this.idle.delete(name);
      void oldest.pool.close().catch(() => {});
    }
  }

  /** Closes every pool once its requests are over. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.busy.values(), ...this.idle.values()];
    this.idle.clear();
    await Promise.all(all.map((e) => e.pool.close().catch(() => {})));
  }
}

/**
 * A handler passed through as it is, that says once when its request is over, and sends
 * its request again when a kept-alive connection died under it before any response.
 */
class Settled implements Dispatcher.DispatchHandler {
  private over = false;
  private responded = false;
  private resends = 0;

  constructor(
    private readonly inner: Dispatcher.DispatchHandler,
    private readonly onOver: () => void,
    private readonly onLateConnection: (err: Error) => boolean,
    private readonly send: (handler: Dispatcher.DispatchHandler) => void,
  ) {}

  private end(): void {
    if (this.over) return;
    this.over = true;
    this.onOver();
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.inner.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: Headers, socket: Duplex): void {
    this.inner.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Headers, statusMessage?: string): void {
    this.responded = true;
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.inner.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Headers): void {
    try {
      this.inner.onResponseEnd?.(controller, trailers);
    } finally {
      this.end();
    }
  }

  onResponseError(controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (!this.responded && !controller?.aborted && this.resends < MAX_RESENDS && this.onLateConnection(error)) {
      this.resends++;
      // Once undici is done with the dead connection; the pool picks or opens another.
      queueMicrotask(() => this.send(this));
      return;
    }
    try {
      this.inner.onResponseError?.(controller!, error);
    } finally {
      this.end();
    }
  }
}
