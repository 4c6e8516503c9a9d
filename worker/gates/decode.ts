/**
 * The pixel-decode gate: the only gate that costs milliseconds (FACTS.md, "Validation
 * costs"), so it runs only when the operator's `--decode` policy says so.
 */
import { createHash } from 'node:crypto';
import type { Sharp, SharpOptions } from 'sharp';

// The policy and its parser live in protocol/ (the `--decode` flag is shared with the orchestrator).
import type { DecodePolicy } from '../../protocol/index.js';
import { jpegFrame } from './header-parsers.js';
export type { DecodePolicy } from '../../protocol/index.js';
export { parseDecode as parseDecodePolicy } from '../../protocol/index.js';

/**
 * Whether this id's payload is decoded. A sample is chosen by a hash of the id, not by
 * chance, so a resumed or replayed run decides exactly as an uninterrupted one did.
 */
export function isDecodeChosen(id: string, policy: DecodePolicy): boolean {
  switch (policy.mode) {
    case 'never':
      return false;
    case 'always':
      return true;
    case 'sample':
      return sampleOf(id) < policy.fraction;
  }
}

/**
 * The types sharp's prebuilt libvips can decode. It has no BMP reader (that needs
 * ImageMagick) and no HEVC decoder for HEIC (patents), so decoding those would reject
 * sound images; they pass on magic bytes and header, as they pass structure.
 */
const DECODABLE: ReadonlySet<string> = new Set(['jpg', 'png', 'webp', 'gif', 'avif', 'tif']);

/**
 * Its libjpeg (mozjpeg) reads 8-bit samples only ("Unsupported JPEG data precision 12") and no
 * hierarchical frames (SOF5-7, SOF13-15: "Unsupported JPEG process"), so those sound
 * JPEGs pass on header and structure, as BMP and HEIC do.
 */
const HIERARCHICAL_JPEG_FRAMES: ReadonlySet<number> = new Set([0xc5, 0xc6, 0xc7, 0xcd, 0xce, 0xcf]);

export function isDecodable(ext: string, bytes: Uint8Array): boolean {
  if (!DECODABLE.has(ext)) return false;
  if (ext !== 'jpg') return true;
  try {
    const frame = jpegFrame(bytes);
    return frame.precision === 8 && !HIERARCHICAL_JPEG_FRAMES.has(frame.sof);
  } catch {
    return true; // no frame header: let the decoder say what is wrong
  }
}

/** Where the id falls in [0,1): the first 4 bytes of SHA-1 of its UTF-8 bytes, over 2^32. */
export function sampleOf(id: string): number {
  return createHash('sha1').update(id, 'utf8').digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * Decodes every pixel and returns why that failed, or null when it did not.
 * A full decode to raw pixels, not a shrink-on-load: measured on JPEGs with 2,000 bytes
 * of their scan overwritten, the 1/8 shrink-on-load decode let through several that the
 * full decode rejected. `failOn: 'warning'` turns libjpeg's "corrupt data" warnings,
 * PNG CRC errors and the like into failures. The raw output (up to maxPixels × channels
 * bytes) lives only until the promise settles.
 */
export async function decodeFailure(bytes: Buffer, maxPixels: number): Promise<string | null> {
  // sharp takes a safe integer, or false for no limit
  const limitInputPixels = maxPixels >= 1 ? Math.min(Math.floor(maxPixels), Number.MAX_SAFE_INTEGER) : false;
  try {
    const sharp = await loadSharp();
    await sharp(bytes, { failOn: 'warning', limitInputPixels }).raw().toBuffer();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

type SharpFactory = (input: Buffer, options: SharpOptions) => Sharp;
let sharpLoading: Promise<SharpFactory> | undefined;

/**
 * libvips is loaded on the first decode only: a worker run with `--decode never` never
 * pays for it. A worker that will decode should await this at startup, so a broken sharp
 * install is one clear error there rather than every image ledgered UNDECODABLE.
 */
export function loadSharp(): Promise<SharpFactory> {
  sharpLoading ??= import('sharp').then((m) => m.default);
  return sharpLoading;
}
