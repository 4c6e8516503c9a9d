/**
 * Header dimensions with image-size (pure JS, microseconds), or ferry's own parser where
 * image-size misreads real files (header-parsers.ts): the parser is chosen by the type
 * file-type found, so the two libraries cannot disagree on what the bytes are.
 */
import type * as ImageSize from 'image-size';
import { PNG } from 'image-size/types/png';
import { TIFF } from 'image-size/types/tiff';
import { WEBP } from 'image-size/types/webp';
import { type Dimensions, bmpSize, gifSize, heifSize, jpegSize } from './header-parsers.js';

export type { Dimensions };

/**
 * image-size's own detection, for image types of the `any` profile without a parser above:
 * loaded on first use, as it loads a parser for every type it knows.
 */
let imageSizeModule: Promise<typeof ImageSize> | undefined;
const anyImageSize = async () => (await (imageSizeModule ??= import('image-size'))).imageSize;

type HeaderParser = (input: Uint8Array) => { width?: number | undefined; height?: number | undefined };

const PARSERS: Readonly<Partial<Record<string, HeaderParser>>> = {
  jpg: jpegSize,
  png: PNG.calculate,
  webp: WEBP.calculate,
  gif: gifSize,
  avif: heifSize,
  heic: heifSize,
  tif: TIFF.calculate,
  bmp: bmpSize,
};

/**
 * Width and height from the header. Throws when the header cannot be parsed (cut short,
 * malformed, or a type image-size does not know); a size that is not a positive integer
 * counts as unparseable.
 */
export async function headerDimensions(ext: string, bytes: Uint8Array): Promise<Dimensions> {
  const parser = PARSERS[ext];
  const input = endsItsArrayBuffer(bytes) ? bytes : new Uint8Array(bytes);
  const size = parser ? parser(input) : (await anyImageSize())(input);
  const { width, height } = size;
  if (!isPositiveInt(width) || !isPositiveInt(height)) {
    throw new TypeError(`header gives ${String(width)}x${String(height)}`);
  }
  return { width, height };
}

/**
 * image-size reads through DataViews that run to the end of the underlying ArrayBuffer, so
 * on a view into a larger one (a small pooled Buffer, a subarray) a header cut short would
 * be read from the neighbouring bytes instead of failing. Such views are copied first;
 * a downloaded body of more than 4 KiB normally owns its ArrayBuffer and is not.
 */
function endsItsArrayBuffer(b: Uint8Array): boolean {
  return b.byteOffset + b.byteLength === b.buffer.byteLength;
}

const isPositiveInt = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;
