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
import { createBrotliDecompress, createGunzip, createInflate, createInflateRaw } from 'node:zlib';

/** A decoder per coding, given the first bytes it will read when they are the body's own (else null). */
const DECODERS: Readonly<Record<string, (first: Buffer | null) => Transform>> = {
  gzip: () => createGunzip(),
  'x-gzip': () => createGunzip(),
  // RFC 9110's deflate is the zlib format, but IIS and others send a bare deflate stream,
  // which browsers, curl and undici's fetch all take: it failed here as `incorrect header check`.
  deflate: (first) => (first === null || zlibHeader(first) ? createInflate() : createInflateRaw()),
  br: () => createBrotliDecompress(),
};

/** Whether bytes start as a zlib stream does (RFC 1950: method 8, a header that is a multiple of 31). */
function zlibHeader(b: Buffer): boolean {
  const cmf = b[0] ?? 0;
  return (cmf & 0x0f) === 8 && (b.length < 2 || ((cmf << 8) | b[1]!) % 31 === 0);
}

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
 * coding that does not decode fails with `bad(detail)`. The decoders start on the body's
 * first bytes (they tell deflate's two forms apart): a body of no bytes at all is empty,
 * whatever its coding says (a 204 or an empty 200 labelled gzip), as browsers and curl take it.
 */
export function decodedBody(source: Readable, codings: readonly string[], bad: (detail: string) => Error): Readable {
  const decoders: Transform[] = [];
  const out = new PassThrough({
    highWaterMark: 64 * 1024,
    destroy(err, callback) {
      source.destroy(err ?? undefined);
      for (const d of decoders) d.destroy();
      callback(err);
    },
  });
  const empty = () => {
    if (!out.destroyed) out.end();
  };
  source.once('end', empty);
  source.once('data', (first: Buffer) => {
    source.off('end', empty);
    source.pause();
    // The outermost coding (applied last) is the first to remove, and the one that sees the body's bytes.
    [...codings].reverse().forEach((coding, i) => {
      const d = DECODERS[coding]!(i === 0 ? first : null);
      d.once('error', (e: Error) => {
        if (!out.destroyed) out.destroy(bad(`Content-Encoding ${coding}: ${e.message}`));
      });
      decoders.push(d);
    });
    decoders[0]!.write(first);
    let chain: Readable = source.pipe(decoders[0]!);
    for (const d of decoders.slice(1)) chain = chain.pipe(d);
    chain.pipe(out);
  });
  finished(source, { writable: false }, (err) => {
    if (err && !out.destroyed) out.destroy(err);
  });
  return out;
}
