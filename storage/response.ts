/**
 * One request's response through undici's dispatch handler API (a GET's for http.ts, a
 * PutObject's for s3-put.ts), its body taken in one of three ways decided from the status
 * and headers as they arrive:
 *
 * - `whole`: gathered here and handed over as one Buffer once complete: the common case,
 *   an image whose Content-Length is under every threshold. No stream, no async resource,
 *   no event per chunk: undici's `request()` builds a Readable and an AsyncResource for
 *   every response, and taking 20,000 images of ~20 KB through it cost ~0.8 CPU-s more
 *   than this handler (2 cores, local origin: 3.7-4.0 against 3.0-3.1 CPU-s).
 * - `stream`: a Readable fed with backpressure (pause/resume), for large bodies, bodies of
 *   unknown length and error pages; destroying it aborts the request.
 * - `discard`: read and dropped (a redirect's body), at most DISCARD_LIMIT bytes, so a
 *   small one leaves its keep-alive connection reusable; a larger one is cut.
 *
 * Errors keep undici's codes (UND_ERR_SOCKET, UND_ERR_HEADERS_TIMEOUT, ...) and Node's.
 */
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type BodyMeter, NO_METER, type Watch } from './min-rate.js';

export type HttpHeaders = Record<string, string | string[] | undefined>;

export type BodyMode = 'whole' | 'stream' | 'discard';

/** A body read whole: its bytes, or why it stopped and how many bytes had come. */
export type WholeBody = { ok: true; bytes: Buffer } | { ok: false; error: Error; received: number };

/** A response's body, as its mode took it. */
export type HttpBody =
  | { kind: 'whole'; read: Promise<WholeBody> }
  | { kind: 'stream'; stream: Readable; meter: BodyMeter }
  | { kind: 'discard'; done: Promise<void> };

export type ResponseHead = { status: number; headers: HttpHeaders; contentLength: number | null; body: HttpBody };

const DISCARD_LIMIT = 64 * 1024;

/** First value of a response header, or null. */
export function headerValue(headers: HttpHeaders, name: string): string | null {
  const v = headers[name.toLowerCase()];
  const first = Array.isArray(v) ? v[0] : v;
  return first ?? null;
}

/** Content-Length when present and valid, else null. */
function parseLength(headers: HttpHeaders): number | null {
  const v = headerValue(headers, 'content-length');
  return v !== null && /^\d+$/.test(v.trim()) ? Number(v.trim()) : null;
}

export type ResponseOptions = {
  /** The mode for a response, from its status and headers (called once, as they arrive). */
  choose(status: number, headers: HttpHeaders, contentLength: number | null): BodyMode;
  /** The minimum-rate watch (min-rate.ts RateWatch): of a stream, or of a body read here. None by default. */
  rates?: { watch(body: Readable): BodyMeter; watchCut(cut: (err: Error) => void): Watch };
  signal?: AbortSignal;
  /**
   * How long the final head may take once an interim (1xx) one came. undici restarts its
   * headers timeout at each 1xx, so an origin sending `103 Early Hints` every few seconds
   * held a request forever, whatever `--timeout`. None by default.
   */
  headTimeoutMs?: number;
};

export class ResponseHandler implements Dispatcher.DispatchHandler {
  /** Settles once the status and headers are in, or the request failed before them. */
  readonly head: Promise<ResponseHead>;
  private resolveHead!: (h: ResponseHead) => void;
  private rejectHead!: (e: Error) => void;
  private controller: Dispatcher.DispatchController | null = null;
  /** Why the request was aborted before undici gave it a controller. */
  private early: Error | null = null;
  private mode: BodyMode | null = null;
  private chunks: Buffer[] = [];
  private received = 0;
  private settle: ((w: WholeBody) => void) | null = null;
  private stream: Readable | null = null;
  private rate: Watch | null = null;
  private readonly onAbort: (() => void) | null = null;
  /** The response has ended, or failed: nothing left to abort. */
  private over = false;
  /** Runs from the first interim response to the final head (headTimeoutMs). */
  private interim: NodeJS.Timeout | null = null;

  constructor(private readonly o: ResponseOptions) {
    this.head = new Promise((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    const { signal } = o;
    if (signal) {
      const onAbort = () => this.abort(abortReason(signal));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.onAbort = onAbort;
      }
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // A request sent again (origin-pools.ts) gets a new controller: an abort meanwhile went to the old one.
    const { signal } = this.o;
    if (this.early) controller.abort(this.early);
    else if (signal?.aborted) controller.abort(abortReason(signal));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: HttpHeaders): void {
    if (status < 200) return this.waitFinal(controller); // 1xx: the final response follows
    this.clearInterim();
    const contentLength = parseLength(headers);
    const mode = (this.mode = this.o.choose(status, headers, contentLength));
    let body: HttpBody;
    if (mode === 'stream') {
      const stream = this.makeStream(controller);
      body = { kind: 'stream', stream, meter: this.o.rates?.watch(stream) ?? NO_METER };
    } else {
      this.rate = this.o.rates?.watchCut((err) => controller.abort(err)) ?? null;
      const read = new Promise<WholeBody>((resolve) => (this.settle = resolve));
      body = mode === 'whole' ? { kind: 'whole', read } : { kind: 'discard', done: read.then(() => undefined) };
    }
    this.resolveHead({ status, headers, contentLength, body });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.mode === 'stream') {
      if (!this.stream!.push(chunk)) controller.pause();
      return;
    }
    this.received += chunk.length;
    this.rate?.add(chunk.length);
    if (this.mode === 'discard') {
      if (this.received > DISCARD_LIMIT) controller.abort(new Error('a discarded body over 64 KiB: connection closed'));
      return;
    }
    // Never past Content-Length: undici's parser frames the body by it.
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.done();
    if (this.mode === 'stream') {
      this.stream!.push(null);
      return;
    }
    const { chunks } = this;
    this.chunks = [];
    this.settle?.({ ok: true, bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.received) });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.done();
    if (this.mode === null) this.rejectHead(headError(error));
    else if (this.mode === 'stream') this.stream!.destroy(error);
    else {
      this.chunks = [];
      this.settle?.({ ok: false, error, received: this.received });
    }
  }

  private abort(reason: Error): void {
    if (this.controller) this.controller.abort(reason);
    else this.early = reason;
  }

  private waitFinal(controller: Dispatcher.DispatchController): void {
    const ms = this.o.headTimeoutMs;
    if (this.interim || ms === undefined) return;
    const err = Object.assign(new Error(`no final response ${ms} ms after an interim (1xx) one`), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    this.interim = setTimeout(() => controller.abort(err), ms);
    this.interim.unref();
  }

  private clearInterim(): void {
    if (this.interim) clearTimeout(this.interim);
    this.interim = null;
  }

  /** The request is over: no more watching. */
  private done(): void {
    this.over = true;
    this.clearInterim();
    this.rate?.end();
    if (this.onAbort) this.o.signal!.removeEventListener('abort', this.onAbort);
  }

  private makeStream(controller: Dispatcher.DispatchController): Readable {
    const stream = new Readable({
      // undici's own body streams buffer 64 KiB. At Node's default (16 KiB) a 2 GiB object
      // streamed to S3 peaked at ~289 MB of RSS against ~240 MB at 64 KiB (3 runs each).
      highWaterMark: 64 * 1024,
      read: () => controller.resume(),
      destroy: (err, callback) => {
        // Destroyed by its reader before the end (too large, not wanted): stop the transfer.
        if (!this.over && !controller.aborted) controller.abort(err ?? Object.assign(new Error('body not read to its end'), { code: 'UND_ERR_ABORTED' }));
        callback(err);
      },
    });
    // A body may wait before anyone reads it (for a large-body slot): an error meanwhile (a
    // reset) must not be an unhandled 'error' event. Readers still get it: a destroyed
    // stream's error reaches every iterator and pipeline made on it afterwards.
    stream.on('error', () => {});
    this.stream = stream;
    return stream;
  }
}

/**
 * An error before the head came. undici reports a head its parser refused for its
 * framing (two Content-Length headers, a list as `70, 70`, one beside Transfer-Encoding)
 * as a body shorter than its Content-Length: no body came, so it was a SHORT_BODY for a
 * response that never had one. It is the parse error it is.
 */
function headError(error: Error): Error {
  if ((error as { code?: unknown }).code !== 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return error;
  const detail = 'a response head whose framing does not parse (Content-Length repeated, a list, or beside Transfer-Encoding)';
  return Object.assign(new Error(detail, { cause: error }), { code: 'HPE_UNEXPECTED_CONTENT_LENGTH' });
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : Object.assign(new Error('Request aborted'), { name: 'AbortError', code: 'UND_ERR_ABORTED' });
}
