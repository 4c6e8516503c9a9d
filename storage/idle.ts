/**
 * The idle timeout (`--timeout`) for bodies whose clients have none of their own, both ways.
 *
 * - idleCut, a body read: an object store's download (the GCS library's read streams wait
 *   forever; the S3 SDK's socket timeout starts only seconds into a request). What
 *   undici's body timeout is to an HTTP body: a body that delivers no bytes for `ms` while
 *   its reader has room for them is destroyed with the error `cut` makes. A body held back
 *   by its reader (backpressure, a wait for a large-body slot) is not idle: the clock runs
 *   only while bytes are wanted.
 * - idleWrites, a body written: a streamed upload (the GCS library sends a resumable
 *   upload's session request and its PUT with no timeout at all). A destination that takes
 *   none of the bytes it was given, or does not finish once given the end, for `ms` is cut.
 *   One that waits for its writer (a slow source) is not idle: the source has its own clock.
 */
import { Readable, Writable, finished } from 'node:stream';

/** `source` as a stream that fails with `cut(detail)` after `ms` without a byte while wanted; itself when `ms` is not positive. */
export function idleCut(source: Readable, ms: number, cut: (detail: string) => Error): Readable {
  if (!(ms > 0)) return source;
  let timer: NodeJS.Timeout | null = null;
  let flowing = false;
  const stop = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const out = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      // Wanted: the clock runs until the next chunk, or until the reader has enough.
      if (timer) timer.refresh();
      else timer = setTimeout(() => out.destroy(cut(`no body bytes for ${ms} ms`)), ms).unref();
      if (flowing) source.resume();
      else {
        flowing = true;
        source.on('data', onData);
      }
    },
    destroy(err, callback) {
      stop();
      source.destroy(err ?? undefined);
      callback(err);
    },
  });
  function onData(chunk: Buffer): void {
    if (out.push(chunk)) timer?.refresh();
    else {
      source.pause();
      stop();
    }
  }
  source.once('end', () => {
    stop();
    out.push(null);
  });
  // An error, or a close before the end (ERR_STREAM_PREMATURE_CLOSE), reaches the reader.
  finished(source, { writable: false }, (err) => {
    stop();
    if (err && !out.destroyed) out.destroy(err);
  });
  return out;
}

/**
 * A Writable in front of `sink` that destroys both with `cut(detail)` once `sink` has held
 * a write without calling it back, or its end without finishing, for `ms`; `sink` itself
 * when `ms` is not positive. Errors of `sink` pass through.
 */
export function idleWrites(sink: Writable, ms: number, cut: (detail: string) => Error): Writable {
  if (!(ms > 0)) return sink;
  let timer: NodeJS.Timeout | null = null;
  const waiting = () => {
    if (timer) timer.refresh();
    else timer = setTimeout(() => out.destroy(cut(`the destination took no bytes for ${ms} ms`)), ms).unref();
  };
  const stop = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  let final: ((err?: Error | null) => void) | null = null;
  const out = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, callback) {
      waiting();
      sink.write(chunk, (err) => {
        // Taken: the clock stops until the next chunk comes from the writer.
        stop();
        callback(err);
      });
    },
    final(callback) {
      waiting();
      final = callback;
      sink.end();
    },
    destroy(err, callback) {
      stop();
      sink.destroy(err ?? undefined);
      callback(err);
    },
  });
  finished(sink, (err) => {
    stop();
    if (out.destroyed) return;
    if (final) final(err);
    else out.destroy(err ?? new Error('the destination closed before its end'));
  });
  return out;
}
