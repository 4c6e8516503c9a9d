/**
 * Type by magic bytes, with one spelling per type (DESIGN.md, "Key layout"): the extension
 * and content-type of a stored object come from here, never from the origin's headers.
 */
import type * as FileType from 'file-type';

export type DetectedType = { ext: string; contentType: string };

/** What the `image` profile accepts, with each type's canonical content-type. */
export const IMAGE_TYPES: Readonly<Record<string, string>> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
  heic: 'image/heic',
  tif: 'image/tiff',
  bmp: 'image/bmp',
};

const CANONICAL: Readonly<Record<string, string>> = { ...IMAGE_TYPES, pdf: 'application/pdf' };

/** file-type spellings that are the same type as one of ours (an APNG is a PNG). */
const ALIASES: Readonly<Record<string, string>> = { apng: 'png' };

export function isImageType(ext: string): boolean {
  return Object.prototype.hasOwnProperty.call(IMAGE_TYPES, ext);
}

/**
 * file-type, loaded the first time a body is not one of the common image types: most runs
 * never need it, and loading it cost ~40 ms of every worker's start.
 */
let fileTypeModule: Promise<typeof FileType> | undefined;
const fileType = () => (fileTypeModule ??= import('file-type'));

/** The real type of the bytes, or null when file-type does not recognise them. */
export async function detectType(bytes: Uint8Array): Promise<DetectedType | null> {
  const common = commonImageType(bytes);
  if (common) return common;
  const found = await (await fileType()).fileTypeFromBuffer(bytes);
  if ((!found || found.ext === 'xml') && isSvg(bytes)) return SVG;
  if (!found) return null;
  let ext = ALIASES[found.ext] ?? found.ext;
  if (ext === 'heic' && isAvifInHeifBox(bytes)) ext = 'avif';
  if (isUnconfirmedRaw(ext, bytes)) return TIFF;
  return { ext, contentType: CANONICAL[ext] ?? found.mime };
}

/**
 * SVG, which file-type does not detect (an SVG with an XML declaration is `xml` to it, a
 * bare one nothing): text whose first element, past a byte-order mark, the XML declaration,
 * comments, processing instructions and a DOCTYPE, is `<svg`. Never an image of the
 * `image` profile (a script can hide in it), it gets its own type under `any`.
 */
const SVG: DetectedType = { ext: 'svg', contentType: 'image/svg+xml' };

function isSvg(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 4096)).toString('utf8');
  const at = skipPrologue(head, head.startsWith('\uFEFF') ? 1 : 0);
  return at >= 0 && /^<svg[\s/>]/.test(head.slice(at, at + 5));
}

/**
 * Where the first element starts past whitespace, processing instructions (`<?xml …?>`),
 * comments and a DOCTYPE (its internal subset included), or -1 when one is not closed. A
 * scan that only moves forward: a regular expression of `(?:\s+|<\?[^]*?\?>|…)*` backtracked
 * exponentially when the element after them was not `<svg` (40 spaces, or 40 `<?a?>`, held
 * the event loop for hours), and payloads are untrusted.
 */
function skipPrologue(text: string, from: number): number {
  let at = from;
  for (;;) {
    while (at < text.length && /\s/.test(text[at]!)) at++;
    let end: number;
    if (text.startsWith('<?', at)) end = after(text, '?>', at + 2);
    else if (text.startsWith('<!--', at)) end = after(text, '-->', at + 4);
    else if (/^<!DOCTYPE\s/.test(text.slice(at, at + 10))) end = afterDoctype(text, at + 10);
    else return at;
    if (end < 0) return -1;
    at = end;
  }
}

/** The index just past the first `token` at or after `from`, or -1. */
function after(text: string, token: string, from: number): number {
  const i = text.indexOf(token, from);
  return i < 0 ? -1 : i + token.length;
}

/** Past a DOCTYPE's `>` (its internal subset `[…]`, if any, ends at a `]` followed by `>`), from just after `<!DOCTYPE `. */
function afterDoctype(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '>') return i + 1;
    if (text[i] !== '[') continue;
    for (let close = text.indexOf(']', i + 1); close >= 0; close = text.indexOf(']', close + 1)) {
      let j = close + 1;
      while (j < text.length && /\s/.test(text[j]!)) j++;
      if (text[j] === '>') return j + 1;
    }
    return -1;
  }
  return -1;
}

/** An image type of ours, with its canonical content-type. */
const image = (ext: string): DetectedType => ({ ext, contentType: IMAGE_TYPES[ext]! });
const JPEG = image('jpg');
const PNG = image('png');
const GIF = image('gif');
const WEBP = image('webp');
const TIFF = image('tif');

/** Whether the bytes at `at` are `signature`. */
function has(b: Uint8Array, at: number, signature: readonly number[]): boolean {
  return signature.every((byte, i) => b[at + i] === byte);
}

/**
 * JPEG, PNG, GIF and WebP, nearly every object, told from their first bytes by file-type's
 * own checks for them, or null to let file-type decide. Measured: file-type's detector, one
 * function for every format it knows, costs each worker ~0.2–0.4 s of optimising compiler
 * (V8's --trace-opt) and ~4 % of each object's CPU. Only certain answers are given here:
 * every check file-type makes before these (2-byte signatures, `free`/`mdat`/`moov`/`wide`/
 * `ftyp` at offset 4 before RIFF) cannot match what is accepted, and anything unusual (a
 * PNG whose chunks do not reach IDAT or acTL cleanly) goes to file-type. types.test.ts
 * holds the two to the same answer on real images and thousands of mutated headers.
 */
export function commonImageType(b: Uint8Array): DetectedType | null {
  if (b.length < 12) return null;
  if (has(b, 0, [0xff, 0xd8, 0xff])) return b[3] === 0xf7 ? null : JPEG; // F7: JPEG-LS
  if (has(b, 0, [0x47, 0x49, 0x46])) return GIF; // GIF
  if (has(b, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return pngReachesImageData(b) ? PNG : null; // an APNG is a PNG here
  // RIFF, then WEBP at 8; a RIFF size under 256 MiB cannot spell file-type's earlier offset-4 boxes.
  if (has(b, 0, [0x52, 0x49, 0x46, 0x46]) && b[7]! < 0x10 && has(b, 8, [0x57, 0x45, 0x42, 0x50])) return WEBP;
  return null;
}

/** IHDR (13 bytes) first, then whole chunks up to IDAT or acTL: the walk file-type makes, where it says png or apng. */
function pngReachesImageData(b: Uint8Array): boolean {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const type = (at: number) => view.getUint32(at + 4);
  const IHDR = 0x49484452;
  if (b.length < 16 || view.getUint32(8) !== 13 || type(8) !== IHDR) return false;
  let at = 8 + 8 + 13 + 4;
  for (let chunks = 1; chunks < 64 && at + 8 <= b.length; chunks++) {
    const length = view.getUint32(at);
    if (length >= 0x80000000) return false; // negative as file-type reads it: no type
    const t = type(at);
    if (t === 0x49444154 || t === 0x6163544c) return true; // IDAT, acTL
    if (t === IHDR) return false; // a second IHDR must be 13 bytes long
    at += 8 + length + 4;
  }
  return false;
}

/**
 * file-type decides AVIF vs HEIC on the ftyp major brand alone; an AVIF written with the
 * generic `mif1`/`msf1` major brand lists `avif` among its compatible brands instead.
 */
function isAvifInHeifBox(b: Uint8Array): boolean {
  if (b.length < 16) return false;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const boxEnd = Math.min(view.getUint32(0), b.length);
  const major = brandAt(b, 8);
  if (major !== 'mif1' && major !== 'msf1') return false;
  const compatible: string[] = [];
  for (let at = 16; at + 4 <= boxEnd; at += 4) compatible.push(brandAt(b, at));
  const hevc = compatible.some((c) => c === 'heic' || c === 'heix' || c === 'hevc' || c === 'hevx');
  return !hevc && compatible.some((c) => c === 'avif' || c === 'avis');
}

const brandAt = (b: Uint8Array, at: number): string => String.fromCharCode(...b.subarray(at, at + 4));

/**
 * The camera makers whose raw formats file-type tells from a TIFF by clues that plain TIFFs
 * share: `cr2` by the bytes 'CR' at offset 8 (where libtiff starts the pixels), `nef` by
 * the first directory's entry count and first tag, `arw` by a PrintIM tag (0xC4A5), which
 * Epson cameras and scanners write into their TIFFs too. The first directory's Make tag,
 * which every camera writes, confirms the maker.
 */
const RAW_MAKERS: Readonly<Partial<Record<string, string>>> = { cr2: 'Canon', nef: 'NIKON', arw: 'SONY' };

/**
 * Whether file-type's camera-raw answer for a TIFF lacks its maker's Make tag: such bytes
 * are a TIFF (and a head whose first directory is not in it yet stays one, so the
 * downloader never cuts a TIFF short for looking like a raw).
 */
function isUnconfirmedRaw(ext: string, b: Uint8Array): boolean {
  const maker = RAW_MAKERS[ext];
  if (maker === undefined || !tiffFamily(b)) return false;
  return !(tiffMake(b) ?? '').startsWith(maker);
}

/** The Make tag (271) of a classic TIFF's first directory, or null when it is not within the bytes. */
function tiffMake(b: Uint8Array): string | null {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = b[0] === 0x49;
  if (b.length < 8) return null;
  const ifd = view.getUint32(4, le);
  if (ifd + 2 > b.length) return null;
  const entries = view.getUint16(ifd, le);
  for (let k = 0, e = ifd + 2; k < entries && e + 12 <= b.length; k++, e += 12) {
    if (view.getUint16(e, le) !== 271) continue;
    const count = view.getUint32(e + 4, le);
    const at = count <= 4 ? e + 8 : view.getUint32(e + 8, le);
    if (view.getUint16(e + 2, le) !== 2 || at + count > b.length) return null;
    return String.fromCharCode(...b.subarray(at, at + Math.min(count, 64)));
  }
  return null;
}

/**
 * file-type reads a TIFF's first IFD to tell TIFF from the camera raw formats built on it,
 * and libtiff writes that IFD after the pixels, so a head, or a TIFF cut short, gets no
 * answer. Calling those bytes tif keeps the downloader from cutting a real TIFF early and
 * lets a truncated one fail as incomplete rather than as an unknown type.
 */
export function tiffFamily(b: Uint8Array): DetectedType | null {
  return has(b, 0, [0x49, 0x49, 0x2a, 0x00]) || has(b, 0, [0x4d, 0x4d, 0x00, 0x2a]) ? TIFF : null;
}
