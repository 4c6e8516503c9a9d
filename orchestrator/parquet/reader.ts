// Reading a manifest with parquet-wasm, for the codec thread: the footer checks, the
// row groups as Arrow tables with INT96 converted, and the keys as strings.
import { openAsBlob } from 'node:fs';
import { open } from 'node:fs/promises';
import { RecordBatch, Schema, Struct, Table, Type, makeData, tableFromIPC } from './arrow.js';
import type { DataType, Decimal, Vector } from './arrow.js';
import { ParquetFile } from './wasm.js';
import { PhysicalType, checkRowCounts, footerTail, int96Paths, leaves, readFooter, rowGroupBytes, rowGroupRows, schemaTree, withInt96AsBytes } from './footer.js';
import type { Footer } from './footer.js';
import { convertInt96Column, convertInt96Field } from './int96.js';
import type { Int96Tally } from './int96.js';
import { oneLine } from './errors.js';
import { toStrings, usableAsId, usableAsUrl } from './keys.js';
import type { KeyColumns, OutputColumns } from './messages.js';

/**
 * A problem with the manifest itself; its message is one line, without the file name.
 * `inDecoder`: raised by the wasm, whose state may since be unsound (after a panic it is).
 */
export class ReadError extends Error {
  constructor(
    message: string,
    readonly inDecoder = false,
  ) {
    super(message);
  }
}

/** Rows per Arrow batch handed between reader, JS and writer. */
const BATCH_ROWS = 8192;

/**
 * A row group is decoded whole, inside the wasm's 4 GiB address space, then copied to
 * JS: past this many uncompressed bytes the file is refused up front with a clear
 * message, instead of exhausting memory or crashing the decoder partway.
 */
const MAX_ROW_GROUP_BYTES = 1024 ** 3;

export type Manifest = {
  footer: Footer;
  file: ParquetFile;
  schema: Schema;
  /** Per top-level column, the depth-first indexes of its INT96 leaves. */
  int96: Map<string, Set<number>>;
  /** Rows per row group, as the footer declares them. */
  rowGroups: number[];
};

/** Runs a step of parquet-wasm or Arrow decoding; whatever it throws is the file's fault. */
export async function decoding<T>(what: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    throw new ReadError(`${what}: ${oneLine(e)}`, true);
  }
}

export async function openManifest(path: string): Promise<Manifest> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new ReadError(`cannot open: ${e.code ?? oneLine(e)}`);
  });
  let footer: Footer;
  try {
    footer = await readFooter(fh);
  } finally {
    await fh.close();
  }
  checkRowCounts(footer.meta);
  const source = await sourceBlob(path, footer);
  const file = await decoding('cannot read the Parquet metadata', () => ParquetFile.fromFile(source));
  const schema = await decoding('cannot read the schema', () => tableFromIPC(file.schema().intoIPCStream()).schema);
  return { footer, file, schema, int96: int96Leaves(footer, schema), rowGroups: rowGroupRows(footer.meta) };
}

/** The file itself, or, when it has INT96 columns, the file with a patched footer. */
async function sourceBlob(path: string, footer: Footer): Promise<Blob> {
  const blob = await openAsBlob(path);
  if (int96Paths(footer.meta).length === 0) return blob;
  // Blob parts are referenced, not copied: the data pages are still read lazily.
  return new Blob([blob.slice(0, footer.start), footerTail(withInt96AsBytes(footer.meta))]);
}

function int96Leaves(footer: Footer, schema: Schema): Map<string, Set<number>> {
  const columns = schemaTree(footer.meta).children;
  if (columns.length !== schema.fields.length) throw new ReadError('the Parquet schema and its Arrow reading disagree');
  const out = new Map<string, Set<number>>();
  for (const column of columns) {
    const indexes = leaves(column).flatMap((leaf, i) => (leaf.physicalType === PhysicalType.INT96 ? [i] : []));
    if (indexes.length > 0) out.set(column.name, new Set(indexes));
  }
  return out;
}

export function checkColumns(m: Manifest, keys: KeyColumns | null, out: OutputColumns): void {
  const field = (name: string) => m.schema.fields.find((f) => f.name === name);
  for (const [name, flag] of [
    [out.path, '--path-column'],
    [out.bad, '--bad-column'],
  ] as const) {
    if (field(name)) throw new ReadError(`already has a column named "${name}", an output column; rename the output with ${flag}`);
    // DuckDB and Spark resolve names regardless of case: to them such a column and the
    // output would be one (DuckDB's `SELECT bad_image` would return the input's).
    const twin = m.schema.fields.find((f) => f.name.toLowerCase() === name.toLowerCase());
    if (twin) {
      throw new ReadError(
        `already has a column named "${twin.name}", which DuckDB and Spark (ignoring case) take for the output column "${name}"; rename the output with ${flag}`,
      );
    }
  }
  if (!keys) return;
  const checks = [
    [keys.id, keys.flags?.id ?? '--id-column', usableAsId, 'a string, binary or integer (or decimal of scale 0)'],
    [keys.url, keys.flags?.url ?? '--url-column', usableAsUrl, 'a string or binary'],
  ] as const;
  for (const [name, flag, usable, wanted] of checks) {
    const f = field(name);
    if (!f) throw new ReadError(`has no column "${name}" (${flag}); its columns: ${m.schema.fields.map((x) => x.name).join(', ')}`);
    const count = m.schema.fields.filter((x) => x.name === name).length;
    if (count > 1) throw new ReadError(`has ${count} columns named "${name}" (${flag}): which one holds the keys is ambiguous`);
    if (!usable(f.type)) throw new ReadError(`column "${name}" (${flag}) has type ${typeName(f.type)}; it must be ${wanted} column`);
  }
}

/** A column's type as a user reads it: Arrow prints a decimal as `Decimal[10e+2]`. */
function typeName(type: DataType): string {
  if (type.typeId !== Type.Decimal) return String(type);
  const { precision, scale } = type as Decimal;
  return `decimal(${precision}, ${scale})`;
}

export function checkRowGroupSizes(m: Manifest, columns?: string[]): void {
  const sizes = rowGroupBytes(m.footer.meta, columns ? new Set(columns) : undefined);
  sizes.forEach((bytes, g) => {
    if (bytes <= MAX_ROW_GROUP_BYTES) return;
    const gib = (bytes / 1024 ** 3).toFixed(1);
    throw new ReadError(
      `row group ${g} holds ${gib} GiB of uncompressed data${columns ? ' in the columns read' : ''}; ` +
        `ferry decodes one row group at a time and refuses row groups over 1 GiB (rewrite the manifest with smaller row groups)`,
    );
  });
}

/**
 * parquet-wasm matches projected names as dotted paths, by prefix: "a.b" also selects
 * field b of a struct a, so a name with a dot could bring back part of a struct. Such
 * names read every column instead (correct, just slower); exact names are picked after.
 */
export function projection(columns: string[]): string[] | undefined {
  return columns.some((c) => c.includes('.')) ? undefined : columns;
}

/** Decodes a row group; its pages must hold the rows its footer entry declares. */
export async function readRowGroup(m: Manifest, index: number, columns?: string[]): Promise<Table> {
  const what = `cannot read row group ${index}`;
  const wasm = await decoding(what, () => m.file.read({ rowGroups: [index], batchSize: BATCH_ROWS, ...(columns ? { columns } : {}) }));
  const table = await decoding(what, () => tableFromIPC(wasm.intoIPCStream()));
  const declared = m.rowGroups[index];
  if (table.numRows !== declared) {
    // Other readers take the footer's count: they would read other rows than ferry did.
    throw new ReadError(`row group ${index}: the footer says ${declared} rows, its pages hold ${table.numRows}: corrupt file`);
  }
  return table;
}

/** The table with its INT96 leaves as µs timestamps (throws Int96RangeError). */
export function convertInt96(m: Manifest, table: Table, rowBase: number, tally: Int96Tally): Table {
  if (m.int96.size === 0) return table;
  const fields = table.schema.fields.map((f) => {
    const idx = m.int96.get(f.name);
    return idx ? convertInt96Field(f, idx) : f;
  });
  const schema = new Schema(fields, table.schema.metadata);
  let base = rowBase;
  const batches = table.batches.map((batch) => {
    const children = batch.data.children.map((data, i) => {
      const f = table.schema.fields[i]!;
      const idx = m.int96.get(f.name);
      return idx ? convertInt96Column(data, f, idx, base, tally).data : data;
    });
    base += batch.numRows;
    return new RecordBatch(schema, makeData({ type: new Struct(fields), length: batch.numRows, nullCount: 0, children }));
  });
  return new Table(schema, batches);
}

export function keysOf(table: Table, keys: KeyColumns | null): { ids: (string | null)[]; urls: (string | null)[] } {
  if (!keys) {
    const none = new Array<null>(table.numRows).fill(null);
    return { ids: none, urls: [...none] };
  }
  const column = (name: string): Vector => table.getChild(name)!;
  return { ids: toStrings(column(keys.id)), urls: toStrings(column(keys.url)) };
}

/** A top-level field as written: INT96 leaves as Timestamp(µs). */
export function renewedField(m: Manifest, f: Schema['fields'][number]): Schema['fields'][number] {
  const idx = m.int96.get(f.name);
  return idx ? convertInt96Field(f, idx) : f;
}
