/**
 * The deterministic key layout (DESIGN.md, "Key layout"):
 *   [<unit>/]<shard>/<key-id>.<ext>
 * shard = first 2 hex chars of SHA-1(id); key-id = id percent-encoded (every byte outside
 * A–Z a–z 0–9 . _ - ~ as %XX), `.`/`..` fully encoded, or `h-` + SHA-256(id) when the encoded
 * form exceeds 200 bytes. Nothing an id contains can climb out of its unit's prefix.
 */
import { hash } from 'node:crypto';

const MAX_KEY_ID = 200;
const UNRESERVED = /^[A-Za-z0-9._~-]$/;
const ALL_UNRESERVED = /^[A-Za-z0-9._~-]*$/;

function percentEncode(text: string): string {
  if (ALL_UNRESERVED.test(text)) return text; // the common id: nothing to encode
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && UNRESERVED.test(ch) ? ch : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function encodeAll(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

/** One path segment for an id (or a unit's path segment). */
export function keyId(id: string): string {
  const encoded = id === '.' || id === '..' ? encodeAll(id) : percentEncode(id);
  if (encoded.length <= MAX_KEY_ID) return encoded;
  return 'h-' + hash('sha256', id, 'hex');
}

export function shardOf(id: string): string {
  return hash('sha1', id, 'hex').slice(0, 2);
}

/** Encodes a unit name (a relative path with `/`) segment by segment. */
export function unitPrefix(unit: string): string {
  return unit
    .split('/')
    .map((seg) => keyId(seg))
    .join('/');
}

export function objectKey(id: string, ext: string, unit?: string): string {
  return `${keyStem(id, unit)}.${ext}`;
}

/**
 * What every object key of an id starts with, up to and with the dot before its extension
 * (`[<unit>/]<shard>/<key-id>.`): no key of the id is shorter, whatever its type.
 */
export function shortestObjectKey(id: string, unit?: string): string {
  return `${keyStem(id, unit)}.`;
}

function keyStem(id: string, unit: string | undefined): string {
  const head = unit === undefined || unit === '' ? '' : unitPrefix(unit) + '/';
  return `${head}${shardOf(id)}/${keyId(id)}`;
}

/**
 * Whether `key` is an object of the unit whose keys start with `prefix` (`unitPrefix(u)/`,
 * or '' without a unit): `<shard>/<key-id>.<ext>` right below it. A nested unit's objects
 * (`<prefix><sub>/<shard>/…`) are not: cleaning one unit must never touch another's writes.
 */
export function isUnitObjectKey(prefix: string, key: string): boolean {
  return key.startsWith(prefix) && /^[0-9a-f]{2}\/[^/]+$/.test(key.slice(prefix.length));
}

/** Ids of a unit's tasks, to tell its objects' keys from others' under the same prefix. */
export type TaskIds = { has(id: string): boolean; all(): Iterable<string> };

/**
 * Whether `key` is an object key of one of `ids` in `unit` (any extension): the keys of a
 * unit's own tasks, told apart from those another migration writes under the same unit
 * prefix (its manifest has the same name) with its own ids. The id is read back from the
 * key-id; a hashed key-id (`h-`…, an id past 200 encoded bytes) is looked up among the keys
 * of the long ids, made once when first needed.
 */
export function unitKeyOwner(unit: string | undefined, ids: TaskIds): (key: string) => boolean {
  const head = unit === undefined || unit === '' ? '' : unitPrefix(unit) + '/';
  let hashed: Set<string> | undefined;
  return (key) => {
    const dot = key.lastIndexOf('.');
    if (!isUnitObjectKey(head, key) || dot < head.length + 4) return false;
    const stem = key.slice(0, dot + 1);
    const id = decodeKeyId(key.slice(head.length + 3, dot));
    if (id !== null && ids.has(id) && shortestObjectKey(id, unit) === stem) return true;
    if (!key.startsWith('h-', head.length + 3)) return false;
    hashed ??= hashedStems(ids.all(), unit);
    return hashed.has(stem);
  };
}

/** The key stems of the ids whose key-id is a hash: an encoded id of more than 200 characters is at least 23 UTF-16 units long (9 per unit at most). */
function hashedStems(ids: Iterable<string>, unit: string | undefined): Set<string> {
  const stems = new Set<string>();
  for (const id of ids) if (id.length > 22 && keyId(id).startsWith('h-')) stems.add(shortestObjectKey(id, unit));
  return stems;
}

/** A key-id percent-decoded, or null when it is not one (bad escapes, bytes that are not UTF-8). */
function decodeKeyId(encoded: string): string | null {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return null;
  }
}
