/**
 * Structural completeness of a TIFF (TIFF 6.0, and BigTIFF): the chain of image file
 * directories (IFDs) from the header, each directory's entries and the values they point
 * to, and the image data its strips or tiles point to, all within the bytes received.
 * libtiff writes the pixels first and the directory last, other writers the other way
 * round: a file cut anywhere loses either a directory, a value or image data. Only
 * offsets are read, never pixels, so the cost is a few entries per page.
 */

/** Directories followed at most: past that (or on a loop) the chain is taken as whole. */
const MAX_IFDS = 64;

/** Bytes per value of each field type; other types are unknown and libtiff skips them. */
const TYPE_SIZE: Readonly<Partial<Record<number, number>>> = {
  1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8,
};

/** The tags whose values locate image data: offsets and byte counts of strips, tiles, or an old-style JPEG stream. */
const EXTENTS: ReadonlyArray<readonly [offsets: number, counts: number]> = [
  [273, 279], // StripOffsets, StripByteCounts
  [324, 325], // TileOffsets, TileByteCounts
  [513, 514], // JPEGInterchangeFormat, JPEGInterchangeFormatLength
];
const IMAGE_DATA_TAGS: ReadonlySet<number> = new Set([273, 324, 513]);

/** One directory entry: the type and count of its values and where they start. */
type Entry = { type: number; count: number; at: number };

/** A reader of one file's layout: byte order and classic (4-byte offsets) or BigTIFF (8-byte). */
class Layout {
  constructor(
    readonly b: Buffer,
    readonly le: boolean,
    readonly big: boolean,
  ) {}
  u16 = (at: number): number => (this.le ? this.b.readUInt16LE(at) : this.b.readUInt16BE(at));
  u32 = (at: number): number => (this.le ? this.b.readUInt32LE(at) : this.b.readUInt32BE(at));
  u64 = (at: number): number => Number(this.le ? this.b.readBigUInt64LE(at) : this.b.readBigUInt64BE(at));
  /** An offset or count: 4 bytes in classic TIFF, 8 in BigTIFF. */
  word = (at: number): number => (this.big ? this.u64(at) : this.u32(at));
  get wordSize(): number {
    return this.big ? 8 : 4;
  }
  /** The `index`-th value of an entry of an integer type, or undefined for another type. */
  integer(e: Entry, index: number): number | undefined {
    const at = e.at + index * (TYPE_SIZE[e.type] ?? 0);
    if (e.type === 3) return this.u16(at);
    if (e.type === 4 || e.type === 13) return this.u32(at);
    if (e.type === 16 || e.type === 18) return this.u64(at);
    return undefined;
  }
}

const truncated = (b: Buffer, what: string): string => `truncated at byte ${b.length}: ${what}`;

/** Why the TIFF is not whole, or null when every directory, value and strip or tile is there. */
export function checkTiff(b: Buffer): string | null {
  const layout = header(b);
  if (typeof layout === 'string') return layout;
  let ifd = layout.big ? layout.u64(8) : layout.u32(4);
  if (ifd === 0) return 'no image file directory';
  const seen = new Set<number>();
  for (let page = 0; ifd !== 0 && page < MAX_IFDS && !seen.has(ifd); page++) {
    seen.add(ifd);
    const dir = readDirectory(layout, ifd, page);
    if (typeof dir === 'string') return dir;
    const missing = page === 0 && ![...dir.entries.keys()].some((tag) => IMAGE_DATA_TAGS.has(tag));
    if (missing) return 'the first directory locates no image data';
    const cut = imageDataCut(layout, dir.entries, page);
    if (cut !== null) return cut;
    ifd = dir.next;
  }
  return null;
}

/** The byte order and variant from the 8-byte (16 for BigTIFF) header, or why it is not one. */
function header(b: Buffer): Layout | string {
  if (b.length < 8) return truncated(b, 'in the header');
  const order = b.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return 'no TIFF byte-order mark';
  const le = order === 'II';
  const version = le ? b.readUInt16LE(2) : b.readUInt16BE(2);
  if (version === 42) return new Layout(b, le, false);
  if (version !== 43) return `unknown TIFF version ${version}`;
  if (b.length < 16) return truncated(b, 'in the BigTIFF header');
  const layout = new Layout(b, le, true);
  return layout.u16(4) === 8 && layout.u16(6) === 0 ? layout : 'bad BigTIFF header';
}

/**
 * A directory's entries (by tag) and the offset of the next one, each entry's values
 * within the bytes; or why not.
 */
function readDirectory(t: Layout, at: number, page: number): { entries: Map<number, Entry>; next: number } | string {
  const { b, big, wordSize } = t;
  const where = `directory ${page} at byte ${at}`;
  const countSize = big ? 8 : 2;
  if (at + countSize > b.length) return truncated(b, `before ${where}`);
  const n = big ? t.u64(at) : t.u16(at);
  const entrySize = big ? 20 : 12;
  const end = at + countSize + n * entrySize + wordSize;
  if (end > b.length) return truncated(b, `in ${where} (${n} entries)`);
  const entries = new Map<number, Entry>();
  for (let k = 0, e = at + countSize; k < n; k++, e += entrySize) {
    const tag = t.u16(e);
    const type = t.u16(e + 2);
    const count = big ? t.u64(e + 4) : t.u32(e + 4);
    const valueField = e + (big ? 12 : 8);
    const size = TYPE_SIZE[type];
    if (size === undefined) continue; // an unknown type: readers skip the entry
    const bytes = count * size;
    const values = bytes <= wordSize ? valueField : t.word(valueField);
    if (values + bytes > b.length) return truncated(b, `the values of tag ${tag} in ${where} reach byte ${values + bytes}`);
    entries.set(tag, { type, count, at: values });
  }
  return { entries, next: t.word(end - wordSize) };
}

/** Whether some strip, tile or JPEG stream of a directory ends past the bytes received. */
function imageDataCut(t: Layout, entries: Map<number, Entry>, page: number): string | null {
  for (const [offsetsTag, countsTag] of EXTENTS) {
    const offsets = entries.get(offsetsTag);
    const counts = entries.get(countsTag);
    if (!offsets || !counts) continue; // without byte counts, libtiff estimates them: nothing to hold it to
    const n = Math.min(offsets.count, counts.count);
    for (let i = 0; i < n; i++) {
      const offset = t.integer(offsets, i);
      const count = t.integer(counts, i);
      if (offset === undefined || count === undefined) break;
      if (count > 0 && offset + count > t.b.length) {
        return truncated(t.b, `image data of directory ${page} (tag ${offsetsTag}, #${i}) reaches byte ${offset + count}`);
      }
    }
  }
  return null;
}
