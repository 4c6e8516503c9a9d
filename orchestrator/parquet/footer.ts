// The Parquet footer, read and patched by hand (see thrift.ts for why). Field ids below are
// those of parquet.thrift: FileMetaData, SchemaElement, RowGroup, ColumnChunk,
// ColumnMetaData.
import type { FileHandle } from 'node:fs/promises';
import { CompactReader, CompactWriter, TType, field, i32, setField, str, structs, struct } from './thrift.js';
import type { TStruct } from './thrift.js';

const MAGIC = 'PAR1';
const ENCRYPTED_MAGIC = 'PARE';
/** Footers of real files are kilobytes to a few megabytes; more is a corrupt length. */
const MAX_FOOTER_BYTES = 256 * 1024 * 1024;

export const PhysicalType = { INT64: 2, INT96: 3, FIXED_LEN_BYTE_ARRAY: 7 } as const;

/** A footer that cannot be used; the message is one line, the caller adds the file name. */
export class FooterError extends Error {}

export type Footer = {
  fileSize: number;
  /** Byte offset where the Thrift FileMetaData starts. */
  start: number;
  meta: TStruct;
};

export type SchemaNode = {
  name: string;
  path: string[];
  element: TStruct;
  physicalType: number | undefined;
  children: SchemaNode[];
};

export async function readFooter(fh: FileHandle): Promise<Footer> {
  const { size } = await fh.stat();
  if (size === 0) throw new FooterError('empty file, not a Parquet file');
  if (size < 12) throw new FooterError(`only ${size} bytes, too short for a Parquet file`);
  const head = await readAt(fh, 0, 4);
  const tail = await readAt(fh, size - 8, 8);
  const tailMagic = ascii(tail.subarray(4));
  if (tailMagic === ENCRYPTED_MAGIC) throw new FooterError('encrypted Parquet footers are not supported');
  if (ascii(head) !== MAGIC) throw new FooterError('not a Parquet file (no PAR1 magic at the start)');
  if (tailMagic !== MAGIC) throw new FooterError('no PAR1 magic at the end: truncated or not a Parquet file');
  const length = new DataView(tail.buffer, tail.byteOffset, 8).getUint32(0, true);
  const start = size - 8 - length;
  if (length === 0 || start < 4 || length > MAX_FOOTER_BYTES) {
    throw new FooterError(`footer length ${length} does not fit a file of ${size} bytes: corrupt or truncated`);
  }
  const meta = decodeFooter(await readAt(fh, start, length));
  return { fileSize: size, start, meta };
}

export function decodeFooter(bytes: Uint8Array): TStruct {
  try {
    return new CompactReader(bytes).readStruct();
  } catch (e) {
    throw new FooterError(`corrupt footer: ${(e as Error).message}`);
  }
}

export function encodeFooter(meta: TStruct): Uint8Array {
  const w = new CompactWriter();
  w.writeStruct(meta);
  return w.bytes();
}

/** Footer bytes followed by their length and the magic: what ends a Parquet file. */
export function footerTail(meta: TStruct): Uint8Array {
  const body = encodeFooter(meta);
  const out = new Uint8Array(body.length + 8);
  out.set(body);
  new DataView(out.buffer).setUint32(body.length, body.length, true);
  out.set(new TextEncoder().encode(MAGIC), body.length + 4);
  return out;
}

export function rowGroupRows(meta: TStruct): number[] {
  return structs(meta, 4).map((rg) => {
    const v = field(rg, 3);
    return v?.t === TType.I64 ? Number(v.v) : 0;
  });
}

/** FieldRepetitionType REPEATED. */
const REPEATED = 2;

/**
 * Refuses a footer whose row counts contradict its column chunks. A top-level leaf that
 * is not repeated holds one value, null or not, per row: its chunk's num_values is the
 * row group's num_rows. Where they differ, readers disagree on the rows (DuckDB believes
 * one count, parquet-wasm the pages; a num_rows of 0 hides the row group from both).
 */
export function checkRowCounts(meta: TStruct): void {
  const flat = new Set(schemaTree(meta).children.filter((c) => c.children.length === 0 && i32(c.element, 3) !== REPEATED).map((c) => c.name));
  structs(meta, 4).forEach((rg, g) => {
    const rows = field(rg, 3);
    if (rows?.t !== TType.I64 || rows.v < 0n) throw new FooterError(`corrupt footer: row group ${g} has no valid row count`);
    for (const chunk of structs(rg, 1)) {
      const cmd = struct(chunk, 3);
      const path = cmd ? chunkPath(cmd) : [];
      const values = cmd ? field(cmd, 5) : undefined;
      if (path.length !== 1 || !flat.has(path[0]!) || values?.t !== TType.I64 || values.v === rows.v) continue;
      throw new FooterError(`corrupt footer: row group ${g} says it has ${rows.v} rows, but its column "${path[0]}" holds ${values.v} values`);
    }
  });
}

/** A column chunk's path_in_schema. */
function chunkPath(cmd: TStruct): string[] {
  const path = field(cmd, 3);
  if (path?.t !== TType.List) return [];
  return path.items.map((item) => (item.t === TType.Binary ? new TextDecoder().decode(item.v) : ''));
}

/**
 * Per row group, the uncompressed bytes of the column chunks under the given top-level
 * columns (all when omitted): about what decoding the row group will take.
 */
export function rowGroupBytes(meta: TStruct, columns?: ReadonlySet<string>): number[] {
  return structs(meta, 4).map((rg) => {
    let total = 0;
    for (const chunk of structs(rg, 1)) {
      const cmd = struct(chunk, 3);
      if (!cmd) continue;
      const top = chunkPath(cmd)[0];
      if (columns && (top === undefined || !columns.has(top))) continue;
      const size = field(cmd, 6);
      if (size?.t === TType.I64) total += Number(size.v);
    }
    return total;
  });
}

/** The schema as a tree; the flat element list is a depth-first walk with child counts. */
export function schemaTree(meta: TStruct): SchemaNode {
  const elements = structs(meta, 2);
  let next = 0;
  const build = (parentPath: string[], depth: number): SchemaNode => {
    const element = elements[next++];
    if (!element || depth > 256) throw new FooterError('corrupt footer: schema does not match its child counts');
    const name = str(element, 4) ?? '';
    const path = depth === 0 ? [] : [...parentPath, name];
    const children: SchemaNode[] = [];
    const count = i32(element, 5) ?? 0;
    for (let i = 0; i < count; i++) children.push(build(path, depth + 1));
    return { name, path, element, physicalType: count > 0 ? undefined : i32(element, 1), children };
  };
  const root = build([], 0);
  if (next !== elements.length) throw new FooterError('corrupt footer: schema does not match its child counts');
  return root;
}

/** Leaves in depth-first order: the order of column chunks, and of Arrow's leaf arrays. */
export function leaves(node: SchemaNode): SchemaNode[] {
  if (node.children.length === 0) return node.path.length === 0 ? [] : [node];
  return node.children.flatMap(leaves);
}

/**
 * The footer with every INT96 column re-declared as FIXED_LEN_BYTE_ARRAY(12). INT96 and
 * FLBA(12) share their PLAIN and dictionary encodings byte for byte, so the reader hands
 * back the raw 12-byte values and int96.ts converts them exactly; parquet-wasm's own INT96
 * conversion goes through nanoseconds and wraps values outside 1677–2262.
 */
export function withInt96AsBytes(meta: TStruct): TStruct {
  const copy = decodeFooter(encodeFooter(meta));
  for (const leaf of leaves(schemaTree(copy))) {
    if (leaf.physicalType !== PhysicalType.INT96) continue;
    setField(leaf.element, 1, { t: TType.I32, v: PhysicalType.FIXED_LEN_BYTE_ARRAY });
    setField(leaf.element, 2, { t: TType.I32, v: 12 });
    setField(leaf.element, 6, undefined);
    setField(leaf.element, 10, undefined);
  }
  for (const rowGroup of structs(copy, 4)) {
    for (const chunk of structs(rowGroup, 1)) {
      const cmd = struct(chunk, 3);
      if (!cmd || i32(cmd, 1) !== PhysicalType.INT96) continue;
      setField(cmd, 1, { t: TType.I32, v: PhysicalType.FIXED_LEN_BYTE_ARRAY });
      setField(cmd, 12, undefined); // statistics: INT96 order is undefined, drop them
      // The column index holds INT96 statistics too; the offset index stays valid.
      setField(chunk, 6, undefined);
      setField(chunk, 7, undefined);
    }
  }
  return copy;
}

/** ConvertedType TIMESTAMP_MICROS. */
const TIMESTAMP_MICROS = 10;
/** LogicalType union members (parquet.thrift). */
const Logical = { STRING: 1, ENUM: 4, TIME: 7, TIMESTAMP: 8, JSON: 12, BSON: 13, UUID: 14 } as const;

/**
 * Gives output leaves back the input's annotation where the writer, from its Arrow
 * reading, annotated the same stored values differently. Leaves pair up by depth-first
 * order and must agree on physical type and length; only these differences are undone,
 * because for them the stored values are known to be identical:
 * - the input had only a legacy ConvertedType (or none) and the writer added a
 *   LogicalType: for TIMESTAMP_MILLIS/MICROS that LogicalType says isAdjustedToUTC, which
 *   DuckDB then reads as TIMESTAMP WITH TIME ZONE although it read the input as TIMESTAMP;
 * - JSON, BSON, ENUM or UUID that the writer wrote as plain STRING or bytes (Arrow has no
 *   such types, so the reader drops them);
 * - TIME or TIMESTAMP whose isAdjustedToUTC flag changed (Arrow's Time has no time zone).
 * INT96 leaves, now INT64 microseconds, get ConvertedType TIMESTAMP_MICROS alone: the
 * annotation DuckDB reads as TIMESTAMP and Spark as TimestampType, as each reads INT96.
 * Returns how many leaves changed.
 */
export function restoreAnnotations(input: TStruct, output: TStruct): number {
  const outLeaves = leaves(schemaTree(output));
  let patched = 0;
  leaves(schemaTree(input)).forEach((inLeaf, i) => {
    const outLeaf = outLeaves[i];
    if (!outLeaf) return;
    const wanted = wantedAnnotation(inLeaf, outLeaf);
    if (!wanted) return;
    setField(outLeaf.element, 6, wanted.converted === undefined ? undefined : { t: TType.I32, v: wanted.converted });
    setField(outLeaf.element, 10, wanted.logical);
    patched++;
  });
  return patched;
}

type Annotation = { converted: number | undefined; logical: TStruct | undefined };

function wantedAnnotation(inLeaf: SchemaNode, outLeaf: SchemaNode): Annotation | undefined {
  const inAnn = annotation(inLeaf.element);
  const outAnn = annotation(outLeaf.element);
  if (inLeaf.physicalType === PhysicalType.INT96) {
    const int96: Annotation = { converted: TIMESTAMP_MICROS, logical: undefined };
    return outLeaf.physicalType === PhysicalType.INT64 && !sameAnnotation(outAnn, int96) ? int96 : undefined;
  }
  if (inLeaf.physicalType !== outLeaf.physicalType || i32(inLeaf.element, 2) !== i32(outLeaf.element, 2)) return undefined;
  if (sameAnnotation(inAnn, outAnn)) return undefined;
  if (!inAnn.logical) {
    // Legacy input: the writer may only have added a LogicalType to the same ConvertedType.
    return outAnn.converted === undefined || outAnn.converted === inAnn.converted ? inAnn : undefined;
  }
  const inKind = unionMember(inAnn.logical);
  const outKind = outAnn.logical ? unionMember(outAnn.logical) : undefined;
  const dropped = [Logical.JSON, Logical.BSON, Logical.ENUM, Logical.UUID] as number[];
  if (dropped.includes(inKind ?? -1) && (outKind === undefined || outKind === Logical.STRING)) return inAnn;
  const timeLike = [Logical.TIME, Logical.TIMESTAMP] as number[];
  if (inKind !== undefined && timeLike.includes(inKind) && inKind === outKind && sameUnit(inAnn.logical, outAnn.logical!)) return inAnn;
  return undefined;
}

function annotation(element: TStruct): Annotation {
  const logical = field(element, 10);
  return { converted: i32(element, 6), logical: logical?.t === TType.Struct ? logical : undefined };
}

function sameAnnotation(a: Annotation, b: Annotation): boolean {
  const bytes = (l: TStruct | undefined) => (l ? encodeFooter(l).join(',') : '');
  return a.converted === b.converted && bytes(a.logical) === bytes(b.logical);
}

/** A Thrift union is a struct with one field set: its id says which member. */
function unionMember(u: TStruct): number | undefined {
  return u.fields[0]?.id;
}

/** TIME and TIMESTAMP logical types: field 2 of the member is its unit, itself a union. */
function sameUnit(a: TStruct, b: TStruct): boolean {
  const unit = (l: TStruct) => {
    const member = l.fields[0]?.value;
    const u = member?.t === TType.Struct ? struct(member, 2) : undefined;
    return u ? unionMember(u) : undefined;
  };
  return unit(a) !== undefined && unit(a) === unit(b);
}

/** The Parquet leaf paths, dotted, of INT96 columns. */
export function int96Paths(meta: TStruct): string[] {
  return leaves(schemaTree(meta))
    .filter((l) => l.physicalType === PhysicalType.INT96)
    .map((l) => l.path.join('.'));
}

/** The footer's key-value metadata, in order. */
export function keyValueMetadata(meta: TStruct): [string, string][] {
  const out: [string, string][] = [];
  for (const kv of structs(meta, 5)) {
    const key = str(kv, 1);
    if (key !== undefined) out.push([key, str(kv, 2) ?? '']);
  }
  return out;
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new FooterError('file ends early');
    done += bytesRead;
  }
  return buf;
}

function ascii(b: Uint8Array): string {
  return String.fromCharCode(...b);
}
