/**
 * Type by magic bytes, with one spelling per type (DESIGN.md, "Key layout"): the extension
 * and content-type of a stored object come from here, never from the origin's headers.
 */
import { fileTypeFromBuffer } from 'file-type';

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

/** The real type of the bytes, or null when file-type does not recognise them. */
export async function detectType(bytes: Uint8Array): Promise<DetectedType | null> {
  const found = await fileTypeFromBuffer(bytes);
  if (!found) return null;
  let ext = ALIASES[found.ext] ?? found.ext;
  if (ext === 'heic' && isAvifInHeifBox(bytes)) ext = 'avif';
  return { ext, contentType: CANONICAL[ext] ?? found.mime };
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
 * file-type reads a TIFF's first IFD to tell TIFF from the camera raw formats built on it,
 * and libtiff writes that IFD after the pixels, so a head, or a TIFF cut short, gets no
 * answer. Calling those bytes tif keeps the downloader from cutting a real TIFF early and
 * lets a truncated one fail as incomplete rather than as an unknown type.
 */
export function tiffFamily(b: Uint8Array): DetectedType | null {
  const le = b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0x00;
  const be = b[0] === 0x4d && b[1] === 0x4d && b[2] === 0x00 && b[3] === 0x2a;
  return le || be ? { ext: 'tif', contentType: IMAGE_TYPES['tif'] ?? 'image/tiff' } : null;
}
