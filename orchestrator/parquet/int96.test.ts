// INT96 timestamps: decoded exactly, written as INT64 microseconds, refused when out of
// range, never wrapped. parquet-testing's INT96 files hold only a few plain values, so a
// richer one is made here: parquet-wasm writes the 12-byte values as FIXED_LEN_BYTE_ARRAY(12)
// (same bytes on disk), then the footer is re-declared INT96, as Spark would have written.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Field, FixedSizeBinary, List, RecordBatch, Schema, Struct, Table, Utf8, makeData, tableToIPC, vectorFromArray } from './arrow.js';
import type { Data } from './arrow.js';
import { Table as WasmTable, WriterPropertiesBuilder, writeParquet } from 'parquet-wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Oracle, parquet } from './duckdb-oracle.js';
import { decodeFooter, footerTail, leaves, schemaTree } from './footer.js';
import { ManifestError, renewManifest, scanManifest } from './index.js';
import { int96ToMicros } from './int96.js';
import { TType, i32, setField, struct, structs } from './thrift.js';
import { OUT, recorder } from './testing.js';

const EPOCH_DAY = 2_440_588;
const DAY_US = 86_400_000_000n;

function int96(day: number, nanos: bigint): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, nanos, true);
  v.setInt32(8, day, true);
  return b;
}

/** An INT96 value from epoch microseconds plus extra nanoseconds (0–999). */
function fromMicros(micros: bigint, extraNanos = 0n): Uint8Array {
  const day = micros >= 0n ? micros / DAY_US : -((-micros + DAY_US - 1n) / DAY_US);
  return int96(EPOCH_DAY + Number(day), (micros - day * DAY_US) * 1000n + extraNanos);
}

describe('int96ToMicros', () => {
  it.each([
    ['the epoch', int96(EPOCH_DAY, 0n), 0n, false],
    ['2009-03-01 00:01:00 (alltypes_plain)', int96(2454892, 60_000_000_000n), 1235865660000000n, false],
    ['one nanosecond after the epoch', int96(EPOCH_DAY, 1n), 0n, true],
    ['1495-06-16 08:00, before the nanosecond range', fromMicros(-14_975_164_800_000_000n, 250n), -14_975_164_800_000_000n, true],
    ['2500-01-01, after the nanosecond range', fromMicros(16_725_225_600_000_000n), 16_725_225_600_000_000n, false],
  ])('%s', (_, bytes, micros, sub) => {
    expect(int96ToMicros(bytes)).toMatchObject({ micros, subMicrosecond: sub });
  });

  it('refuses what no INT64 of microseconds holds (int96_from_spark.parquet row 5)', () => {
    const bytes = Uint8Array.from(Buffer.from('0060b9c76ee2ffffa8abb0f9', 'hex'));
    expect(int96ToMicros(bytes)).toMatchObject({ day: -105862232, micros: undefined });
  });
});

// Rows: in-range values with and without sub-microsecond digits, values outside the
// nanosecond range (1677–2262) that a nanosecond reader would wrap, and nulls.
const VALUES: (bigint | null)[] = [
  0n,
  1_234_567_890_123_456n,
  null,
  -14_975_164_800_000_000n, // 1495-06-16 08:00
  16_725_225_600_000_000n, // 2500-01-01
  253_402_300_799_999_999n, // 9999-12-31 23:59:59.999999
  -62_135_596_800_000_000n, // 0001-01-01
];
const EXTRA_NANOS = [0n, 789n, 0n, 1n, 0n, 999n, 0n];

let oracle: Oracle;
let dir: string;
beforeAll(async () => {
  oracle = await Oracle.open();
  dir = await mkdtemp(join(tmpdir(), 'ferry-parquet-int96-'));
});
afterAll(async () => {
  oracle.close();
  await rm(dir, { recursive: true, force: true });
});

describe('renewal of INT96 columns', () => {
  it('writes INT64 microseconds exactly, top-level and nested, and counts sub-microsecond values', async () => {
    const input = join(dir, 'spark-like.parquet');
    await writeInt96File(input, VALUES.map((v, i) => (v === null ? null : fromMicros(v, EXTRA_NANOS[i]))));
    const output = join(dir, 'spark-like.renewed.parquet');
    const info = await scanManifest(input, { id: 'id', url: 'url' }, OUT, () => {});
    expect(info.int96Columns).toEqual(['ts', 'st.ts', 'l.list.item']);
    expect(info.columns.find((c) => c.name === 'ts')?.type).toBe('Timestamp<MICROSECOND>');

    const result = await renewManifest(input, output, { id: 'id', url: 'url' }, OUT, recorder().outputsFor);
    // Three columns each hold the values with sub-microsecond digits (rows 1, 3 and 5).
    expect(result).toEqual({ rows: VALUES.length, int96: { columns: ['ts', 'st.ts', 'l.list.item'], subMicrosecondValues: 9 } });

    const rows = await oracle.rows(
      `SELECT epoch_us(ts)::VARCHAR AS top, epoch_us(st.ts)::VARCHAR AS nested, list_transform(l, x -> epoch_us(x)::VARCHAR) AS list ` +
        `FROM ${parquet(output, true)} ORDER BY file_row_number`,
    );
    expect(rows).toEqual(VALUES.map((v) => ({ top: v?.toString() ?? null, nested: v?.toString() ?? null, list: [v?.toString() ?? null] })));
    const types = await oracle.rows(`SELECT name, type, converted_type AS conv, logical_type AS logical, duckdb_type FROM parquet_schema('${output}') WHERE name = 'ts'`);
    expect(types).toEqual([
      { name: 'ts', type: 'INT64', conv: 'TIMESTAMP_MICROS', logical: null, duckdb_type: 'TIMESTAMP' },
      { name: 'ts', type: 'INT64', conv: 'TIMESTAMP_MICROS', logical: null, duckdb_type: 'TIMESTAMP' },
    ]);
    // Within the nanosecond range DuckDB reads the INT96 input itself the same way.
    const inRange = await oracle.rows(
      `SELECT count(*)::INTEGER AS n FROM ${parquet(input, true)} a JOIN ${parquet(output, true)} b USING (file_row_number) ` +
        `WHERE a.file_row_number IN (0, 1, 2) AND a.ts IS DISTINCT FROM b.ts`,
    );
    expect(inRange).toEqual([{ n: 0 }]);
  });

  it('refuses a value outside INT64 microseconds, in scan already, naming file, column and row', async () => {
    const input = join(dir, 'out-of-range.parquet');
    const bad = Uint8Array.from(Buffer.from('0060b9c76ee2ffffa8abb0f9', 'hex'));
    await writeInt96File(input, [fromMicros(0n), null, fromMicros(1n), bad]);
    for (const call of [
      () => scanManifest(input, { id: 'id', url: 'url' }, OUT, () => {}),
      () => renewManifest(input, join(dir, 'never.parquet'), { id: 'id', url: 'url' }, OUT, recorder().outputsFor),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ManifestError);
      expect((error as Error).message).toMatch(new RegExp(`^${input}: column "ts" row 3: INT96 timestamp .*refusing rather than wrapping it$`));
    }
  });
});

/**
 * id, url, ts: INT96, st: struct<ts: INT96>, l: list<INT96>, three rows per row group.
 * Written as FIXED_LEN_BYTE_ARRAY(12), then the footer says INT96.
 */
async function writeInt96File(file: string, values: (Uint8Array | null)[]): Promise<void> {
  const n = values.length;
  const fsb = (): Data<FixedSizeBinary> => {
    const bytes = new Uint8Array(12 * n);
    const validity = new Uint8Array(Math.ceil(n / 8));
    values.forEach((v, i) => {
      if (!v) return;
      bytes.set(v, i * 12);
      validity[i >> 3]! |= 1 << (i & 7);
    });
    const nulls = values.filter((v) => v === null).length;
    return makeData({ type: new FixedSizeBinary(12), length: n, nullCount: nulls, nullBitmap: validity, data: bytes });
  };
  const tsField = new Field('ts', new FixedSizeBinary(12), true);
  const stType = new Struct([tsField]);
  const listType = new List(new Field('item', new FixedSizeBinary(12), true));
  const schema = new Schema([
    new Field('id', new Utf8(), true),
    new Field('url', new Utf8(), true),
    tsField,
    new Field('st', stType, true),
    new Field('l', listType, true),
  ]);
  const children = [
    vectorFromArray(values.map((_, i) => `id-${i}`), new Utf8()).data[0]!,
    vectorFromArray(values.map((_, i) => `https://x/${i}`), new Utf8()).data[0]!,
    fsb(),
    makeData({ type: stType, length: n, nullCount: 0, children: [fsb()] }),
    makeData({ type: listType, length: n, nullCount: 0, valueOffsets: Int32Array.from({ length: n + 1 }, (_, i) => i), child: fsb() }),
  ];
  const table = new Table(schema, [new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children }))]);
  const props = new WriterPropertiesBuilder().setMaxRowGroupSize(3).build();
  const bytes = writeParquet(WasmTable.fromIPCStream(tableToIPC(table, 'stream')), props);
  await writeFile(file, declareInt96(bytes));
}

/** The file with its FIXED_LEN_BYTE_ARRAY(12) leaves re-declared as INT96. */
function declareInt96(file: Uint8Array): Uint8Array {
  const length = new DataView(file.buffer, file.byteOffset + file.length - 8, 4).getUint32(0, true);
  const start = file.length - 8 - length;
  const meta = decodeFooter(file.subarray(start, file.length - 8));
  for (const leaf of leaves(schemaTree(meta))) {
    if (leaf.physicalType !== 7) continue;
    setField(leaf.element, 1, { t: TType.I32, v: 3 });
    setField(leaf.element, 2, undefined);
  }
  for (const rowGroup of structs(meta, 4)) {
    for (const chunk of structs(rowGroup, 1)) {
      const cmd = struct(chunk, 3);
      if (!cmd || i32(cmd, 1) !== 7) continue;
      setField(cmd, 1, { t: TType.I32, v: 3 });
      setField(cmd, 12, undefined);
      setField(chunk, 6, undefined);
      setField(chunk, 7, undefined);
    }
  }
  setField(meta, 5, undefined); // the ARROW:schema would still say FixedSizeBinary
  const tail = footerTail(meta);
  const out = new Uint8Array(start + tail.length);
  out.set(file.subarray(0, start));
  out.set(tail, start);
  return out;
}
