/**
 * Header parsers for the types image-size misreads (measured on real files): its JPEG walk
 * starts inside the first segment, so it never sees an SOF written first, loses its way on
 * 0xFF fill bytes (ITU T.81 B.1.1.2) and knows only SOF0–SOF2, so arithmetic-coded and
 * lossless JPEGs had no size; its BMP parser reads every header as BITMAPINFOHEADER, so an
 * OS/2 1.x BMP (16-bit sizes) came out as trillions of pixels.
 * Each parser returns the stored width and height, or throws when the header is not there.
 */
import type { Dimensions } from './dimensions.js';

/**
 * The frame header of a JPEG: walks marker segments by their lengths from SOI up to the
 * first SOFn. A height of 0 (defined later by a DNL segment) is returned as 0.
 */
export function jpegSize(b: Uint8Array): Dimensions {
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
      return { height: readU16BE(b, i + 3), width: readU16BE(b, i + 5) };
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

const readU16BE = (b: Uint8Array, at: number): number => ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
