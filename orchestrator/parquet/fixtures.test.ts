// Every file of parquet-testing (written by parquet-mr, Arrow C++, Impala, Spark,
// parquet-rs…) renewed, then compared with the original through DuckDB, column by column
// and row by row.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from './arrow.js';
import type { Table } from './arrow.js';
import { ParquetFile } from 'parquet-wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Oracle, parquet } from './duckdb-oracle.js';
import { ManifestError, renewManifest, scanManifest } from './index.js';
import type { KeyColumns } from './index.js';
import { FIXTURES, OUT, plannedBad, plannedPath, recorder, renewWithoutKeys } from './testing.js';

type Case = {
  file: string;
  /** Absent where the file has no text column to serve as url: renewed without keys. */
  keys?: KeyColumns;
  /** DuckDB cannot read the original (Hadoop LZ4 framing): compare with parquet-wasm. */
  duckdbCannotRead?: true;
  /** Leaves whose Parquet annotation legitimately changes, by name, beyond INT96's. */
  leafChanges?: Record<string, Record<string, unknown>>;
};

const RENEWED: Case[] = [
  { file: 'alltypes_dictionary.parquet', keys: { id: 'id', url: 'string_col' } },
  { file: 'alltypes_plain.parquet', keys: { id: 'id', url: 'string_col' } },
  { file: 'alltypes_plain.snappy.parquet', keys: { id: 'id', url: 'string_col' } },
  { file: 'alltypes_tiny_pages.parquet', keys: { id: 'id', url: 'string_col' } },
  // The writer stores DECIMAL(4,2) as INT32 rather than BYTE_ARRAY: same logical type.
  { file: 'byte_array_decimal.parquet', leafChanges: { value: { type: 'INT32', logical_type: 'DecimalType(scale=2, precision=4)' } } },
  { file: 'byte_stream_split.zstd.parquet' },
  { file: 'concatenated_gzip_members.parquet' },
  { file: 'datapage_v2.snappy.parquet', keys: { id: 'b', url: 'a' } },
  { file: 'delta_binary_packed.parquet' },
  { file: 'delta_byte_array.parquet', keys: { id: 'c_customer_id', url: 'c_login' } },
  { file: 'delta_encoding_optional_column.parquet', keys: { id: 'c_customer_sk', url: 'c_email_address' } },
  { file: 'delta_length_byte_array.parquet', keys: { id: 'FRUIT', url: 'FRUIT' } },
  { file: 'fixed_length_decimal.parquet' },
  { file: 'hadoop_lz4_compressed.parquet', keys: { id: 'c0', url: 'c1' }, duckdbCannotRead: true },
  { file: 'list_columns.parquet' },
  { file: 'lz4_raw_compressed.parquet', keys: { id: 'c0', url: 'c1' } },
  { file: 'nested_lists.snappy.parquet' },
  { file: 'nested_maps.snappy.parquet' },
  { file: 'nested_structs.rust.parquet' },
  { file: 'nonnullable.impala.parquet' },
  { file: 'null_list.parquet' },
  { file: 'nullable.impala.parquet' },
  { file: 'nulls.snappy.parquet' },
  { file: 'rle_boolean_encoding.parquet' },
];

const REFUSED: { file: string; message: RegExp }[] = [
  // Row 5 is a Julian day ~294,500 years BC: no INT64 count of microseconds holds it.
  { file: 'int96_from_spark.parquet', message: /column "a" row 5: INT96 timestamp .* outside the range of INT64 microsecond timestamps/ },
  // Strings of 2 GiB uncompressed in one row group (the wasm decoder panics on them).
  { file: 'large_string_map.brotli.parquet', message: /row group 0 holds 2\.0 GiB of uncompressed data/ },
];

let oracle: Oracle;
let dir: string;
beforeAll(async () => {
  oracle = await Oracle.open();
  dir = await mkdtemp(join(tmpdir(), 'ferry-parquet-fixtures-'));
});
afterAll(async () => {
  oracle.close();
  await rm(dir, { recursive: true, force: true });
});

it('covers every file of parquet-testing', async () => {
  const files = (await readdir(FIXTURES)).filter((f) => f.endsWith('.parquet')).sort();
  expect([...RENEWED.map((c) => c.file), ...REFUSED.map((c) => c.file)].sort()).toEqual(files);
});

describe.concurrent('renewed exactly', () => {
  it.each(RENEWED)('$file', async ({ file, keys, duckdbCannotRead, leafChanges }) => {
    const input = join(FIXTURES, file);
    const output = join(dir, file);
    const rec = recorder();
    const result = keys ? await renewManifest(input, output, keys, OUT, rec.outputsFor) : await renewWithoutKeys(input, output);
    const rows = await oracle.count(output);
    expect(result.rows).toBe(rows);

    const after = await oracle.columns(output);
    expect(after.slice(-2)).toEqual([
      { name: OUT.path, type: 'VARCHAR' },
      { name: OUT.bad, type: 'BOOLEAN' },
    ]);
    const outputs = await oracle.rows(`SELECT ${OUT.path} AS p, ${OUT.bad} AS b FROM ${parquet(output, true)} ORDER BY file_row_number`);
    expect(outputs).toEqual(Array.from({ length: rows }, (_, i) => ({ p: plannedPath(i), b: plannedBad(i) })));

    if (duckdbCannotRead) {
      await expectSameAsParquetWasm(input, output);
      return;
    }
    const before = await oracle.columns(input);
    expect(after.slice(0, -2)).toEqual(before);
    const differences = await oracle.differences(input, output, before.map((c) => c.name));
    expect(differences).toEqual(Object.fromEntries(before.map((c) => [c.name, 0])));
    const leaves = (await oracle.leaves(input)).map((leaf) => expectedLeaf(leaf, leafChanges));
    expect((await oracle.leaves(output)).slice(0, -2)).toEqual(leaves);

    if (keys) {
      const expected = await oracle.keysAsText(input, keys);
      expect({ ids: rec.ids, urls: rec.urls }).toEqual(expected);
      const scanned = { ids: [] as (string | null)[], urls: [] as (string | null)[] };
      const info = await scanManifest(input, keys, OUT, (ids, urls) => {
        scanned.ids.push(...ids);
        scanned.urls.push(...urls);
      });
      expect(scanned).toEqual(expected);
      expect(info.rows).toBe(rows);
      expect(info.columns.map((c) => c.name)).toEqual(before.map((c) => c.name));
    }
  });
});

describe.concurrent('refused with a ManifestError', () => {
  it.each(REFUSED)('$file', async ({ file, message }) => {
    const input = join(FIXTURES, file);
    const output = join(dir, `refused-${file}`);
    const error = await renewWithoutKeys(input, output).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).file).toBe(input);
    expect((error as Error).message).toContain(input);
    expect((error as Error).message).toMatch(message);
    await expect(readdir(dir)).resolves.not.toContain(`refused-${file}`);
  });
});

/** INT96 becomes INT64 with ConvertedType TIMESTAMP_MICROS (DuckDB: TIMESTAMP either way). */
function expectedLeaf(leaf: Record<string, unknown>, changes: Case['leafChanges']): Record<string, unknown> {
  if (leaf.type === 'INT96') return { ...leaf, type: 'INT64', converted_type: 'TIMESTAMP_MICROS' };
  return { ...leaf, ...changes?.[String(leaf.name)] };
}

/** The original read by parquet-wasm against the renewed file read by DuckDB and by parquet-wasm. */
async function expectSameAsParquetWasm(input: string, output: string): Promise<void> {
  const original = await readWhole(input);
  const renewed = await readWhole(output);
  for (const field of original.schema.fields) {
    const a = original.getChild(field.name)!.toArray() as unknown[];
    const b = renewed.getChild(field.name)!.toArray() as unknown[];
    expect(String(renewed.schema.fields.find((f) => f.name === field.name)?.type)).toBe(String(field.type));
    expect(Array.from(b, text)).toEqual(Array.from(a, text));
  }
}

async function readWhole(file: string): Promise<Table> {
  const { openAsBlob } = await import('node:fs');
  const pf = await ParquetFile.fromFile(await openAsBlob(file));
  return tableFromIPC((await pf.read()).intoIPCStream());
}

function text(v: unknown): string {
  return typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? `bytes:${Buffer.from(v).toString('hex')}` : JSON.stringify(v);
}
