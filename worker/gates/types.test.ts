import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { detectType, isImageType } from './types.js';

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
