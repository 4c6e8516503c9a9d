/**
 * Structural completeness: is the image whole? Each check walks the format's own framing
 * (JPEG markers, PNG chunks, RIFF chunks, GIF blocks, ISO-BMFF boxes, TIFF directories, BMP
 * headers) to its end, because a payload cut short by a dropped connection or a partial
 * upload at the origin is the common corruption, and it is found here for microseconds
 * instead of a full decode.
 * Bytes after a complete image (motion photos, MPF, padding) are allowed.
 * Each check returns why the image is not whole, or null when it is.
 */
import { checkBmp } from './structure-bmp.js';
import { checkTiff } from './structure-tiff.js';

export type StructureCheck = (b: Buffer) => string | null;

/** The checks by canonical extension; other types pass on magic bytes and header alone. */
export const STRUCTURE_CHECKS: Readonly<Partial<Record<string, StructureCheck>>> = {
  jpg: checkJpeg,
  png: checkPng,
  webp: checkWebp,
  gif: checkGif,
  avif: checkHeif,
  heic: checkHeif,
  tif: checkTiff,
  bmp: checkBmp,
};

const truncated = (b: Buffer, what: string): string => `truncated at byte ${b.length}: ${what}`;

// ---------------------------------------------------------------- JPEG (ITU T.81, annex B)

/**
 * Walks the marker segments by their lengths (so an EXIF thumbnail's own SOI…EOI inside
 * APP1 is skipped, not mistaken for the end) and the entropy-coded data after each SOS up
 * to the next real marker, until EOI.
 */
export function checkJpeg(b: Buffer): string | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return 'no SOI marker';
  let i = 2;
  let sawScan = false;
  for (;;) {
    if (i >= b.length) return truncated(b, 'no EOI marker');
    if (b[i] !== 0xff) return `expected a marker at byte ${i}`;
    while (i < b.length && b[i] === 0xff) i++; // any number of 0xFF fill bytes (B.1.1.2)
    const m = b[i];
    if (m === undefined) return truncated(b, 'no EOI marker');
    i++;
    if (m === 0xd9) return sawScan ? null : 'EOI before any scan';
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; // TEM and RSTn stand alone
    if (m === 0x00 || m === 0xd8) return `unexpected marker 0xFF${hex(m)} at byte ${i - 2}`;
    if (i + 2 > b.length) return truncated(b, `in marker 0xFF${hex(m)}`);
    const len = ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0); // includes its own 2 bytes
    if (len < 2) return `bad length ${len} of marker 0xFF${hex(m)} at byte ${i - 2}`;
    i += len;
    if (i > b.length) return truncated(b, `in segment 0xFF${hex(m)}`);
    if (m === 0xda) {
      sawScan = true;
      i = skipEntropyCoded(b, i);
    }
  }
}

/** Index of the 0xFF that starts the next marker after entropy-coded data, or b.length. */
function skipEntropyCoded(b: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const j = b.indexOf(0xff, i); // native search: stuffed 0xFF00 pairs are rare (~1/256)
    if (j < 0 || j + 1 >= b.length) return b.length;
    const n = b[j + 1] ?? 0;
    if (n === 0x00 || (n >= 0xd0 && n <= 0xd7)) i = j + 2; // stuffed byte or restart marker
    else if (n === 0xff) i = j + 1; // fill byte before a marker
    else return j;
  }
}

const hex = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');

// ---------------------------------------------------------------- PNG (chunks to IEND)

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const IHDR = 0x49484452;
const CGBI = 0x43674249; // Apple's "fried" PNG puts CgBI before IHDR
const IDAT = 0x49444154;
const IEND = 0x49454e44;

/** Walks chunk lengths to IEND. CRCs are not checked: the decode gate does that. */
export function checkPng(b: Buffer): string | null {
  if (b.length < 8 || !b.subarray(0, 8).equals(PNG_SIGNATURE)) return 'no PNG signature';
  let i = 8;
  let sawData = false;
  for (let n = 0; ; n++) {
    if (i + 12 > b.length) return truncated(b, 'no IEND chunk');
    const len = b.readUInt32BE(i);
    const type = b.readUInt32BE(i + 4);
    if (len > 0x7fffffff || !isChunkName(b, i + 4)) return `bad chunk at byte ${i}`;
    if (n === 0 && type !== IHDR && type !== CGBI) return 'first chunk is not IHDR';
    if (i + 12 + len > b.length) return truncated(b, `in chunk ${b.toString('latin1', i + 4, i + 8)}`);
    if (type === IDAT) sawData = true;
    if (type === IEND) return sawData ? null : 'IEND before any IDAT';
    i += 12 + len;
  }
}

/** Chunk names are four ASCII letters; anything else means the walk lost its way. */
function isChunkName(b: Buffer, at: number): boolean {
  for (let k = at; k < at + 4; k++) {
    const c = (b[k] ?? 0) | 0x20;
    if (c < 0x61 || c > 0x7a) return false;
  }
  return true;
}

// ---------------------------------------------------------------- WebP (RIFF)

const FOURCC_VP8 = 0x56503820; // 'VP8 '
const FOURCC_VP8L = 0x5650384c;
const FOURCC_ANMF = 0x414e4d46;

/** The RIFF length must fit the bytes received, and its chunks must tile the RIFF body. */
export function checkWebp(b: Buffer): string | null {
  if (b.length < 12 || b.toString('latin1', 0, 4) !== 'RIFF' || b.toString('latin1', 8, 12) !== 'WEBP') {
    return 'no RIFF WEBP header';
  }
  const riffEnd = 8 + b.readUInt32LE(4);
  if (riffEnd > b.length) return truncated(b, `the RIFF header says ${riffEnd} bytes`);
  let i = 12;
  let sawImage = false;
  while (i + 8 <= riffEnd) {
    const fourcc = b.readUInt32BE(i);
    const size = b.readUInt32LE(i + 4);
    if (i + 8 + size > riffEnd) return `chunk ${b.toString('latin1', i, i + 4)} at byte ${i} overruns the RIFF`;
    if (fourcc === FOURCC_VP8 || fourcc === FOURCC_VP8L || fourcc === FOURCC_ANMF) sawImage = true;
    i += 8 + size + (size & 1); // chunks are padded to an even size
  }
  return sawImage ? null : 'no image chunk';
}

// ---------------------------------------------------------------- GIF (blocks to trailer)

/** Walks the header, color tables, extension and image blocks (with their sub-blocks) to 0x3B. */
export function checkGif(b: Buffer): string | null {
  const sig = b.toString('latin1', 0, 6);
  if (b.length < 13 || (sig !== 'GIF87a' && sig !== 'GIF89a')) return 'no GIF header';
  let i = 13 + colorTableSize(b[10] ?? 0);
  let images = 0;
  for (;;) {
    const block = b[i];
    if (block === undefined) return truncated(b, 'no trailer');
    if (block === 0x3b) return images > 0 ? null : 'trailer before any image';
    if (block === 0x00) {
      i++; // a stray block terminator, which some encoders write twice: decoders skip it
      continue;
    }
    if (block === 0x21) {
      i = skipSubBlocks(b, i + 2); // introducer, label, then data sub-blocks
    } else if (block === 0x2c) {
      if (i + 10 > b.length) return truncated(b, 'in an image descriptor');
      // descriptor (10 bytes), local color table, LZW minimum code size (1 byte), data
      i = skipSubBlocks(b, i + 10 + colorTableSize(b[i + 9] ?? 0) + 1);
      images++;
    } else {
      return `unknown block 0x${hex(block)} at byte ${i}`;
    }
    if (i < 0) return truncated(b, 'in a data sub-block');
  }
}

/** Bytes of the color table announced by a packed-fields byte (global or local). */
function colorTableSize(flags: number): number {
  return flags & 0x80 ? 3 << ((flags & 0x07) + 1) : 0;
}

/** Index after the zero-length terminator of a run of sub-blocks, or -1 when the bytes end first. */
function skipSubBlocks(b: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const n = b[i];
    if (n === undefined) return -1;
    i += 1 + n;
    if (n === 0) return i;
  }
}

// ---------------------------------------------------------------- AVIF, HEIC (ISO-BMFF boxes)

const isFourCC = (b: Buffer, at: number): boolean => {
  for (let k = at; k < at + 4; k++) if (b[k]! < 0x20 || b[k]! > 0x7e) return false;
  return true;
};

/**
 * The top-level boxes, each within the bytes received, from `ftyp` through `meta` (the
 * items) to the data they point into: an `mdat` box, or an `idat` inside `meta`; and every
 * extent the item locations (`iloc`) give in the file lies within it. Bytes after the
 * image's boxes (padding, a trailer) are allowed, whatever they look like.
 */
export function checkHeif(b: Buffer): string | null {
  if (b.length < 16 || b.toString('latin1', 4, 8) !== 'ftyp') return 'no ftyp box';
  let i = 0;
  let meta: [number, number] | null = null;
  let mdat = false;
  let cut: string | null = null;
  while (i + 8 <= b.length && isFourCC(b, i + 4)) {
    const type = b.toString('latin1', i + 4, i + 8);
    let size = b.readUInt32BE(i);
    let header = 8;
    if (size === 1) {
      if (i + 16 > b.length) return truncated(b, `in the header of box ${type}`);
      size = Number(b.readBigUInt64BE(i + 8));
      header = 16;
    } else if (size === 0) {
      size = b.length - i; // to the end of the file
    }
    if (size < header || i + size > b.length) {
      cut = size < header ? `box ${type} at byte ${i} has a size of ${size}` : truncated(b, `box ${type} at byte ${i} says ${size} bytes`);
      break; // a cut, unless the image is whole before it (checked below)
    }
    if (type === 'meta') meta = [i + header + 4, i + size]; // a FullBox: version and flags first
    if (type === 'mdat') mdat = true;
    i += size;
  }
  if (!meta) return cut ?? (i < b.length ? truncated(b, 'before a whole meta box') : 'no meta box');
  if (!mdat && childBox(b, meta[0], meta[1], 'idat') === null) return cut ?? truncated(b, 'no mdat box');
  const iloc = childBox(b, meta[0], meta[1], 'iloc');
  const end = iloc && furthestExtent(b, iloc[0], iloc[1]);
  if (end === undefined) return 'unreadable iloc box';
  if (end !== null && end > b.length) return truncated(b, `an item's data reaches byte ${end}`);
  return null;
}

/** A child box's payload [start, end) within [from, to), or null. */
function childBox(b: Buffer, from: number, to: number, type: string): [number, number] | null {
  for (let i = from; i + 8 <= to; ) {
    const size = b.readUInt32BE(i);
    if (size < 8 || i + size > to) return null;
    if (b.toString('latin1', i + 4, i + 8) === type) return [i + 8, i + size];
    i += size;
  }
  return null;
}

/**
 * The furthest byte the file-offset extents of an `iloc` box (ISO/IEC 14496-12, 8.11.3)
 * reach, null when none does, undefined when the box cannot be read. Extents in `idat`
 * (construction method 1) or in other items (2) are not file offsets.
 */
function furthestExtent(b: Buffer, from: number, to: number): number | null | undefined {
  let at = from;
  const read = (bytes: number): number | undefined => {
    if (at + bytes > to) return undefined;
    const v = bytes === 0 ? 0 : bytes === 2 ? b.readUInt16BE(at) : bytes === 4 ? b.readUInt32BE(at) : Number(b.readBigUInt64BE(at));
    at += bytes;
    return v;
  };
  const version = read(4)! >>> 24; // FullBox
  if (at > to || version > 2) return undefined;
  const sizes = read(2);
  if (sizes === undefined) return undefined;
  const [offsetSize, lengthSize, baseSize, indexSize] = [sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15, version > 0 ? sizes & 15 : 0];
  if (![offsetSize, lengthSize, baseSize, indexSize].every((n) => n === 0 || n === 4 || n === 8)) return undefined;
  const items = read(version < 2 ? 2 : 4);
  if (items === undefined) return undefined;
  let furthest: number | null = null;
  for (let n = 0; n < items; n++) {
    if (read(version < 2 ? 2 : 4) === undefined) return undefined; // item id
    const method = version > 0 ? (read(2) ?? -1) & 15 : 0;
    if (read(2) === undefined) return undefined; // data reference index
    const base = read(baseSize);
    const extents = read(2);
    if (method < 0 || base === undefined || extents === undefined) return undefined;
    for (let e = 0; e < extents; e++) {
      if (read(indexSize) === undefined) return undefined;
      const offset = read(offsetSize);
      const length = read(lengthSize);
      if (offset === undefined || length === undefined) return undefined;
      if (method === 0 && length > 0) furthest = Math.max(furthest ?? 0, base + offset + length);
    }
  }
  return furthest;
}
