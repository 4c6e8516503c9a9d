import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkGif, checkHeif, checkJpeg, checkPng, checkWebp } from './structure.js';
import type { StructureCheck } from './structure.js';

const CHECKS: Record<string, StructureCheck> = { jpeg: checkJpeg, png: checkPng, webp: checkWebp, gif: checkGif, avif: checkHeif };

/** Photo-like pixels (gradient + deterministic noise). */
function pixels(width: number, height: number): Buffer {
  const px = Buffer.alloc(width * height * 3);
  let s = 3;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = Math.floor(((i % (width * 3)) / (width * 3)) * 200) + ((s >> 16) % 56);
  }
  return px;
}

const fx: Record<string, Buffer> = {};
beforeAll(async () => {
  for (const f of ['jpeg', 'png', 'webp', 'gif', 'avif'] as const) {
    fx[f] = await sharp(pixels(40, 30), { raw: { width: 40, height: 30, channels: 3 } })
      .toFormat(f)
      .toBuffer();
  }
  fx['thumb'] = await sharp(pixels(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).jpeg().toBuffer();
});
const get = (name: string): Buffer => fx[name] ?? Buffer.alloc(0);
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe.each(['jpeg', 'png', 'webp', 'gif', 'avif'])('%s', (format) => {
  const check = (b: Buffer): string | null => (CHECKS[format] as StructureCheck)(b);

  it('a whole image passes, and so does one followed by other bytes', () => {
    expect(check(get(format))).toBeNull();
    expect(check(Buffer.concat([get(format), Buffer.alloc(1024)]))).toBeNull();
    expect(check(Buffer.concat([get(format), Buffer.alloc(300, 0xff)]))).toBeNull();
  });

  it('every proper prefix fails', () => {
    const body = get(format);
    const passed: number[] = [];
    for (let n = 0; n < body.length; n++) if (check(body.subarray(0, n)) === null) passed.push(n);
    expect(passed).toEqual([]);
  });

  it('garbage never throws', () => {
    let s = 11;
    for (let n = 0; n < 400; n++) {
      const junk = Buffer.alloc(n % 97);
      for (let i = 0; i < junk.length; i++) junk[i] = (s = (s * 1103515245 + 12345) & 0x7fffffff) >> 16;
      const withMagic = Buffer.concat([get(format).subarray(0, n % 40), junk]);
      expect(() => check(withMagic)).not.toThrow();
    }
  });
});

describe('checkJpeg walks segments, not bytes', () => {
  it('is not fooled by the EOI of an EXIF thumbnail when the main image is cut', () => {
    const thumb = get('thumb');
    const app1 = Buffer.concat([hex('ffe1'), Buffer.alloc(2), Buffer.from('Exif\0\0'), thumb]);
    app1.writeUInt16BE(app1.length - 2, 2);
    const main = get('jpeg');
    const withThumb = Buffer.concat([main.subarray(0, 2), app1, main.subarray(2)]);
    expect(checkJpeg(withThumb)).toBeNull();
    const cut = withThumb.subarray(0, withThumb.length - 200);
    expect(cut.includes(hex('ffd9'))).toBe(true); // a byte search would call this whole
    expect(checkJpeg(cut)).toMatch(/truncated/);
  });

  it.each([
    ['stuffed bytes, restart markers and fill bytes in a scan', 'ffd8 ffda0002 01ff0002ffd003ffd7 04ffffd9', null],
    ['fill bytes before a marker', 'ffd8 ffffffda0002 00 ffffffd9', null],
    ['a second scan (progressive)', 'ffd8 ffda0002 0102 ffc40004 0000 ffda0002 03 ffd9', null],
    ['EOI before any scan', 'ffd8 ffd9', /before any scan/],
    ['a segment longer than the bytes', 'ffd8 ffdb0400 0000', /truncated/],
    ['a segment length below 2', 'ffd8 ffdb0001 ffd9', /bad length/],
    ['bytes where a marker should be', 'ffd8 00ffda0002 00ffd9', /expected a marker/],
    ['a scan that never ends', 'ffd8 ffda0002 010203ff00', /truncated/],
    ['a lone 0xFF at the end', 'ffd8 ffda0002 0102ff', /truncated/],
    ['no SOI', 'ffd9', /no SOI/],
  ])('%s', (_name, bytes, expected) => {
    const result = checkJpeg(hex(bytes));
    if (expected === null) expect(result).toBeNull();
    else expect(result).toMatch(expected);
  });
});

describe('checkPng', () => {
  it('wants IHDR first, IDAT before IEND, and chunk names that are letters', () => {
    const png = get('png');
    const ihdrEnd = 8 + 25;
    const iend = png.subarray(png.length - 12);
    expect(checkPng(Buffer.concat([png.subarray(0, ihdrEnd), iend]))).toMatch(/before any IDAT/);
    expect(checkPng(Buffer.concat([png.subarray(0, 8), iend]))).toMatch(/not IHDR/);
    const badName = Buffer.from(png);
    badName[ihdrEnd + 4] = 0x31;
    expect(checkPng(badName)).toMatch(/bad chunk/);
  });
});

describe('checkWebp', () => {
  it('compares the RIFF length with the bytes, and chunks with the RIFF', () => {
    const webp = get('webp');
    const longer = Buffer.from(webp);
    longer.writeUInt32LE(webp.readUInt32LE(4) + 2, 4);
    expect(checkWebp(longer)).toMatch(/truncated/);
    const overrun = Buffer.from(webp);
    overrun.writeUInt32LE(overrun.readUInt32LE(16) + 100, 16); // first chunk's size
    expect(checkWebp(overrun)).toMatch(/overruns/);
    expect(checkWebp(hex('52494646 04000000 57454250'))).toMatch(/no image chunk/);
  });
});

describe('checkGif', () => {
  it('walks blocks to the trailer', () => {
    const gif = get('gif');
    const header = gif.subarray(0, 13 + (gif[10]! & 0x80 ? 3 << ((gif[10]! & 7) + 1) : 0));
    expect(checkGif(Buffer.concat([header, hex('3b')]))).toMatch(/before any image/);
    expect(checkGif(Buffer.concat([header, hex('99')]))).toMatch(/unknown block/);
    expect(checkGif(Buffer.concat([header, hex('21f90400000000 00 3b')]))).toMatch(/before any image/);
  });

  it('skips stray block terminators between blocks, as decoders do, and still wants the trailer', () => {
    const gif = get('gif');
    const strays = Buffer.concat([gif.subarray(0, gif.length - 1), hex('0000 3b')]);
    expect(checkGif(strays)).toBeNull();
    expect(checkGif(strays.subarray(0, strays.length - 1))).toMatch(/no trailer/);
  });
});

describe('checkHeif follows the item locations, not only the boxes', () => {
  it('an AVIF whose mdat was shortened with its box size fixed up is still cut', () => {
    const whole = get('avif');
    const mdat = whole.indexOf('mdat') - 4;
    const cut = Buffer.from(whole.subarray(0, whole.length - 10));
    cut.writeUInt32BE(cut.length - mdat, mdat); // the boxes tile the bytes again
    expect(checkHeif(whole)).toBeNull();
    expect(checkHeif(cut)).toMatch(/^truncated at byte \d+: an item's data reaches byte \d+$/);
  });

  it('an HEIC whose boxes end before its mdat is cut, and one with bytes after it is whole', () => {
    const whole = get('avif');
    const mdat = whole.indexOf('mdat') - 4;
    expect(checkHeif(whole.subarray(0, mdat))).toBe(`truncated at byte ${mdat}: no mdat box`);
    expect(checkHeif(Buffer.concat([whole, Buffer.from('trailing, not a box')]))).toBeNull();
  });
});
