/**
 * The worker's validation gates (DESIGN.md, "Validation gates, cheapest first"): size,
 * type by magic bytes, header dimensions, structural completeness, then pixel decode when
 * the `--decode` policy asks. The first gate that fails decides the reason; every reason
 * here is of class `invalid`. Rejections are data, not exceptions: validate() never throws.
 */
import type { Reason } from '../protocol/index.js';
import { decodeFailure, isDecodable, isDecodeChosen, loadSharp } from './gates/decode.js';
import type { DecodePolicy } from './gates/decode.js';
import { headerDimensions } from './gates/dimensions.js';
import type { Dimensions } from './gates/dimensions.js';
import { STRUCTURE_CHECKS } from './gates/structure.js';
import { detectType, isImageType, tiffFamily } from './gates/types.js';
import type { DetectedType } from './gates/types.js';

export type { DecodePolicy } from './gates/decode.js';
export { parseDecodePolicy } from './gates/decode.js';
export { IMAGE_TYPES } from './gates/types.js';

export type GateOptions = {
  profile: 'image' | 'any';
  minBytes: number;
  maxBytes: number;
  minDim: number;
  maxPixels: number;
  decode: DecodePolicy;
};
export type Accepted = { ok: true; ext: string; contentType: string; width: number | null; height: number | null };
/** `reason` is always of class `invalid`; `detail` is one line, without TAB. */
export type Rejected = { ok: false; reason: Reason; detail: string };
export type Verdict = Accepted | Rejected;

/** The reasons the gates emit, all of class `invalid` (protocol/reasons.ts). */
type GateReason =
  | 'EMPTY'
  | 'TOO_SMALL'
  | 'TOO_LARGE'
  | 'NOT_ALLOWED_TYPE'
  | 'TOO_FEW_PIXELS'
  | 'PIXEL_BOMB'
  | 'INCOMPLETE_IMAGE'
  | 'UNDECODABLE';

const UNKNOWN_TYPE: DetectedType = { ext: 'bin', contentType: 'application/octet-stream' };

/**
 * Runs the gates in DESIGN.md's order and stops at the first failure. Never throws: an
 * unexpected error from a library becomes UNDECODABLE, so a bug met by one task cannot
 * kill the others. `id` only picks the decode sample.
 */
export async function validate(id: string, body: Buffer, opts: GateOptions): Promise<Verdict> {
  try {
    return await runGates(id, body, opts);
  } catch (err) {
    return reject('UNDECODABLE', `validation failed unexpectedly: ${oneLine(err)}`);
  }
}

async function runGates(id: string, body: Buffer, opts: GateOptions): Promise<Verdict> {
  const size = checkSize(body.length, opts);
  if (size) return size;
  if (opts.profile === 'any') return acceptAny(body);

  let type: DetectedType | null;
  try {
    type = (await detectType(body)) ?? tiffFamily(body); // a TIFF cut before its IFD is INCOMPLETE_IMAGE
  } catch (err) {
    return reject('UNDECODABLE', `type detection failed: ${oneLine(err)}`);
  }
  if (!type || !isImageType(type.ext)) {
    return reject('NOT_ALLOWED_TYPE', `${type ? type.contentType : 'unrecognised type'} is not an allowed image type`);
  }
  return imageGates(id, body, type, opts);
}

/** Header dimensions → structure → decode, for a type the image profile allows. */
async function imageGates(id: string, body: Buffer, type: DetectedType, opts: GateOptions): Promise<Verdict> {
  let dims: Dimensions;
  try {
    dims = await headerDimensions(type.ext, body);
  } catch (err) {
    return reject('INCOMPLETE_IMAGE', `${type.ext} header unreadable: ${oneLine(err)}`);
  }
  const pixels = checkPixels(dims, opts);
  if (pixels) return pixels;

  const broken = STRUCTURE_CHECKS[type.ext]?.(body) ?? null;
  if (broken !== null) return reject('INCOMPLETE_IMAGE', `${type.ext}: ${broken}`);

  if (isDecodeChosen(id, opts.decode) && isDecodable(type.ext, body)) {
    const failure = await decodeFailure(body, opts.maxPixels);
    if (failure !== null) return reject('UNDECODABLE', `${type.ext} decode failed: ${oneLine(failure)}`);
  }
  return { ok: true, ...type, ...dims };
}

/**
 * `--profile any`: size gates and type detection only. Dimensions are still reported when
 * the type is an image and its header parses, since that costs microseconds.
 */
async function acceptAny(body: Buffer): Promise<Accepted> {
  const type = (await detectType(body).catch(() => null)) ?? tiffFamily(body) ?? UNKNOWN_TYPE;
  let dims: Dimensions | null = null;
  if (type.contentType.startsWith('image/')) {
    try {
      dims = await headerDimensions(type.ext, body);
    } catch {
      dims = null; // any profile: a broken header is not a reason to refuse
    }
  }
  return { ok: true, ...type, width: dims?.width ?? null, height: dims?.height ?? null };
}

/** Loads the decoder now when the policy may decode; rejects when sharp cannot load. */
export async function prepareGates(opts: Pick<GateOptions, 'decode' | 'profile'>): Promise<void> {
  if (opts.profile === 'image' && opts.decode.mode !== 'never') await loadSharp();
}

/** The size gates for a complete body: EMPTY, TOO_SMALL (below minBytes), TOO_LARGE. */
export function checkSize(bytes: number, opts: Pick<GateOptions, 'minBytes' | 'maxBytes'>): Rejected | null {
  if (bytes === 0) return reject('EMPTY', '0 bytes');
  if (bytes < opts.minBytes) return reject('TOO_SMALL', `${bytes} bytes < --min-bytes ${opts.minBytes}`);
  return overCeiling(bytes, opts);
}

/**
 * The size ceiling alone, for a body still streaming (or a Content-Length): once it
 * returns a verdict the downloader may stop reading, since validate() would refuse anyway.
 */
export function overCeiling(bytesSoFar: number, opts: Pick<GateOptions, 'maxBytes'>): Rejected | null {
  return bytesSoFar > opts.maxBytes ? reject('TOO_LARGE', `more than --max-bytes ${opts.maxBytes} bytes`) : null;
}

function checkPixels({ width, height }: Dimensions, opts: GateOptions): Rejected | null {
  if (width < opts.minDim || height < opts.minDim) {
    return reject('TOO_FEW_PIXELS', `${width}x${height} below --min-dim ${opts.minDim}`);
  }
  if (width * height > opts.maxPixels) {
    return reject('PIXEL_BOMB', `${width}x${height} = ${width * height} pixels > --max-pixels ${opts.maxPixels}`);
  }
  return null;
}

/**
 * The real type from a payload's first bytes, with ferry's spelling; null when
 * unrecognised. Lets the downloader stop early on a payload the profile will refuse, given
 * at least file-type's 4,100 bytes (or the whole body). validate() on the whole body stays
 * the judge: a head can only be less certain, never stricter.
 */
export async function sniffType(head: Buffer): Promise<{ ext: string; contentType: string } | null> {
  try {
    return (await detectType(head)) ?? tiffFamily(head);
  } catch {
    return tiffFamily(head);
  }
}

/** Whether a profile accepts a sniffed type (null: unrecognised). */
export function isAllowedType(type: { ext: string } | null, profile: GateOptions['profile']): boolean {
  return profile === 'any' || (type !== null && isImageType(type.ext));
}

function reject(reason: GateReason, detail: string): Rejected {
  return { ok: false, reason, detail };
}

/** Library messages can hold newlines or TABs; event details must not (DESIGN.md). */
function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}
