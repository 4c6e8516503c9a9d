import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { classOf } from '../protocol/index.js';
import { checkSize, isAllowedType, overCeiling, parseDecodePolicy, prepareGates, sniffType, validate } from './gates.js';
import type { DecodePolicy, GateOptions, Verdict } from './gates.js';
import { sampleOf } from './gates/decode.js';

// ---------------------------------------------------------------- fixtures, made at test time

type Format = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif' | 'tiff';

/**
 * A horizontal gradient with deterministic noise, so compressed sizes (and the corruption
 * test) never vary. Photo-like rather than white noise: a decoder's corruption warnings
 * depend on the content, and the mid-scan overwrite below was measured to trip them here.
 */
function noisePixels(width: number, height: number, seed = 1): Buffer {
  const px = Buffer.alloc(width * height * 3);
  const row = width * 3;
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = Math.floor(((i % row) / row) * 200) + ((s >> 16) % 56);
  }
  return px;
}

/** Uniform noise bytes, which no magic number matches. */
function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  let s = 7;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    b[i] = (s >> 16) & 0xff;
  }
  return b;
}

function image(format: Format, width = 64, height = 48, pageHeight?: number): Promise<Buffer> {
  const raw = { width, height, channels: 3 as const, ...(pageHeight ? { pageHeight } : {}) };
  return sharp(noisePixels(width, height), { raw }).toFormat(format).toBuffer();
}

/** A 24-bit BMP by hand: libvips has no BMP writer. */
function bmp(width: number, height: number): Buffer {
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const b = Buffer.alloc(54 + rowBytes * height, 0x80);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(height, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(rowBytes * height, 34);
  return b;
}

/** An OS/2 1.x BMP: its 12-byte header holds 16-bit sizes. */
function bmpCore(width: number, height: number): Buffer {
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const b = Buffer.alloc(26 + rowBytes * height, 0x80);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(26, 10);
  b.writeUInt32LE(12, 14);
  b.writeUInt16LE(width, 18);
  b.writeUInt16LE(height, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt16LE(24, 24);
  return b;
}

/**
 * A JPEG's header segments rebuilt: the frame header (SOF) moved first, as encoders that
 * write no JFIF APP0 do, and `fill` 0xFF fill bytes before every marker (T.81 B.1.1.2).
 */
function rewriteJpegHeader(jpeg: Buffer, fill: number): Buffer {
  const segments: Buffer[] = [];
  let i = 2;
  for (; jpeg[i + 1] !== 0xda; i += 2 + jpeg.readUInt16BE(i + 2)) segments.push(jpeg.subarray(i, i + 2 + jpeg.readUInt16BE(i + 2)));
  const sof = segments.findIndex((s) => s[1] === 0xc0);
  segments.unshift(...segments.splice(sof, 1));
  const pad = Buffer.alloc(fill, 0xff);
  return Buffer.concat([jpeg.subarray(0, 2), ...segments.flatMap((s) => [pad, s]), pad, jpeg.subarray(i)]);
}

/**
 * The same JPEG with its frame header relabelled: another SOFn marker and sample precision,
 * as a 12-bit (medical, scientific) or hierarchical JPEG has, which sharp's libjpeg refuses.
 */
function relabelFrame(jpeg: Buffer, sof: number, precision: number): Buffer {
  const c = Buffer.from(jpeg);
  const at = c.indexOf(Buffer.from([0xff, 0xc0]));
  c[at + 1] = sof;
  c[at + 4] = precision;
  return c;
}

/** A PNG signature and an IHDR claiming width×height, and nothing else: no decoder may see it. */
function pngHeaderOnly(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'latin1');
  ihdr.writeUInt32BE(width, 8);
  ihdr.writeUInt32BE(height, 12);
  ihdr.set([8, 2, 0, 0, 0], 16); // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]);
}

/** 2,000 bytes of the scan zeroed: still structurally whole (no 0xFF written), corrupt inside. */
function overwriteMidScan(jpeg: Buffer): Buffer {
  const c = Buffer.from(jpeg);
  c.fill(0x00, Math.floor(c.length / 2) - 1000, Math.floor(c.length / 2) + 1000);
  return c;
}

const HTML = Buffer.from('<!doctype html>\n<html><head><title>Not found</title></head><body>404</body></html>\n');
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');

const half = (b: Buffer): Buffer => b.subarray(0, b.length >> 1);

/** The same GIF with its first frame (the first image descriptor sharp writes) resized. */
function gifFirstFrame(gif: Buffer, width: number, height: number): Buffer {
  const c = Buffer.from(gif);
  const at = c.indexOf(0x2c, 13 + (c[10]! & 0x80 ? 3 << ((c[10]! & 7) + 1) : 0));
  c.writeUInt16LE(width, at + 5);
  c.writeUInt16LE(height, at + 7);
  return c;
}

// ---------------------------------------------------------------- options

const IMAGE: GateOptions = {
  profile: 'image',
  minBytes: 1,
  maxBytes: 100 * 2 ** 20,
  minDim: 32,
  maxPixels: 100_000_000,
  decode: { mode: 'never' },
};
const ANY: GateOptions = { ...IMAGE, profile: 'any', maxBytes: 5 * 2 ** 40 };
const ALWAYS: GateOptions = { ...IMAGE, decode: { mode: 'always' } };

const fx: Record<string, Buffer> = {};
beforeAll(async () => {
  for (const f of ['jpeg', 'png', 'webp', 'gif', 'avif', 'tiff'] as const) fx[f] = await image(f);
  fx['bmp'] = bmp(64, 48);
  fx['bmpCore'] = bmpCore(64, 48);
  fx['jpegSofFirst'] = rewriteJpegHeader(fx['jpeg']!, 0);
  fx['jpegFillBytes'] = rewriteJpegHeader(fx['jpeg']!, 3);
  fx['jpeg12Bit'] = relabelFrame(fx['jpeg']!, 0xc1, 12);
  fx['jpegHierarchical'] = relabelFrame(fx['jpeg']!, 0xc5, 8);
  fx['gifAnimated'] = await image('gif', 64, 96, 48);
  fx['webpAnimated'] = await image('webp', 64, 96, 48);
  fx['progressive'] = await sharp(noisePixels(64, 48), { raw: { width: 64, height: 48, channels: 3 } })
    .jpeg({ progressive: true })
    .toBuffer();
  fx['gifScreen0x0'] = Buffer.from(fx['gif']!).fill(0, 6, 10);
  fx['tiny'] = await image('png', 8, 8);
  fx['thin'] = await image('jpeg', 640, 16);
  fx['big'] = await image('jpeg', 256, 192);
});

const get = (name: string): Buffer => {
  const b = fx[name];
  if (!b) throw new Error(`no fixture ${name}`);
  return b;
};

function expectRejected(v: Verdict, reason: string): void {
  expect(v.ok ? `accepted as ${v.ext}` : v.reason).toBe(reason);
  if (!v.ok) {
    expect(classOf(v.reason)).toBe('invalid');
    expect(v.detail).not.toMatch(/[\t\r\n]/);
  }
}

// ---------------------------------------------------------------- tests

describe('validate: good images are accepted with their real type and size', () => {
  it.each([
    ['jpeg', 'jpg', 'image/jpeg', 64, 48],
    ['png', 'png', 'image/png', 64, 48],
    ['webp', 'webp', 'image/webp', 64, 48],
    ['gif', 'gif', 'image/gif', 64, 48],
    ['avif', 'avif', 'image/avif', 64, 48],
    ['tiff', 'tif', 'image/tiff', 64, 48],
    ['bmp', 'bmp', 'image/bmp', 64, 48],
    ['gifAnimated', 'gif', 'image/gif', 64, 48],
    ['webpAnimated', 'webp', 'image/webp', 64, 48],
    ['progressive', 'jpg', 'image/jpeg', 64, 48],
    ['jpegSofFirst', 'jpg', 'image/jpeg', 64, 48],
    ['jpegFillBytes', 'jpg', 'image/jpeg', 64, 48],
    ['bmpCore', 'bmp', 'image/bmp', 64, 48],
    ['jpeg12Bit', 'jpg', 'image/jpeg', 64, 48], // not decoded: sharp reads 8-bit JPEGs only
    ['jpegHierarchical', 'jpg', 'image/jpeg', 64, 48],
    ['gifScreen0x0', 'gif', 'image/gif', 64, 48], // decoders size it by its first frame
  ])('%s → %s', async (name, ext, contentType, width, height) => {
    for (const opts of [IMAGE, ALWAYS]) {
      expect(await validate('id', get(name), opts)).toEqual({ ok: true, ext, contentType, width, height });
    }
  });

  it('accepts bytes after a complete JPEG (padding, motion photos)', async () => {
    const padded = Buffer.concat([get('jpeg'), Buffer.alloc(1024)]);
    const motion = Buffer.concat([get('jpeg'), Buffer.from('\0\0\0\x18ftypmp42'), Buffer.alloc(500, 7)]);
    for (const body of [padded, motion]) {
      expect(await validate('id', body, IMAGE)).toMatchObject({ ok: true, ext: 'jpg', width: 64, height: 48 });
    }
  });

  it('accepts a small pooled Buffer and a subarray of a larger one alike', async () => {
    const inside = Buffer.concat([Buffer.alloc(10), get('png'), Buffer.alloc(10)]).subarray(10, 10 + get('png').length);
    expect(await validate('id', inside, IMAGE)).toMatchObject({ ok: true, ext: 'png', width: 64, height: 48 });
  });
});

describe('validate: each gate rejects with its reason', () => {
  it.each([
    ['jpeg'],
    ['png'],
    ['webp'],
    ['gif'],
    ['progressive'],
    ['gifAnimated'],
    ['webpAnimated'],
    ['tiff'],
    ['bmp'],
    ['bmpCore'],
  ])('the first half of %s → INCOMPLETE_IMAGE', async (name) => {
    expectRejected(await validate('id', half(get(name)), IMAGE), 'INCOMPLETE_IMAGE');
  });

  it.each<[string, () => Buffer, GateOptions, string]>([
    ['empty', () => Buffer.alloc(0), IMAGE, 'EMPTY'],
    ['empty under any', () => Buffer.alloc(0), ANY, 'EMPTY'],
    ['below --min-bytes', () => get('jpeg'), { ...IMAGE, minBytes: 1_000_000 }, 'TOO_SMALL'],
    ['above --max-bytes', () => get('jpeg'), { ...IMAGE, maxBytes: 100 }, 'TOO_LARGE'],
    ['above --max-bytes under any', () => get('jpeg'), { ...ANY, maxBytes: 100 }, 'TOO_LARGE'],
    ['HTML', () => HTML, IMAGE, 'NOT_ALLOWED_TYPE'],
    ['PDF', () => PDF, IMAGE, 'NOT_ALLOWED_TYPE'],
    ['random bytes', () => randomBytes(5000), IMAGE, 'NOT_ALLOWED_TYPE'],
    ['an 8x8 image', () => get('tiny'), IMAGE, 'TOO_FEW_PIXELS'],
    ['a 640x16 image (each side counts)', () => get('thin'), IMAGE, 'TOO_FEW_PIXELS'],
    ['a PNG header claiming 100000x100000', () => pngHeaderOnly(100_000, 100_000), ALWAYS, 'PIXEL_BOMB'],
    ['64x48 over --max-pixels 3000', () => get('png'), { ...IMAGE, maxPixels: 3000 }, 'PIXEL_BOMB'],
    ['a GIF whose first frame is 20000x20000 in a 64x48 screen', () => gifFirstFrame(get('gif'), 20_000, 20_000), IMAGE, 'PIXEL_BOMB'],
    ['a JPEG cut inside its header', () => get('jpeg').subarray(0, 100), IMAGE, 'INCOMPLETE_IMAGE'],
    ['a PNG cut inside IHDR', () => get('png').subarray(0, 20), IMAGE, 'INCOMPLETE_IMAGE'],
    ['a PNG without IEND', () => get('png').subarray(0, get('png').length - 12), IMAGE, 'INCOMPLETE_IMAGE'],
    ['a GIF without its trailer', () => get('gif').subarray(0, get('gif').length - 1), IMAGE, 'INCOMPLETE_IMAGE'],
    ['a TIFF without its last byte (a directory value)', () => get('tiff').subarray(0, get('tiff').length - 1), IMAGE, 'INCOMPLETE_IMAGE'],
    ['a BMP without its last row', () => get('bmp').subarray(0, get('bmp').length - 192), IMAGE, 'INCOMPLETE_IMAGE'],
    ['an OS/2 BMP without its last row', () => get('bmpCore').subarray(0, get('bmpCore').length - 192), IMAGE, 'INCOMPLETE_IMAGE'],
    ['a JPEG scan overwritten, decode always', () => overwriteMidScan(get('big')), ALWAYS, 'UNDECODABLE'],
  ])('%s → %s', async (_name, body, opts, reason) => {
    expectRejected(await validate('id', body(), opts), reason);
  });

  it('takes sizes at the floor and the ceiling themselves', async () => {
    const body = get('jpeg');
    const exact = { ...IMAGE, minBytes: body.length, maxBytes: body.length };
    expect(await validate('id', body, exact)).toMatchObject({ ok: true });
    expectRejected(await validate('id', body, { ...exact, maxBytes: body.length - 1 }), 'TOO_LARGE');
    expectRejected(await validate('id', body, { ...exact, minBytes: body.length + 1 }), 'TOO_SMALL');
  });

  it('lets a JPEG with a corrupt scan through when decoding is off', async () => {
    expect(await validate('id', overwriteMidScan(get('big')), IMAGE)).toMatchObject({ ok: true, ext: 'jpg' });
  });
});

describe('validate: --profile any keeps the size gates and type detection only', () => {
  it.each<[string, () => Buffer, string, string, number | null]>([
    ['a PDF', () => PDF, 'pdf', 'application/pdf', null],
    ['random bytes', () => randomBytes(5000), 'bin', 'application/octet-stream', null],
    ['HTML', () => HTML, 'bin', 'application/octet-stream', null],
    ['a JPEG', () => get('jpeg'), 'jpg', 'image/jpeg', 64],
    ['an 8x8 PNG', () => get('tiny'), 'png', 'image/png', 8],
    ['half a JPEG', () => half(get('jpeg')), 'jpg', 'image/jpeg', 64],
    ['a PNG header claiming 100000x100000', () => pngHeaderOnly(100_000, 100_000), 'png', 'image/png', 100_000],
  ])('%s → %s', async (_name, body, ext, contentType, width) => {
    expect(await validate('id', body(), { ...ANY, decode: { mode: 'always' } })).toMatchObject({
      ok: true,
      ext,
      contentType,
      width,
    });
  });
});

describe('decode sample', () => {
  const corrupt = (): Buffer => overwriteMidScan(get('big'));
  const ids = Array.from({ length: 40 }, (_, i) => `row-${i}`);

  it('decodes exactly the ids whose hash falls under the fraction, the same way every time', async () => {
    const opts: GateOptions = { ...IMAGE, decode: { mode: 'sample', fraction: 0.5 } };
    const outcomes = new Set<boolean>();
    for (const id of ids) {
      const first = await validate(id, corrupt(), opts);
      expect(await validate(id, corrupt(), opts)).toEqual(first);
      expect(first.ok).toBe(sampleOf(id) >= 0.5);
      outcomes.add(first.ok);
    }
    expect(outcomes.size).toBe(2); // both sides of the sample were exercised
  });

  it('picks about the fraction asked for, by a fixed hash', () => {
    const picked = Array.from({ length: 20_000 }, (_, i) => String(i)).filter((id) => sampleOf(id) < 0.1);
    expect(picked.length / 20_000).toBeGreaterThan(0.09);
    expect(picked.length / 20_000).toBeLessThan(0.11);
    // first 4 bytes of SHA-1("abc") = a9993e36: pinned so the choice never drifts between versions
    expect(sampleOf('abc')).toBe(0xa9993e36 / 2 ** 32);
  });

  it('sample:1 decodes every id', async () => {
    const opts: GateOptions = { ...IMAGE, decode: { mode: 'sample', fraction: 1 } };
    for (const id of ids.slice(0, 5)) expectRejected(await validate(id, corrupt(), opts), 'UNDECODABLE');
  });
});

describe('parseDecodePolicy', () => {
  it.each<[string, DecodePolicy | null]>([
    ['never', { mode: 'never' }],
    ['always', { mode: 'always' }],
    ['sample:0.1', { mode: 'sample', fraction: 0.1 }],
    ['sample:.25', { mode: 'sample', fraction: 0.25 }],
    ['sample:1', { mode: 'sample', fraction: 1 }],
    ['sample:1.0', { mode: 'sample', fraction: 1 }],
    ['sample:0', null],
    ['sample:0.0', null],
    ['sample:1.5', null],
    ['sample:-0.5', null],
    ['sample:', null],
    ['sample:abc', null],
    ['sample:1e-3', null],
    ['sample:0.1x', null],
    ['sample', null],
    ['Always', null],
    [' never', null],
    ['', null],
  ])('%j → %j', (text, policy) => {
    expect(parseDecodePolicy(text)).toEqual(policy);
  });
});

describe('helpers for the downloader', () => {
  it('sniffType reads the type from the first bytes', async () => {
    expect(await sniffType(get('jpeg').subarray(0, 4100))).toEqual({ ext: 'jpg', contentType: 'image/jpeg' });
    expect(await sniffType(get('avif').subarray(0, 64))).toEqual({ ext: 'avif', contentType: 'image/avif' });
    // libtiff writes the IFD after the pixels: a head alone must not read as unrecognised
    const tiff = await image('tiff', 300, 200);
    expect(await sniffType(tiff.subarray(0, 4100))).toEqual({ ext: 'tif', contentType: 'image/tiff' });
    expect(await sniffType(HTML)).toBeNull();
    expect(await sniffType(Buffer.alloc(0))).toBeNull();
  });

  it('--profile any types and measures what neither fast path knows (an icon), and the image profile refuses it', async () => {
    // One 48x40 entry: file-type and image-size, both loaded on first use, read it.
    const ico = Buffer.alloc(6 + 16 + 40);
    ico.writeUInt16LE(1, 2);
    ico.writeUInt16LE(1, 4);
    ico[6] = 48;
    ico[7] = 40;
    ico.writeUInt16LE(1, 10);
    ico.writeUInt16LE(32, 12);
    ico.writeUInt32LE(40, 14);
    ico.writeUInt32LE(22, 18);
    expect(await validate('id', ico, ANY)).toEqual({ ok: true, ext: 'ico', contentType: 'image/x-icon', width: 48, height: 40 });
    expect(await validate('id', ico, IMAGE)).toMatchObject({ ok: false, reason: 'NOT_ALLOWED_TYPE' });
  });

  it('prepareGates loads the decoder only when it may be used', async () => {
    await expect(prepareGates(ALWAYS)).resolves.toBeUndefined();
    await expect(prepareGates(IMAGE)).resolves.toBeUndefined();
  });

  it('isAllowedType follows the profile', () => {
    expect(isAllowedType({ ext: 'jpg' }, 'image')).toBe(true);
    expect(isAllowedType({ ext: 'pdf' }, 'image')).toBe(false);
    expect(isAllowedType(null, 'image')).toBe(false);
    expect(isAllowedType(null, 'any')).toBe(true);
  });

  it('overCeiling cuts a stream past --max-bytes; checkSize judges a whole body', () => {
    expect(overCeiling(100, { maxBytes: 100 })).toBeNull();
    expect(overCeiling(101, { maxBytes: 100 })).toMatchObject({ reason: 'TOO_LARGE' });
    expect(checkSize(0, { minBytes: 1, maxBytes: 100 })).toMatchObject({ reason: 'EMPTY' });
    expect(checkSize(5, { minBytes: 10, maxBytes: 100 })).toMatchObject({ reason: 'TOO_SMALL' });
  });
});

describe('validate never throws', () => {
  it('on every prefix and on byte flips of every fixture, whatever the verdict', async () => {
    for (const name of ['jpeg', 'png', 'webp', 'gif', 'avif', 'tiff', 'bmp']) {
      const body = get(name);
      const step = Math.max(1, Math.floor(body.length / 60));
      for (let n = 0; n < body.length; n += step) {
        const v = await validate('id', body.subarray(0, n), ALWAYS);
        if (!v.ok) expect(classOf(v.reason)).toBe('invalid');
      }
      for (let at = 0; at < body.length; at += step) {
        const flipped = Buffer.from(body);
        flipped[at] = (flipped[at] ?? 0) ^ 0xff;
        const v = await validate('id', flipped, ALWAYS);
        if (!v.ok) expect(classOf(v.reason)).toBe('invalid');
      }
    }
  });
});

// Not an assertion: CPU per validate() call, to compare with FACTS.md ("Validation costs").
// Run with FERRY_MEASURE=1 npx vitest run worker/gates.test.ts -t measure
describe.runIf(process.env['FERRY_MEASURE'] === '1')('measure', () => {
  const jpeg = (w: number, h: number, quality: number): Promise<Buffer> =>
    sharp(noisePixels(w, h), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality }).toBuffer();

  async function cpuPerCall(label: string, body: Buffer, opts: GateOptions, n: number): Promise<void> {
    for (let i = 0; i < Math.min(n, 500); i++) await validate('id', body, opts); // warm up
    const before = process.cpuUsage(); // all threads, so sharp's decode threads count too
    for (let i = 0; i < n; i++) await validate(`id-${i}`, body, opts);
    const used = process.cpuUsage(before);
    console.log(`${label} (${body.length} B): ${((used.user + used.system) / n).toFixed(1)} µs CPU per call`);
  }

  it('CPU per validate() call', async () => {
    const thumb = await jpeg(100, 100, 80);
    const thumbHq = await jpeg(100, 100, 98);
    const photo = await jpeg(1600, 1200, 85);
    await cpuPerCall('100 px JPEG, --decode never', thumb, IMAGE, 20_000);
    await cpuPerCall('100 px JPEG q98, --decode never', thumbHq, IMAGE, 20_000);
    await cpuPerCall('100 px JPEG, --profile any', thumb, ANY, 20_000);
    await cpuPerCall('1600x1200 JPEG, --decode never', photo, IMAGE, 2_000);
    await cpuPerCall('100 px JPEG, --decode always', thumb, ALWAYS, 500);
    await cpuPerCall('1600x1200 JPEG, --decode always', photo, ALWAYS, 30);
  });
});
