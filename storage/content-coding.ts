/**
 * Content-Encoding on a body ferry asked for as `identity`. Origins that compress anyway
 * (a CDN or a misconfigured server gzipping everything) send the object inside a gzip or
 * brotli stream: stored as it came, an image was refused as `application/gzip is not an
 * allowed image type`, and under `--profile any` the object was stored as a `.gz` or a
 * `.bin`. Browsers, wget, curl --compressed and Python's requests all remove the coding;
 * so does ferry, as a stream (the size ceiling then counts the decoded bytes, so a gzip
 * bomb is cut like any long body).
 *
 * Left as they are: bodies with a coding Node cannot remove (zstd, compress, or a value
 * that is no coding at all, as `Content-Encoding: utf-8`), where the type gate decides
 * on the bytes; and a gzip file labelled as one (`Content-Type: application/gzip` with
 * `Content-Encoding: gzip`, Apache's `AddEncoding x-gzip .gz`), which browsers also keep.
 */
import type { Readable, Transform } from 'node:stream';
import { PassThrough, finished } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

const GZIP_TYPES = new Set(['application/gzip', 'application/x-gzip']);

/**
 * The codings to remove, in the order they were applied, or null when the body is to be
 * taken as it came.
 */
export function codingsToRemove(contentEncoding: string | null, contentType: string | null): string[] | null {
  if (contentEncoding === null) return null;
  const codings = contentEncoding
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0 || !codings.every((c) => c in DECODERS)) return null;
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (codings.length === 1 && (codings[0] === 'gzip' || codings[0] === 'x-gzip') && GZIP_TYPES.has(type)) return null;
  return codings;
}

/**
 * `source` with `codings` removed. Destroying the result destroys `source` (which aborts
 * its request); an error of `source` reaches the reader as it is (its code kept), and a
 * coding that does not decode fails with `bad(detail)`.
 */
export function decodedBody(source: Readable, codings: readonly string[], bad: (detail: string) => Error): Readable {
  const decoders = [...codings].reverse().map((c) => ({ coding: c, stream: DECODERS[c]!() }));
  const out = new PassThrough({
    highWaterMark: 64 * 1024,
    destroy(err, callback) {
      source.destroy(err ?? undefined);
      for (const d of decoders) d.stream.destroy();
      callback(err);
    },
  });
  let chain: Readable = source;
  for (const d of decoders) {
    d.stream.once('error', (e: Error) => {
      if (!out.destroyed) out.destroy(bad(`Content-Encoding ${d.coding}: ${e.message}`));
    });
    chain = chain.pipe(d.stream);
  }
  chain.pipe(out);
  finished(source, { writable: false }, (err) => {
    if (err && !out.destroyed) out.destroy(err);
  });
  return out;
}
