/**
 * Keep-alive pools, one per origin, with a bound on the idle ones: a pool with no request
 * in flight is kept for reuse, but past `maxIdle` of them the least recently used is
 * closed (its sockets, and their file descriptors, go). undici's Agent keeps every origin's
 * pool and its idle sockets until their keep-alive timeout (4 s): rows spread over
 * thousands of hosts held a socket per host visited in the last seconds, and under
 * `ulimit -n 256` a unit of 2,000 hosts failed most of its rows with EMFILE. Go's HTTP
 * transport (rclone's) bounds its idle connections the same way (MaxIdleConns).
 */
import type { Duplex } from 'node:stream';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import { Pool } from './undici.js';

type Headers = Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2];

/** Idle origins kept by default: any one origin stays warm; a crawl's thousands do not. */
export const MAX_IDLE_ORIGINS = 64;

type Entry = { pool: Pool; inFlight: number };

export class OriginPools {
  private readonly busy = new Map<string, Entry>();
  /** Pools with nothing in flight, least recently used first. */
  private readonly idle = new Map<string, Entry>();
  private closed = false;

  constructor(
    private readonly options: UndiciPool.Options,
    private readonly maxIdle = MAX_IDLE_ORIGINS,
  ) {}

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
    return entry.pool.dispatch(opts, new Settled(handler, () => this.settled(origin, entry)));
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

/** A handler passed through as it is, that says once when its request is over. */
class Settled implements Dispatcher.DispatchHandler {
  private over = false;

  constructor(
    private readonly inner: Dispatcher.DispatchHandler,
    private readonly onOver: () => void,
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

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    try {
      this.inner.onResponseError?.(controller, error);
    } finally {
      this.end();
    }
  }
}
