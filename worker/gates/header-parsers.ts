/**
 * Header parsers for the types image-size misreads (measured on real files): its JPEG walk
 * starts inside the first segment, so it never sees an SOF written first, loses its way on
 * 0xFF fill bytes (ITU T.81 B.1.1.2) and knows only SOF0–SOF2, so arithmetic-coded and
 * lossless JPEGs had no size; its BMP parser reads every header as BITMAPINFOHEADER, so an
 * OS/2 1.x BMP (16-bit sizes) came out as trillions of pixels; its HEIF parser takes the
 * first size property in the file, which in a grid image (every iPhone and Samsung photo)
 * is a 512×512 tile's, not the picture's; its GIF parser reads the logical screen alone,
 * which decoders grow to hold the first frame, so a 0×0 screen was unreadable and a
 * 64×64 screen around a 20000×20000 frame passed the pixel-count limit.
 * Each parser returns the stored width and height, or throws when the header is not there.
 */
import { HEIF } from 'image-size/types/heif';

/** An image's stored width and height, in pixels. */
export type Dimensions = { width: number; height: number };

/** A JPEG's frame header: its SOFn marker (the coding process), sample precision and size. */
export type JpegFrame = Dimensions & { sof: number; precision: number };

/** The stored width and height of a JPEG (see jpegFrame). */
export function jpegSize(b: Uint8Array): Dimensions {
  const { width, height } = jpegFrame(b);
  return { width, height };
}

/**
 * The frame header of a JPEG: walks marker segments by their lengths from SOI up to the
 * first SOFn. A height of 0 (defined later by a DNL segment) is returned as 0.
 */
export function jpegFrame(b: Uint8Array): JpegFrame {
  if (b[0] !== 0xff || b[1] !== 0xd8) throw new TypeError('no SOI marker');
  let i = 2;
  for (;;) {
    if (b[i] !== 0xff) throw new TypeError(i >= b.length ? 'no frame header' : `expected a marker at byte ${i}`);
    while (b[i] === 0xff) i++; // fill bytes
    const marker = b[i++];
    if (marker === undefined || i + 2 > b.length) throw new TypeError('no frame header');
    if (marker === 0xd9 || marker === 0xda) throw new TypeError('no frame header before the scan');
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // TEM and RSTn stand alone
    if (isFrameHeader(marker)) {
      if (i + 7 > b.length) throw new TypeError('frame header cut short');
      return { sof: marker, precision: b[i + 2] ?? 0, height: readU16BE(b, i + 3), width: readU16BE(b, i + 5) };
    }
    const length = readU16BE(b, i); // includes its own 2 bytes
    if (length < 2) throw new TypeError(`bad segment length at byte ${i}`);
    i += length;
  }
}

/** SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range. */
function isFrameHeader(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/**
 * A BMP's size by its DIB header version: 16-bit in the 12-byte OS/2 1.x header, signed
 * 32-bit in all later ones (a negative height is a top-down bitmap).
 */
export function bmpSize(b: Uint8Array): Dimensions {
  if (b.length < 26 || b[0] !== 0x42 || b[1] !== 0x4d) throw new TypeError('no BMP header');
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const headerSize = view.getUint32(14, true);
  if (headerSize === 12) return { width: view.getUint16(18, true), height: view.getUint16(20, true) };
  if (headerSize < 16) throw new TypeError(`unknown BMP header size ${headerSize}`);
  return { width: view.getInt32(18, true), height: Math.abs(view.getInt32(22, true)) };
}

/**
 * A GIF's size as decoders show it: the logical screen, grown to hold the first frame
 * (libnsgif, which libvips uses, does so, as do Pillow and ImageMagick; writers that leave
 * the screen at 0×0 rely on it). Later frames are clipped to that canvas by decoders.
 */
export function gifSize(b: Uint8Array): Dimensions {
  if (b.length < 13 || b[0] !== 0x47 || b[1] !== 0x49 || b[2] !== 0x46) throw new TypeError('no GIF header');
  const screen = { width: readU16LE(b, 6), height: readU16LE(b, 8) };
  const at = firstImageDescriptor(b);
  if (at === null) return screen;
  return {
    width: Math.max(screen.width, readU16LE(b, at + 1) + readU16LE(b, at + 5)),
    height: Math.max(screen.height, readU16LE(b, at + 3) + readU16LE(b, at + 7)),
  };
}

/** Where the first image descriptor (10 bytes, 0x2C) starts, past the extensions before it; null when the bytes end first. */
function firstImageDescriptor(b: Uint8Array): number | null {
  const flags = b[10] ?? 0;
  let i = 13 + (flags & 0x80 ? 3 << ((flags & 0x07) + 1) : 0); // header, screen, global color table
  while (b[i] === 0x21) {
    i += 2; // introducer and label, then data sub-blocks to a zero-length one
    for (let n = b[i]; n !== 0; n = b[i]) {
      if (n === undefined) return null;
      i += 1 + n;
    }
    i++;
  }
  return b[i] === 0x2c && i + 10 <= b.length ? i : null;
}

/** An ISO-BMFF box: its type and where its payload starts and ends (clipped to the bytes). */
type Box = { type: string; body: number; end: number };

/** The boxes from `from` to `to`, stopping at one whose header does not fit. */
function boxesIn(view: DataView, from: number, to: number): Box[] {
  const boxes: Box[] = [];
  for (let at = from; at + 8 <= to; ) {
    let size = view.getUint32(at);
    let header = 8;
    if (size === 1) {
      if (at + 16 > to) break;
      size = Number(view.getBigUint64(at + 8));
      header = 16;
    } else if (size === 0) {
      size = to - at; // to the end
    }
    if (size < header) break;
    const type = String.fromCharCode(view.getUint8(at + 4), view.getUint8(at + 5), view.getUint8(at + 6), view.getUint8(at + 7));
    boxes.push({ type, body: at + header, end: Math.min(at + size, to) });
    at += size;
  }
  return boxes;
}

/**
 * An AVIF's or HEIC's size: the spatial extent (ispe) associated with the primary item
 * (pitm), cropped by its clean aperture (clap) as decoders show it. A file whose boxes
 * name no primary size falls back to image-size's reading (the first ispe).
 */
export function heifSize(b: Uint8Array): Dimensions {
  const primary = heifPrimarySize(new DataView(b.buffer, b.byteOffset, b.byteLength));
  if (primary) return primary;
  const { width, height } = HEIF.calculate(b);
  return { width: width ?? 0, height: height ?? 0 };
}

function heifPrimarySize(view: DataView): Dimensions | null {
  const child = (boxes: Box[], type: string) => boxes.find((x) => x.type === type);
  const meta = child(boxesIn(view, 0, view.byteLength), 'meta');
  if (!meta || meta.body + 4 > meta.end) return null;
  const inMeta = boxesIn(view, meta.body + 4, meta.end); // meta is a FullBox
  const pitm = child(inMeta, 'pitm');
  const iprp = child(inMeta, 'iprp');
  if (!pitm || !iprp || pitm.body + 4 > pitm.end) return null;
  const shortId = view.getUint8(pitm.body) === 0; // version 0: a 16-bit item id
  if (pitm.body + (shortId ? 6 : 8) > pitm.end) return null;
  const primary = shortId ? view.getUint16(pitm.body + 4) : view.getUint32(pitm.body + 4);
  const inIprp = boxesIn(view, iprp.body, iprp.end);
  const ipco = child(inIprp, 'ipco');
  const ipma = child(inIprp, 'ipma');
  if (!ipco || !ipma) return null;
  const properties = boxesIn(view, ipco.body, ipco.end);
  const associated = primaryProperties(view, ipma, primary).map((index) => properties[index - 1]);
  const ispe = associated.find((p) => p?.type === 'ispe');
  if (!ispe || ispe.body + 12 > ispe.end) return null;
  const size = { width: view.getUint32(ispe.body + 4), height: view.getUint32(ispe.body + 8) };
  const clap = associated.find((p) => p?.type === 'clap');
  return clap && clap.body + 16 <= clap.end ? cleanAperture(view, clap, size) : size;
}

/** The 1-based ipco indexes the ipma box associates with one item. */
function primaryProperties(view: DataView, ipma: Box, item: number): number[] {
  const version = view.getUint8(ipma.body);
  const wide = (view.getUint8(ipma.body + 3) & 1) === 1; // flags: 15-bit indexes
  let at = ipma.body + 4;
  if (at + 4 > ipma.end) return [];
  const entries = view.getUint32(at);
  at += 4;
  for (let e = 0; e < entries; e++) {
    const idBytes = version < 1 ? 2 : 4;
    if (at + idBytes + 1 > ipma.end) return [];
    const id = version < 1 ? view.getUint16(at) : view.getUint32(at);
    const count = view.getUint8(at + idBytes);
    at += idBytes + 1;
    const end = at + count * (wide ? 2 : 1);
    if (end > ipma.end) return [];
    if (id === item) {
      const indexes: number[] = [];
      for (let k = at; k < end; k += wide ? 2 : 1) indexes.push(wide ? view.getUint16(k) & 0x7fff : view.getUint8(k) & 0x7f);
      return indexes;
    }
    at = end;
  }
  return [];
}

/** The size cropped to a clean aperture (fractions of pixels, rounded), when it is a crop. */
function cleanAperture(view: DataView, clap: Box, size: Dimensions): Dimensions {
  const fraction = (at: number) => {
    const d = view.getUint32(at + 4);
    return d === 0 ? 0 : Math.round(view.getUint32(at) / d);
  };
  const width = fraction(clap.body);
  const height = fraction(clap.body + 8);
  const isCrop = width >= 1 && height >= 1 && width <= size.width && height <= size.height;
  return isCrop ? { width, height } : size;
}

const readU16BE = (b: Uint8Array, at: number): number => ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
const readU16LE = (b: Uint8Array, at: number): number => (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
