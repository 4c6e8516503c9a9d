/**
 * URIs for places (--dest, --out, the manifest prefix): `s3://bucket/prefix`,
 * `gs://bucket/prefix`, `file:///abs/dir` or a plain path. A prefix is a folder: a
 * trailing slash is implied, so `s3://m/manifests` never matches `manifests2/`.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type Place =
  | { scheme: 'file'; path: string }
  | { scheme: 's3' | 'gs'; bucket: string; prefix: string };

export class UriError extends Error {
  readonly code = 'BAD_URI';
}

/** Parses a place URI. `prefix` never starts with `/` and is empty or ends with `/`. */
export function parsePlace(uri: string, cwd = process.cwd()): Place {
  // Blanks too: as a path they would name a folder ' ' that nobody meant.
  if (uri.trim() === '') throw new UriError('empty location');
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri);
  if (!m) return { scheme: 'file', path: path.resolve(cwd, uri) };
  const scheme = (m[1] ?? '').toLowerCase();
  if (scheme === 'file') {
    try {
      return { scheme: 'file', path: path.resolve(fileURLToPath(uri)) };
    } catch (e) {
      throw new UriError(`bad file URL "${uri}": ${(e as Error).message}`);
    }
  }
  if (scheme === 's3' || scheme === 'gs') {
    const rest = uri.slice(m[0].length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    if (!/^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$/.test(bucket)) throw new UriError(`bad bucket name in "${uri}"`);
    let prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+/, '');
    if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
    return { scheme, bucket, prefix };
  }
  throw new UriError(`unsupported location scheme "${scheme}:" in "${uri}" (use s3://, gs://, file:// or a path)`);
}

/**
 * A manifest URL without the C0 controls and spaces before it, which the WHATWG URL parser
 * (http(s) and file URLs) ignores: the kind of source is decided on what that parser would
 * read, so ` s3://b/k` is the object k, as ` http://h/k` is that page, not an "s3:" URL
 * refused as not HTTP. What follows the scheme is each parser's own (an object key keeps
 * a trailing space; the URL parser drops it).
 */
export function sourceUrlText(url: string): string {
  // eslint-disable-next-line no-control-regex -- the C0 controls are what it removes
  return url.replace(/^[\x00-\x20]+/, '');
}

/** The object store a manifest URL names (`s3://…`, `gs://…`, any case), else null. */
export function objectUrlScheme(url: string): 's3' | 'gs' | null {
  const m = /^(s3|gs):\/\//i.exec(sourceUrlText(url));
  return m ? (m[1]!.toLowerCase() as 's3' | 'gs') : null;
}

/**
 * An object URL of a manifest (`s3://bucket/key`, `gs://bucket/key`) as the aws and gcloud
 * CLIs read one: the key is everything after the bucket's slash, verbatim, so a key that
 * starts with `/` or holds `//` is that key (`s3://b//x` is the object `/x`, never `x`).
 */
export function parseObjectUrl(url: string): { scheme: 's3' | 'gs'; bucket: string; key: string } {
  const place = parsePlace(url); // the scheme and the bucket's name, checked
  if (place.scheme === 'file') throw new UriError(`not an object URL: "${url}"`);
  const rest = url.slice(url.indexOf('://') + 3);
  const slash = rest.indexOf('/');
  const key = slash < 0 ? '' : rest.slice(slash + 1);
  if (key === '') throw new UriError(`no object key in "${url}"`);
  return { scheme: place.scheme, bucket: place.bucket, key };
}

/** An object's URI split into the place of its folder and its name (`s3://b/p/u.ledger.tsv`). */
export function splitObjectUri(uri: string, cwd = process.cwd()): { parent: Place; key: string } {
  const place = parsePlace(uri, cwd);
  if (place.scheme === 'file') return { parent: { scheme: 'file', path: path.dirname(place.path) }, key: path.basename(place.path) };
  const full = place.prefix.replace(/\/$/, '');
  if (full === '' || /\/$/.test(uri)) throw new UriError(`"${uri}" names a folder, not an object`);
  const slash = full.lastIndexOf('/');
  return { parent: { ...place, prefix: slash < 0 ? '' : full.slice(0, slash + 1) }, key: full.slice(slash + 1) };
}

/** The URI of a key under a place, as readers expect it (DESIGN.md, "Key layout"). */
export function uriOf(place: Place, key: string): string {
  if (place.scheme === 'file') return pathToFileURL(path.join(place.path, key)).href;
  return `${place.scheme}://${place.bucket}/${place.prefix}${key}`;
}

/** The place itself, printed for people. */
export function describePlace(place: Place): string {
  return place.scheme === 'file' ? place.path : `${place.scheme}://${place.bucket}/${place.prefix}`;
}

/**
 * Whether path `p` is `root` or lies below it, by their spelling (`..x` is a name inside,
 * `../x` is not). Callers that must see through symlinks resolve both first.
 */
export function pathWithin(root: string, p: string): boolean {
  return relWithin(path.relative(root, p));
}

/** The same, for a path already made relative to the root (`path.relative(root, p)`). */
export function relWithin(rel: string): boolean {
  return rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** A path with symlinks resolved as far as it exists (the rest, not yet made, kept as written). */
function resolvedPath(p: string): string {
  const rest: string[] = [];
  for (let at = path.resolve(p); ; at = path.dirname(at)) {
    try {
      return path.join(realpathSync(at), ...rest.reverse());
    } catch {
      if (path.dirname(at) === at) return path.resolve(p);
      rest.push(path.basename(at));
    }
  }
}

/**
 * Whether `inner` lies inside (or is) `outer`, symlinks seen through: used to refuse --out
 * inside the manifest prefix.
 */
export function placeContains(outer: Place, inner: Place): boolean {
  if (outer.scheme === 'file' && inner.scheme === 'file') return pathWithin(resolvedPath(outer.path), resolvedPath(inner.path));
  if (outer.scheme !== 'file' && inner.scheme === outer.scheme) {
    return outer.bucket === inner.bucket && inner.prefix.startsWith(outer.prefix);
  }
  return false;
}
