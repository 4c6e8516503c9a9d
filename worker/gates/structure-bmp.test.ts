import { describe, expect, it } from 'vitest';
import { checkBmp } from './structure-bmp.js';

type Variant = {
  /** Info header size: 12 (OS/2 1.x), 16 or 64 (OS/2 2.x), 40, 52, 56, 108, 124 (Windows). */
  header: number;
  bits: number;
  /** The compression field (absent from 12- and 16-byte headers). */
  compression?: number;
  topDown?: boolean;
  /** Compressed pixel bytes, stored as they are, with their size in the header. */
  compressed?: Buffer;
  /** A V5 header's embedded profile, stored after the pixels. */
  profile?: number;
  /** What the file-size field says, when not the file's size. */
  fileSize?: number;
};

/**
 * A BMP by hand (libvips has no BMP writer), laid out as BMP Suite's files are: file
 * header, info header, bit masks for BI_BITFIELDS in a 40-byte header, palette, pixels,
 * then a V5 header's profile.
 */
function bmp(v: Variant, width = 37, height = 33): Buffer {
  const core = v.header === 12;
  const masks = v.header === 40 && v.compression === 3 ? 12 : 0;
  const palette = v.bits <= 8 ? (1 << v.bits) * (core ? 3 : 4) : 0;
  const pixelsAt = 14 + v.header + masks + palette;
  const stride = Math.ceil((width * v.bits) / 32) * 4;
  const pixels = v.compressed ?? Buffer.alloc(stride * height, 0x5a);
  const profileAt = pixelsAt + pixels.length;
  const b = Buffer.alloc(profileAt + (v.profile ?? 0), 0x33);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(v.fileSize ?? b.length, 2);
  b.writeUInt32LE(pixelsAt, 10);
  b.fill(0, 14, 14 + v.header);
  b.writeUInt32LE(v.header, 14);
  if (core) {
    b.writeUInt16LE(width, 18);
    b.writeUInt16LE(height, 20);
    b.writeUInt16LE(1, 22);
    b.writeUInt16LE(v.bits, 24);
  } else {
    b.writeInt32LE(width, 18);
    b.writeInt32LE(v.topDown ? -height : height, 22);
    b.writeUInt16LE(1, 26);
    b.writeUInt16LE(v.bits, 28);
    if (v.header >= 40) b.writeUInt32LE(v.compression ?? 0, 30);
    if (v.header >= 40) b.writeUInt32LE(pixels.length, 34);
  }
  if (v.bits === 16 || v.bits === 32) [0xf800, 0x07e0, 0x001f].forEach((m, i) => b.writeUInt32LE(v.bits === 16 ? m : 0xff << (16 - 8 * i), 54 + 4 * i));
  if (v.profile) {
    b.write('DEBM', 14 + 56, 'latin1'); // bV5CSType PROFILE_EMBEDDED, a little-endian 'MBED'
    b.writeUInt32LE(profileAt - 14, 14 + 112);
    b.writeUInt32LE(v.profile, 14 + 116);
  }
  pixels.copy(b, pixelsAt);
  return b;
}

/** RLE8 pixels: each row one run of `width` pixels, end of line, and end of bitmap. */
function rle8(width: number, height: number): Buffer {
  const rows: number[] = [];
  for (let y = 0; y < height; y++) rows.push(width, y & 0xff, 0, 0);
  return Buffer.from([...rows.slice(0, -2), 0, 1]);
}

const VARIANTS: Record<string, Variant> = {
  'OS/2 1.x, 24-bit': { header: 12, bits: 24 },
  'OS/2 1.x, 8-bit palette': { header: 12, bits: 8 },
  'OS/2 2.x, 64-byte header': { header: 64, bits: 8 },
  'OS/2 2.x, 16-byte header': { header: 16, bits: 4 },
  'Windows 3, 1-bit': { header: 40, bits: 1 },
  'Windows 3, 4-bit': { header: 40, bits: 4 },
  'Windows 3, 8-bit, top-down': { header: 40, bits: 8, topDown: true },
  'Windows 3, 24-bit': { header: 40, bits: 24 },
  'Windows 3, 32-bit': { header: 40, bits: 32 },
  'Windows 3, 16-bit bit fields': { header: 40, bits: 16, compression: 3 },
  'V2 (52 bytes), 32-bit bit fields': { header: 52, bits: 32, compression: 3 },
  'V3 (56 bytes), 32-bit bit fields': { header: 56, bits: 32, compression: 3 },
  'V4, 24-bit': { header: 108, bits: 24 },
  'V5, 64-bit': { header: 124, bits: 64 },
  'V5, embedded profile': { header: 124, bits: 24, profile: 600 },
  'Windows 3, RLE8': { header: 40, bits: 8, compression: 1, compressed: rle8(37, 33) },
};

/** The lengths n < body.length at which a prefix passes. */
function passingPrefixes(body: Buffer): number[] {
  const passed: number[] = [];
  for (let n = 0; n < body.length; n++) if (checkBmp(body.subarray(0, n)) === null) passed.push(n);
  return passed;
}

describe.each(Object.keys(VARIANTS))('a BMP, %s', (name) => {
  const body = bmp(VARIANTS[name]!);

  it('passes whole, and with bytes after it', () => {
    expect(checkBmp(body)).toBeNull();
    expect(checkBmp(Buffer.concat([body, Buffer.alloc(64)]))).toBeNull();
  });

  it('fails at every cut but one inside the last row padding', () => {
    const lastRowPadding = VARIANTS[name]!.compressed || VARIANTS[name]!.profile ? 0 : paddingOfLastRow(VARIANTS[name]!);
    expect(passingPrefixes(body)).toEqual(range(body.length - lastRowPadding, body.length));
    expect(checkBmp(body.subarray(0, body.length >> 1))).toMatch(/^truncated at byte \d+: the (pixel data|color profile) (reaches|starts at) byte \d+$/);
  });
});

describe('checkBmp does not hold a BMP to the fields readers ignore', () => {
  it.each<[string, Variant]>([
    ['an OS/2 file-size field holding the size of the headers', { header: 12, bits: 8, fileSize: 26 }],
    ['an OS/2 2.x one (78)', { header: 64, bits: 8, fileSize: 78 }],
    ['a file-size field of several GB', { header: 40, bits: 24, fileSize: 2_111_692_253 }],
    ['a file-size field of 0', { header: 40, bits: 24, fileSize: 0 }],
  ])('%s', (_name, variant) => {
    const body = bmp(variant);
    expect(checkBmp(body)).toBeNull();
    expect(checkBmp(body.subarray(0, body.length - 40))).toMatch(/the pixel data reaches/); // the pixels still count
  });

  it('compressed pixels whose size the file-size field does not confirm: whole or cut, nothing to hold them to', () => {
    const huffman = bmp({ header: 64, bits: 1, compression: 3, compressed: Buffer.alloc(300, 1), fileSize: 78 }); // OS/2 Huffman 1D
    const rle = bmp({ header: 40, bits: 8, compression: 1, compressed: rle8(37, 33), fileSize: 0 });
    for (const body of [huffman, rle]) {
      expect(checkBmp(body)).toBeNull();
      expect(checkBmp(body.subarray(0, body.length - 10))).toBeNull();
    }
  });

  it('a BMP Suite shortfile.bmp (cut in the pixels) fails; its pixel offset past the end fails', () => {
    const pal1 = bmp({ header: 40, bits: 1 }, 127, 64);
    expect(checkBmp(pal1.subarray(0, 273))).toMatch(/pixel data reaches byte 1086/);
    expect(checkBmp(pal1.subarray(0, 60))).toMatch(/the pixel data starts at byte 62/);
    expect(checkBmp(pal1.subarray(0, 40))).toMatch(/in the 40-byte info header/);
  });

  it('never throws on garbage after a BMP signature', () => {
    let s = 23;
    for (let n = 0; n < 2000; n++) {
      const junk = Buffer.alloc(2 + (n % 150));
      for (let i = 0; i < junk.length; i++) junk[i] = (s = (s * 1103515245 + 12345) & 0x7fffffff) >> 16;
      junk.write('BM', 0, 'latin1');
      if (n % 2 === 0 && junk.length >= 18) junk.writeUInt32LE([12, 16, 40, 64, 108, 124][n % 6]!, 14);
      expect(() => checkBmp(junk)).not.toThrow();
    }
  });
});

function paddingOfLastRow(v: Variant, width = 37): number {
  const row = Math.ceil((width * v.bits) / 8);
  return Math.ceil(row / 4) * 4 - row;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
