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
    expect(await detectType(Buffer.from('<!-- open comment <svg>'))).toBeNull();
    expect(await detectType(Buffer.from('<!DOCTYPE svg [ <!ENTITY a "]"> ]><svg/>'))).toEqual(svg);
  });

  // Untrusted payloads: a prologue scan that backtracked took hours over these (each 2 more
  // bytes quadrupled it), holding the worker's event loop, so that no task could end.
  it.each([
    ['whitespace', ' \t\r\n'.repeat(1000) + '<html>'],
    ['processing instructions', '<?a?>'.repeat(800) + 'x'],
    ['comments', '<!--a-->'.repeat(500) + 'x'],
    ['doctypes', '<!DOCTYPE a [ ] ] >'.repeat(200) + 'x'],
  ])('a body of many %s before an element that is not <svg> is told at once', async (_name, text) => {
    expect(await detectType(Buffer.from(text))).not.toEqual({ ext: 'svg', contentType: 'image/svg+xml' });
    expect(await detectType(Buffer.alloc(4096, 9))).toBeNull();
  });

  it('calls a TIFF a tif when file-type takes it for a camera raw its Make tag does not confirm', async () => {
    const tif = { ext: 'tif', contentType: 'image/tiff' };
    // uncompressed pixels starting with the bytes 'CR', where libtiff puts them (offset 8): a CR2 to file-type
    const px = Buffer.alloc(40 * 30 * 3, 0x40);
    px.write('CR', 0, 'latin1');
    const pixelsCR = await sharp(px, { raw: { width: 40, height: 30, channels: 3 } }).tiff({ compression: 'none' }).toBuffer();
    expect((await fileTypeFromBuffer(pixelsCR))?.ext).toBe('cr2');
    expect(await detectType(pixelsCR)).toEqual(tif);
    expect(await detectType(pixelsCR.subarray(0, 4100))).toEqual(tif); // a head, before the directory
    // an Epson TIFF: a PrintIM tag in its first directory, a Sony ARW to file-type
    const epson = tiffWithTags([[271, 'EPSON'], [0xc4a5, 'PrintIM']]);
    expect((await fileTypeFromBuffer(epson))?.ext).toBe('arw');
    expect(await detectType(epson)).toEqual(tif);
    // a Photoshop-like TIFF: 28 entries, the first NewSubfileType (254), directory at 8: a NEF to file-type
    const nefLike = tiffWithTags([[254, 0], ...Array.from({ length: 27 }, (_, k) => [256 + k, 1] as [number, number])]);
    expect((await fileTypeFromBuffer(nefLike))?.ext).toBe('nef');
    expect(await detectType(nefLike)).toEqual(tif);
  });

  it('keeps the raw answer when the Make tag confirms the maker', async () => {
    const sony = await detectType(tiffWithTags([[271, 'SONY'], [0xc4a5, 'PrintIM']]));
    expect(sony).toEqual({ ext: 'arw', contentType: 'image/x-sony-arw' });
    const nikon = tiffWithTags([[254, 0], [271, 'NIKON CORPORATION'], ...Array.from({ length: 26 }, (_, k) => [300 + k, 1] as [number, number])]);
    expect(await detectType(nikon)).toEqual({ ext: 'nef', contentType: 'image/x-nikon-nef' });
    const canon = tiffWithTags([[271, 'Canon']], 16);
    canon.write('CR\x02\x00', 8, 'latin1');
    expect(await detectType(canon)).toEqual({ ext: 'cr2', contentType: 'image/x-canon-cr2' });
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

/**
 * A little-endian TIFF header and first directory (at `ifdAt`) holding the given tags, in
 * that order: a string as an ASCII value stored after the directory, a number as a SHORT.
 */
function tiffWithTags(tags: Array<[tag: number, value: string | number]>, ifdAt = 8): Buffer {
  const dirBytes = 2 + tags.length * 12 + 4;
  const strings = tags.map(([, v]) => (typeof v === 'string' ? Buffer.from(`${v}\0`, 'latin1') : Buffer.alloc(0)));
  const b = Buffer.alloc(ifdAt + dirBytes + strings.reduce((a, s) => a + s.length, 0) + 64);
  b.write('II*\0', 0, 'latin1');
  b.writeUInt32LE(ifdAt, 4);
  b.writeUInt16LE(tags.length, ifdAt);
  let valuesAt = ifdAt + dirBytes;
  tags.forEach(([tag, value], k) => {
    const e = ifdAt + 2 + k * 12;
    b.writeUInt16LE(tag, e);
    if (typeof value === 'number') {
      b.writeUInt16LE(3, e + 2);
      b.writeUInt32LE(1, e + 4);
      b.writeUInt16LE(value, e + 8);
      return;
    }
    const s = strings[k]!;
    b.writeUInt16LE(tag === 271 ? 2 : 7, e + 2);
    b.writeUInt32LE(s.length, e + 4);
    b.writeUInt32LE(valuesAt, e + 8);
    s.copy(b, valuesAt);
    valuesAt += s.length;
  });
  return b;
}
