import { fileTypeFromBuffer } from 'file-type';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { seeded } from '../../test/helpers/seeded.mjs';
import { IMAGE_TYPES, commonImageType, detectType, isImageType } from './types.js';

/** What file-type alone says, in ferry's spelling: the answer commonImageType must never contradict. */
async function byFileType(b: Uint8Array) {
  const found = await fileTypeFromBuffer(b);
  if (!found) return null;
  const ext = found.ext === 'apng' ? 'png' : found.ext;
  return { ext, contentType: IMAGE_TYPES[ext] ?? found.mime };
}

describe('commonImageType', () => {
  const make = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 4, background: { r: 200, g: 20, b: 90, alpha: 0.5 } } });
  const samples = async () => [
    await make(40, 30).jpeg().toBuffer(),
    await make(40, 30).jpeg({ progressive: true }).withMetadata().toBuffer(),
    await make(40, 30).png().toBuffer(),
    await make(40, 30).png({ progressive: true, palette: true }).toBuffer(),
    await make(40, 60).png().toBuffer(), // with pageHeight below: an APNG
    await sharp({ create: { width: 40, height: 60, channels: 3, background: 'red', pageHeight: 30 } }).png().toBuffer(),
    await make(40, 30).webp().toBuffer(),
    await make(40, 30).webp({ lossless: true }).toBuffer(),
    await make(40, 30).gif().toBuffer(),
    await make(40, 30).png().withMetadata({ exif: { IFD0: { Copyright: 'x'.repeat(300) } } }).toBuffer(), // a chunk before IDAT
  ];

  it('answers for the common images themselves, as file-type does', async () => {
    for (const b of await samples()) {
      const quick = commonImageType(b);
      expect(quick).not.toBeNull();
      expect(quick).toEqual(await byFileType(b));
    }
  });

  it('never contradicts file-type on mutated headers: it answers the same or leaves it to file-type', async () => {
    const random = seeded(7);
    const bases = await samples();
    let answered = 0;
    for (let i = 0; i < 4000; i++) {
      const b = Buffer.from(bases[i % bases.length]!.subarray(0, 16 + Math.floor(random() * 200)));
      for (let k = 1 + Math.floor(random() * 3); k > 0; k--) b[Math.floor(random() * Math.min(b.length, 64))] = Math.floor(random() * 256);
      const quick = commonImageType(b);
      if (quick === null) continue;
      answered++;
      expect({ i, type: quick }).toEqual({ i, type: await byFileType(b) });
    }
    expect(answered).toBeGreaterThan(1000);
  });

  it('leaves the unusual to file-type: JPEG-LS, a PNG without IHDR first, a RIFF that is not WebP, short input', () => {
    const jls = Buffer.from([0xff, 0xd8, 0xff, 0xf7, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(commonImageType(jls)).toBeNull();
    const png = Buffer.alloc(64);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(png);
    png.writeUInt32BE(13, 8);
    png.write('CgBI', 12, 'latin1');
    expect(commonImageType(png)).toBeNull();
    const avi = Buffer.from('RIFF\x10\x00\x00\x00AVI LIST', 'latin1');
    expect(commonImageType(avi)).toBeNull();
    expect(commonImageType(Buffer.from([0xff, 0xd8, 0xff]))).toBeNull();
  });
});

describe('detectType', () => {
  it('spells each type one way, whatever file-type calls it', async () => {
    const avif = await sharp({ create: { width: 40, height: 30, channels: 3, background: 'red' } }).avif().toBuffer();
    expect(await detectType(avif)).toEqual({ ext: 'avif', contentType: 'image/avif' });
    // the same AVIF with the generic HEIF major brand: still AVIF, by its compatible brands
    const generic = Buffer.from(avif);
    generic.write('mif1', 8, 'latin1');
    expect(await detectType(generic)).toEqual({ ext: 'avif', contentType: 'image/avif' });
    // a HEIF listing an HEVC brand is HEIC, with ferry's content-type
    const heic = Buffer.from(generic);
    heic.write('heic', 16, 'latin1');
    expect(await detectType(heic)).toEqual({ ext: 'heic', contentType: 'image/heic' });
  });

  it('calls an APNG a png', async () => {
    const apng = await sharp({ create: { width: 40, height: 60, channels: 3, background: 'red', pageHeight: 30 } })
      .png()
      .toBuffer();
    expect(await detectType(apng)).toEqual({ ext: 'png', contentType: 'image/png' });
  });

  it('tells SVG, which file-type does not, past its prologue', async () => {
    const svg = { ext: 'svg', contentType: 'image/svg+xml' };
    const tag = '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>';
    expect(await detectType(Buffer.from(tag))).toEqual(svg);
    expect(await detectType(Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n${tag}`))).toEqual(svg);
    const prologue = '\uFEFF<?xml version="1.0"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [ <!ENTITY a "b"> ]>\n';
    expect(await detectType(Buffer.from(`${prologue}<svg>`))).toEqual(svg);
    expect(await detectType(Buffer.from('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><svg/></feed>'))).toEqual({ ext: 'xml', contentType: 'application/xml' });
    expect(await detectType(Buffer.from('<svgx/>'))).toBeNull();
    expect(await detectType(Buffer.from('<html><svg/></html>'))).not.toEqual(svg);
  });

  it('returns null for what it does not recognise', async () => {
    expect(await detectType(Buffer.from('hello, world\n'))).toBeNull();
    expect(await detectType(Buffer.alloc(0))).toBeNull();
  });

  it.each([
    ['jpg', true],
    ['heic', true],
    ['tif', true],
    ['pdf', false],
    ['jxl', false],
    ['svg', false],
    ['constructor', false],
  ])('isImageType(%s) is %s', (ext, allowed) => {
    expect(isImageType(ext)).toBe(allowed);
  });
});
