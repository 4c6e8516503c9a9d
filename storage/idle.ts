/**
 * The idle timeout (`--timeout`) for a body whose client has none of its own: an object
 * store's (the GCS library's download streams wait forever; the S3 SDK's socket timeout
 * starts only seconds into a request). What undici's body timeout is to an HTTP body: a
 * body that delivers no bytes for `ms` while its reader has room for them is destroyed
 * with the error `cut` makes. A body held back by its reader (backpressure, a wait for a
 * large-body slot) is not idle: the clock runs only while bytes are wanted.
 */
import { Readable, finished } from 'node:stream';

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
