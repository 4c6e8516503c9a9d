/**
 * Structural completeness of a BMP: its headers, and the pixel data (and embedded color
 * profile) they locate, within the bytes received. BMP has no end marker, so the end is
 * computed from the header: for uncompressed pixels from the width, height and bit depth,
 * which every decoder must read; for compressed ones (RLE, Huffman, embedded JPEG or PNG)
 * from the pixel-data size, but only where the file-size field agrees with it, because
 * readers ignore both fields and writers get them wrong (OS/2 writers put the size of the
 * headers in the file-size field; BMP Suite's q/ files hold real examples).
 */

/** Header sizes of the Windows versions; other sizes from 16 to 64 bytes are OS/2 2.x headers. */
const WINDOWS_HEADERS: ReadonlySet<number> = new Set([40, 52, 56, 108, 124]);
/** Bit depths of uncompressed pixels. */
const BIT_DEPTHS: ReadonlySet<number> = new Set([1, 2, 4, 8, 16, 24, 32, 64]);
/** bV5CSType values whose profile bytes are in the file: embedded ('MBED') or a linked file name ('LINK'). */
const PROFILE_IN_FILE: ReadonlySet<number> = new Set([0x4d424544, 0x4c494e4b]);

const truncated = (b: Buffer, what: string): string => `truncated at byte ${b.length}: ${what}`;

/** Why the BMP is not whole, or null when its headers, pixels and profile are all there. */
export function checkBmp(b: Buffer): string | null {
  if (b.length < 18 || b[0] !== 0x42 || b[1] !== 0x4d) return b.length < 18 ? truncated(b, 'in the file header') : 'no BMP header';
  const fileSize = b.readUInt32LE(2);
  const pixelsAt = b.readUInt32LE(10);
  const headerSize = b.readUInt32LE(14);
  if (headerSize !== 12 && headerSize < 16) return `unknown BMP header size ${headerSize}`;
  if (14 + headerSize > b.length) return truncated(b, `in the ${headerSize}-byte info header`);
  if (pixelsAt >= b.length) return truncated(b, `the pixel data starts at byte ${pixelsAt}`);

  const end = pixelDataEnd(b, headerSize, pixelsAt, fileSize);
  if (end !== null && end > b.length) return truncated(b, `the pixel data reaches byte ${end}`);
  const profileEnd = headerSize >= 124 ? embeddedProfileEnd(b) : null;
  if (profileEnd !== null && profileEnd > b.length) return truncated(b, `the color profile reaches byte ${profileEnd}`);
  return null;
}

/**
 * Where the pixel data must end, or null when the header does not say. Uncompressed rows
 * are padded to 4 bytes; the padding of the last row is not required (writers leave it
 * out and readers do not need it).
 */
function pixelDataEnd(b: Buffer, headerSize: number, pixelsAt: number, fileSize: number): number | null {
  const core = headerSize === 12;
  const width = core ? b.readUInt16LE(18) : b.readInt32LE(18);
  const height = core ? b.readUInt16LE(20) : Math.abs(b.readInt32LE(22));
  const bits = core ? b.readUInt16LE(24) : b.readUInt16LE(28);
  const compression = headerSize >= 20 ? b.readUInt32LE(30) : 0;
  // BI_BITFIELDS (3) and BI_ALPHABITFIELDS (6) are uncompressed in Windows headers; in OS/2 2.x, 3 is Huffman 1D.
  const uncompressed = compression === 0 || ((compression === 3 || compression === 6) && WINDOWS_HEADERS.has(headerSize));
  if (uncompressed) {
    if (width <= 0 || height === 0 || !BIT_DEPTHS.has(bits)) return null;
    const row = Math.ceil((width * bits) / 8);
    const stride = Math.ceil(row / 4) * 4;
    return pixelsAt + stride * (height - 1) + row;
  }
  const imageSize = headerSize >= 24 ? b.readUInt32LE(34) : 0;
  return imageSize > 0 && fileSize === pixelsAt + imageSize ? fileSize : null;
}

/** The end of a V5 header's profile data (offset from the info header, at 14), or null when it has none. */
function embeddedProfileEnd(b: Buffer): number | null {
  const csType = b.readUInt32LE(14 + 56); // a DWORD: its bytes spell the tag backwards
  const at = b.readUInt32LE(14 + 112);
  const size = b.readUInt32LE(14 + 116);
  return PROFILE_IN_FILE.has(csType) && size > 0 ? 14 + at + size : null;
}
