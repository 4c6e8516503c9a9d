import sharp from 'sharp';
import type { TiffOptions } from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkTiff } from './structure-tiff.js';

/** Photo-like pixels (gradient + deterministic noise). */
function pixels(width: number, height: number, channels = 3): Buffer {
  const px = Buffer.alloc(width * height * channels);
  let s = 5;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = Math.floor(((i % (width * channels)) / (width * channels)) * 200) + ((s >> 16) % 56);
  }
  return px;
}

type Layout = { order: 'II' | 'MM'; big: boolean; tiles: boolean };

/**
 * A TIFF written the other way round from libtiff, as many writers do (Pillow, scanners,
 * cameras): header, then each page's directory and its values, then its pixels, so a cut
 * in the pixels leaves every directory whole. 8-bit grayscale, uncompressed, in strips of
 * 8 rows or tiles of 16×16; `pages` pages chained by their next-directory offsets.
 */
function ifdFirstTiff({ order, big, tiles }: Layout, width: number, height: number, pages = 1): Buffer {
  const word = big ? 8 : 4;
  const [countSize, entrySize] = big ? [8, 20] : [2, 12];
  const pieces = tiles ? tilesOf(width, height, 16) : stripsOf(width, height, 8);
  const pixelBytes = pieces.reduce((a, n) => a + n, 0);
  const entries = (pixelsAt: number): Array<[tag: number, type: number, values: number[]]> => {
    const offsets = pieces.map((_, i) => pixelsAt + pieces.slice(0, i).reduce((a, n) => a + n, 0));
    const layout: Array<[number, number, number[]]> = tiles
      ? [[322, 3, [16]], [323, 3, [16]], [324, big ? 16 : 4, offsets], [325, 4, pieces]]
      : [[273, big ? 16 : 4, offsets], [278, 3, [8]], [279, 4, pieces]];
    const all: Array<[number, number, number[]]> = [[256, 4, [width]], [257, 4, [height]], [258, 3, [8]], [259, 3, [1]], [262, 3, [1]], [277, 3, [1]], ...layout];
    return all.sort((a, b) => a[0] - b[0]);
  };
  const bytesOf = (type: number, n: number): number => n * (type === 3 ? 2 : type === 4 ? 4 : 8);
  const outOfLine = entries(0).reduce((a, [, type, v]) => a + (bytesOf(type, v.length) > word ? bytesOf(type, v.length) : 0), 0);
  const dirBytes = countSize + entries(0).length * entrySize + word;
  const pageBytes = dirBytes + outOfLine + pixelBytes;
  const headerBytes = big ? 16 : 8;
  const b = Buffer.alloc(headerBytes + pages * pageBytes);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = order === 'II';
  const put = (at: number, bytes: number, n: number): void => {
    if (bytes === 2) v.setUint16(at, n, le);
    else if (bytes === 4) v.setUint32(at, n, le);
    else v.setBigUint64(at, BigInt(n), le);
  };
  b.write(order, 0, 'latin1');
  put(2, 2, big ? 43 : 42);
  if (big) put(4, 2, 8);
  put(big ? 8 : 4, word, headerBytes);
  for (let p = 0; p < pages; p++) {
    const dirAt = headerBytes + p * pageBytes;
    const pixelsAt = dirAt + dirBytes + outOfLine;
    const list = entries(pixelsAt);
    put(dirAt, countSize, list.length);
    let valuesAt = dirAt + dirBytes;
    list.forEach(([tag, type, values], k) => {
      const e = dirAt + countSize + k * entrySize;
      put(e, 2, tag);
      put(e + 2, 2, type);
      put(e + 4, word, values.length);
      const size = bytesOf(type, values.length) / values.length;
      let at = e + 4 + word;
      if (bytesOf(type, values.length) > word) {
        put(at, word, valuesAt);
        at = valuesAt;
        valuesAt += bytesOf(type, values.length);
      }
      values.forEach((n, i) => put(at + i * size, size, n));
    });
    put(dirAt + dirBytes - word, word, p + 1 < pages ? dirAt + pageBytes : 0);
    pixels(pixelBytes, 1, 1).copy(b, pixelsAt);
  }
  return b;
}

/** Byte counts of strips of `rows` rows (8-bit, one sample). */
function stripsOf(width: number, height: number, rows: number): number[] {
  const counts: number[] = [];
  for (let y = 0; y < height; y += rows) counts.push(width * Math.min(rows, height - y));
  return counts;
}

/** Byte counts of `side`×`side` tiles covering the image (edge tiles are whole tiles). */
function tilesOf(width: number, height: number, side: number): number[] {
  return new Array<number>(Math.ceil(width / side) * Math.ceil(height / side)).fill(side * side);
}

const LAYOUTS: Layout[] = (['II', 'MM'] as const).flatMap((order) =>
  [false, true].flatMap((big) => [false, true].map((tiles) => ({ order, big, tiles }))),
);
const describeLayout = ({ order, big, tiles }: Layout): string => `${order} ${big ? 'BigTIFF' : 'classic'} ${tiles ? 'tiles' : 'strips'}`;

const SHARP: Record<string, TiffOptions> = {
  'default (JPEG)': {},
  uncompressed: { compression: 'none' },
  LZW: { compression: 'lzw' },
  deflate: { compression: 'deflate', predictor: 'horizontal' },
  tiled: { compression: 'lzw', tile: true, tileWidth: 16, tileHeight: 16 },
  BigTIFF: { compression: 'lzw', bigtiff: true },
  'BigTIFF tiled': { compression: 'deflate', bigtiff: true, tile: true, tileWidth: 32, tileHeight: 32 },
  'pyramid (several directories)': { compression: 'lzw', pyramid: true, tile: true, tileWidth: 16, tileHeight: 16 },
};
const fromSharp: Record<string, Buffer> = {};
beforeAll(async () => {
  for (const [name, options] of Object.entries(SHARP)) {
    fromSharp[name] = await sharp(pixels(80, 60), { raw: { width: 80, height: 60, channels: 3 } })
      .tiff(options)
      .toBuffer();
  }
});

/** The lengths n < body.length at which a prefix passes (should be none). */
function passingPrefixes(body: Buffer): number[] {
  const passed: number[] = [];
  for (let n = 0; n < body.length; n++) if (checkTiff(body.subarray(0, n)) === null) passed.push(n);
  return passed;
}

describe.each(Object.keys(SHARP))('a TIFF from libtiff (sharp), %s', (name) => {
  const body = (): Buffer => fromSharp[name]!;

  it('passes whole, and with bytes after it', () => {
    expect(checkTiff(body())).toBeNull();
    expect(checkTiff(Buffer.concat([body(), Buffer.alloc(512, 0xff)]))).toBeNull();
  });

  it('fails at every cut (its directory and values come last)', () => {
    expect(passingPrefixes(body())).toEqual([]);
  });
});

describe.each(LAYOUTS.map((l) => [describeLayout(l), l] as const))('a TIFF with its directory first: %s', (_name, layout) => {
  const one = ifdFirstTiff(layout, 40, 36);
  const two = ifdFirstTiff(layout, 40, 36, 2);

  it('is a TIFF libtiff reads, and passes whole, and with bytes after it', async () => {
    for (const body of [one, two]) {
      const meta = await sharp(body).metadata();
      expect([meta.format, meta.width, meta.height, meta.pages]).toEqual(['tiff', 40, 36, body === one ? 1 : 2]);
      await sharp(body, { failOn: 'warning', pages: -1 }).raw().toBuffer();
      expect(checkTiff(body)).toBeNull();
      expect(checkTiff(Buffer.concat([body, Buffer.alloc(100)]))).toBeNull();
    }
  });

  it('fails at every cut, in the pixels of the first page or of a later one', () => {
    expect(passingPrefixes(one)).toEqual([]);
    expect(passingPrefixes(two)).toEqual([]);
    expect(checkTiff(one.subarray(0, one.length - 1))).toMatch(/truncated at byte \d+: image data of directory 0/);
    expect(checkTiff(two.subarray(0, two.length - 1))).toMatch(/image data of directory 1/);
  });
});

describe('checkTiff does not refuse what readers accept', () => {
  const le = { order: 'II', big: false, tiles: false } as const;

  it('a strip with a byte count of 0 (a sparse file) and no byte counts at all', () => {
    const body = ifdFirstTiff(le, 40, 32);
    const counts = tagValuesAt(body, 279);
    const sparse = Buffer.from(body);
    sparse.writeUInt32LE(0, counts); // the first strip's count
    sparse.writeUInt32LE(0xffffff00, tagValuesAt(body, 273)); // and its offset points nowhere
    expect(checkTiff(sparse)).toBeNull();
    const noCounts = Buffer.from(body);
    noCounts.writeUInt16LE(65000, entryAt(body, 279)); // an unknown private tag now, sorted or not
    expect(checkTiff(noCounts)).toBeNull();
  });

  it('an entry of an unknown type pointing past the end, and a chain of directories that loops', () => {
    const body = ifdFirstTiff(le, 40, 32);
    const unknown = Buffer.from(body);
    const e = entryAt(body, 277);
    unknown.writeUInt16LE(99, e + 2); // type 99
    unknown.writeUInt32LE(1000, e + 4); // 1000 values
    unknown.writeUInt32LE(0xfffffff0, e + 8);
    expect(checkTiff(unknown)).toBeNull();
    const loop = Buffer.from(body);
    const first = loop.readUInt32LE(4);
    loop.writeUInt32LE(first, first + 2 + loop.readUInt16LE(first) * 12); // next → itself
    expect(checkTiff(loop)).toBeNull();
  });
});

describe('checkTiff finds what a cut leaves', () => {
  it('a next directory past the end (the pages after it are gone)', () => {
    const body = Buffer.from(fromSharp['LZW']!);
    const ifd = body.readUInt32LE(4);
    body.writeUInt32LE(body.length + 5000, ifd + 2 + body.readUInt16LE(ifd) * 12);
    expect(checkTiff(body)).toMatch(/truncated at byte \d+: before directory 1/);
  });

  it('a first directory that locates no pixels, a bad header', () => {
    const body = ifdFirstTiff({ order: 'II', big: false, tiles: false }, 40, 32);
    const noData = Buffer.from(body);
    noData.writeUInt16LE(65001, entryAt(body, 273));
    expect(checkTiff(noData)).toMatch(/locates no image data/);
    expect(checkTiff(Buffer.from('MM\0\x2b\0\x04\0\0' + '\0'.repeat(16), 'latin1'))).toMatch(/bad BigTIFF header/);
    expect(checkTiff(Buffer.from('II\x2a\0\0\0\0\0', 'latin1'))).toMatch(/no image file directory/);
  });

  it('never throws on garbage after a TIFF header', () => {
    let s = 17;
    for (let n = 0; n < 2000; n++) {
      const junk = Buffer.alloc(8 + (n % 200));
      for (let i = 0; i < junk.length; i++) junk[i] = (s = (s * 1103515245 + 12345) & 0x7fffffff) >> 16;
      junk.write(['II\x2a\0', 'MM\0\x2a', 'II\x2b\0\x08\0\0\0', 'MM\0\x2b\0\x08\0\0'][n % 4]!, 0, 'latin1');
      if (n % 3 === 0) junk.writeUInt32LE(8, 4);
      expect(() => checkTiff(junk)).not.toThrow();
    }
  });
});

/** The byte where a classic little-endian TIFF's first directory holds `tag`. */
function entryAt(b: Buffer, tag: number): number {
  const ifd = b.readUInt32LE(4);
  for (let k = 0, e = ifd + 2; k < b.readUInt16LE(ifd); k++, e += 12) if (b.readUInt16LE(e) === tag) return e;
  throw new Error(`no tag ${tag}`);
}

/** Where the values of `tag` are (out of line, or in the entry). */
function tagValuesAt(b: Buffer, tag: number): number {
  const e = entryAt(b, tag);
  const bytes = b.readUInt32LE(e + 4) * (b.readUInt16LE(e + 2) === 3 ? 2 : 4);
  return bytes <= 4 ? e + 8 : b.readUInt32LE(e + 8);
}
