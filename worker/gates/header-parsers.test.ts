import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { seeded } from '../../test/helpers/seeded.mjs';
import { bmpSize, gifSize, heifSize, jpegSize } from './header-parsers.js';

const jpeg = (width: number, height: number, progressive = false): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 3, background: { r: 90, g: 120, b: 30 } } })
    .jpeg({ progressive })
    .withMetadata()
    .toBuffer();

/** The segments between SOI and the first SOS, as [start, end) byte ranges. */
function headerSegments(b: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 2; b[i + 1] !== 0xda; i += 2 + b.readUInt16BE(i + 2)) out.push([i, i + 2 + b.readUInt16BE(i + 2)]);
  return out;
}

/** The same JPEG with its segments reordered so that the frame header (SOF) comes first. */
function sofFirst(b: Buffer): Buffer {
  const segs = headerSegments(b);
  const sof = segs.find(([s]) => b[s + 1] === 0xc0 || b[s + 1] === 0xc2)!;
  const rest = segs.filter((s) => s !== sof).map(([s, e]) => b.subarray(s, e));
  return Buffer.concat([b.subarray(0, 2), b.subarray(...sof), ...rest, b.subarray(segs.at(-1)![1])]);
}

/** The same JPEG with 0xFF fill bytes before every header marker, as T.81 B.1.1.2 allows. */
function withFill(b: Buffer): Buffer {
  const segs = headerSegments(b);
  const parts = [b.subarray(0, 2)];
  for (const [s, e] of segs) parts.push(Buffer.from([0xff, 0xff]), b.subarray(s, e));
  return Buffer.concat([...parts, b.subarray(segs.at(-1)![1])]);
}

/** The same JPEG with its SOF0 marker relabelled as another frame type (SOF9: arithmetic). */
function relabelSof(b: Buffer, marker: number): Buffer {
  const c = Buffer.from(b);
  const [s] = headerSegments(c).find(([at]) => c[at + 1] === 0xc0)!;
  c[s + 1] = marker;
  return c;
}

describe('jpegSize', () => {
  it.each([
    ['as written', (b: Buffer) => b],
    ['with the frame header first (no APP0)', sofFirst],
    ['with fill bytes before its markers', withFill],
    ['arithmetic-coded (SOF9)', (b: Buffer) => relabelSof(b, 0xc9)],
    ['lossless (SOF3)', (b: Buffer) => relabelSof(b, 0xc3)],
  ])('reads width and height %s', async (_, variant) => {
    expect(jpegSize(variant(await jpeg(300, 200)))).toEqual({ width: 300, height: 200 });
  });

  it('reads a progressive JPEG and a DNL frame (height 0)', async () => {
    expect(jpegSize(await jpeg(64, 1000, true))).toEqual({ width: 64, height: 1000 });
    const dnl = Buffer.from(await jpeg(64, 48));
    const [s] = headerSegments(dnl).find(([at]) => dnl[at + 1] === 0xc0)!;
    dnl.writeUInt16BE(0, s + 5);
    expect(jpegSize(dnl)).toEqual({ width: 64, height: 0 });
  });

  it('throws when the header is not there, never reads past the bytes', async () => {
    const b = await jpeg(64, 48);
    const sofEnd = headerSegments(b).find(([at]) => b[at + 1] === 0xc0)![0] + 9;
    for (let n = 0; n < sofEnd; n++) expect(() => jpegSize(b.subarray(0, n))).toThrow(TypeError);
    expect(() => jpegSize(Buffer.from([0xff, 0xd8, 0xff, 0xd9]))).toThrow(/no frame header/);
    const random = seeded(5);
    for (let k = 0; k < 2000; k++) {
      const c = Buffer.from(b.subarray(0, 200));
      c[2 + Math.floor(random() * 198)] = Math.floor(random() * 256);
      try {
        jpegSize(c);
      } catch (err) {
        expect(err).toBeInstanceOf(TypeError);
      }
    }
  });
});

describe('bmpSize', () => {
  /** A BMP's file header and a DIB header of `headerSize` bytes. */
  function bmp(headerSize: number, width: number, height: number): Buffer {
    const b = Buffer.alloc(14 + Math.max(headerSize, 16) + 64);
    b.write('BM', 0, 'latin1');
    b.writeUInt32LE(b.length, 2);
    b.writeUInt32LE(14 + headerSize, 10);
    b.writeUInt32LE(headerSize, 14);
    if (headerSize === 12) {
      b.writeUInt16LE(width, 18);
      b.writeUInt16LE(height, 20);
      b.writeUInt16LE(1, 22);
      b.writeUInt16LE(24, 24);
    } else {
      b.writeInt32LE(width, 18);
      b.writeInt32LE(height, 22);
      b.writeUInt16LE(1, 26);
      b.writeUInt16LE(24, 28);
    }
    return b;
  }

  it.each([12, 16, 40, 52, 56, 64, 108, 124])('reads a %i-byte DIB header', (headerSize) => {
    expect(bmpSize(bmp(headerSize, 640, 480))).toEqual({ width: 640, height: 480 });
  });

  it('reads a top-down bitmap (negative height) as its height', () => {
    expect(bmpSize(bmp(40, 640, -480))).toEqual({ width: 640, height: 480 });
  });

  it('throws on a cut or unknown header', () => {
    expect(() => bmpSize(bmp(40, 640, 480).subarray(0, 25))).toThrow(TypeError);
    expect(() => bmpSize(bmp(8, 640, 480))).toThrow(/header size 8/);
  });
});

describe('gifSize', () => {
  const gif = (): Promise<Buffer> =>
    sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 90, g: 120, b: 30 } } })
      .gif()
      .toBuffer();

  /** The same GIF with another logical screen, and its first frame placed and sized anew. */
  function reframe(b: Buffer, screen: [number, number], frame?: [x: number, y: number, w: number, h: number]): Buffer {
    const c = Buffer.from(b);
    c.writeUInt16LE(screen[0], 6);
    c.writeUInt16LE(screen[1], 8);
    const at = c.indexOf(0x2c, 13 + (c[10]! & 0x80 ? 3 << ((c[10]! & 7) + 1) : 0)); // sharp writes no extension with a 0x2C before it
    if (frame) frame.forEach((v, k) => c.writeUInt16LE(v, at + 1 + 2 * k));
    return c;
  }

  it('reads the logical screen when the first frame fits in it', async () => {
    const b = await gif();
    expect(gifSize(b)).toEqual({ width: 96, height: 64 });
    expect(gifSize(reframe(b, [200, 100], [10, 10, 96, 64]))).toEqual({ width: 200, height: 100 });
  });

  it('grows the screen to hold the first frame, as decoders do', async () => {
    const b = await gif();
    for (const variant of [reframe(b, [0, 0]), reframe(b, [10, 10])]) {
      expect(gifSize(variant)).toEqual({ width: 96, height: 64 });
      const { width, height } = await sharp(variant).metadata();
      expect({ width, height }).toEqual({ width: 96, height: 64 });
    }
    expect(gifSize(reframe(b, [64, 64], [5, 7, 20000, 20000]))).toEqual({ width: 20005, height: 20007 });
  });

  it('reads the screen alone when the bytes end before the first frame, and throws without a header', async () => {
    const b = await gif();
    expect(gifSize(b.subarray(0, 20))).toEqual({ width: 96, height: 64 });
    expect(() => gifSize(b.subarray(0, 12))).toThrow(TypeError);
  });
});

describe('heifSize', () => {
  const u32 = (...n: number[]) => Buffer.concat(n.map((v) => Buffer.from([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255])));
  const u16 = (...n: number[]) => Buffer.concat(n.map((v) => Buffer.from([v >>> 8, v & 255])));
  const box = (type: string, ...body: Buffer[]) => Buffer.concat([u32(8 + Buffer.concat(body).length), Buffer.from(type, 'latin1'), ...body]);
  const full = (type: string, version: number, flags: number, ...body: Buffer[]) => box(type, u32((version << 24) | flags), ...body);
  const ispe = (w: number, h: number) => full('ispe', 0, 0, u32(w, h));

  /**
   * A grid HEIC laid out as iPhones write them: the tiles' hvcC and 512×512 ispe come first
   * in ipco, the grid (the primary item, 1) is associated with a later ispe and a clap.
   */
  function gridHeic(clap: Buffer | null): Buffer {
    const properties: Buffer[] = [box('hvcC', Buffer.alloc(23)), ispe(512, 512), ispe(4096, 3072), box('irot', Buffer.from([1]))];
    if (clap) properties.push(clap);
    const tiles = Array.from({ length: 48 }, (_, k) => Buffer.concat([u16(2 + k), Buffer.from([2, 0x81, 2])]));
    const grid = Buffer.concat([u16(1), Buffer.from(clap ? [3, 3, 4, 5] : [2, 3, 4])]);
    const ipma = full('ipma', 0, 0, u32(49), grid, ...tiles);
    const meta = full('meta', 0, 0, full('hdlr', 0, 0, u32(0), Buffer.from('pict'), Buffer.alloc(13)), full('pitm', 0, 0, u16(1)), box('iprp', box('ipco', ...properties), ipma));
    return Buffer.concat([box('ftyp', Buffer.from('heic'), u32(0), Buffer.from('mif1heic')), meta, box('mdat', Buffer.alloc(64))]);
  }

  it("reads the primary item's size, not a tile's", () => {
    expect(heifSize(gridHeic(null))).toEqual({ width: 4096, height: 3072 });
  });

  it('crops to the clean aperture, as decoders show the image', () => {
    const clap = box('clap', u32(4032, 1, 3024, 1, 0, 1, 0, 1));
    expect(heifSize(gridHeic(clap))).toEqual({ width: 4032, height: 3024 });
  });

  it("reads sharp's AVIF and falls back to the first ispe when no primary is named", async () => {
    const avif = await sharp({ create: { width: 120, height: 80, channels: 4, background: 'red' } }).avif().toBuffer();
    expect(heifSize(avif)).toEqual({ width: 120, height: 80 });
    const noPitm = Buffer.from(avif);
    noPitm.write('skip', noPitm.indexOf('pitm', 0, 'latin1'), 'latin1');
    expect(heifSize(noPitm)).toEqual({ width: 120, height: 80 });
  });

  it('throws, never reads past the bytes, on every prefix of a grid HEIC', () => {
    const b = gridHeic(null);
    for (let n = 0; n < b.length; n++) {
      try {
        heifSize(b.subarray(0, n));
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
      }
    }
  });
});
