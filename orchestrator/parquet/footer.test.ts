// The hand-written Thrift compact codec and footer helpers, against the footers of files
// written by parquet-mr, Arrow C++, Impala, Spark and parquet-rs.
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeFooter, encodeFooter, int96Paths, leaves, readFooter, rowGroupRows, schemaTree, withInt96AsBytes } from './footer.js';
import { renewedMetadata } from './metadata.js';
import { CompactReader, CompactWriter, TType } from './thrift.js';
import type { TStruct } from './thrift.js';
import { FIXTURES } from './testing.js';

async function footerOf(file: string) {
  const fh = await open(file);
  try {
    const footer = await readFooter(fh);
    const raw = new Uint8Array(footer.fileSize - 8 - footer.start);
    await fh.read(raw, 0, raw.length, footer.start);
    return { footer, raw };
  } finally {
    await fh.close();
  }
}

describe('Thrift compact codec', () => {
  it('re-encodes every parquet-testing footer byte for byte', async () => {
    const files = (await readdir(FIXTURES)).filter((f) => f.endsWith('.parquet'));
    expect(files.length).toBe(26);
    for (const file of files) {
      const { footer, raw } = await footerOf(join(FIXTURES, file));
      expect(Buffer.from(encodeFooter(footer.meta)).equals(Buffer.from(raw)), file).toBe(true);
    }
  });

  it('round-trips every wire type, long field deltas and long lists', () => {
    const s: TStruct = {
      t: TType.Struct,
      fields: [
        { id: 1, value: { t: TType.True, v: true } },
        { id: 2, value: { t: TType.False, v: false } },
        { id: 3, value: { t: TType.Byte, v: -5 } },
        { id: 4, value: { t: TType.I16, v: -300 } },
        { id: 5, value: { t: TType.I32, v: -2147483648 } },
        { id: 6, value: { t: TType.I64, v: -(2n ** 63n) } },
        { id: 7, value: { t: TType.Double, v: 1.5 } },
        { id: 40, value: { t: TType.Binary, v: new TextEncoder().encode('é') } },
        { id: 41, value: { t: TType.List, elem: TType.I32, items: Array.from({ length: 20 }, (_, v) => ({ t: TType.I32, v })) } },
        { id: 42, value: { t: TType.List, elem: TType.True, items: [{ t: TType.True, v: true }, { t: TType.False, v: false }] } },
        { id: 43, value: { t: TType.Map, key: TType.Binary, val: TType.I64, entries: [[{ t: TType.Binary, v: new Uint8Array([1]) }, { t: TType.I64, v: 7n }]] } },
        { id: 44, value: { t: TType.Struct, fields: [{ id: 300, value: { t: TType.I32, v: 1 } }] } },
      ],
    };
    const w = new CompactWriter();
    w.writeStruct(s);
    expect(new CompactReader(w.bytes()).readStruct()).toEqual(s);
  });

  it.each([
    ['truncated', [0x15, 0x02]],
    ['an unknown type', [0x1d]],
    ['a list longer than the footer', [0x19, 0xf5, 0xff, 0xff, 0xff, 0x0f]],
  ])('refuses %s', (_, bytes) => {
    expect(() => decodeFooter(Uint8Array.from(bytes))).toThrow(/corrupt footer/);
  });
});

describe('footer helpers', () => {
  it('finds INT96 leaves and re-declares them as FIXED_LEN_BYTE_ARRAY(12)', async () => {
    const { footer } = await footerOf(join(FIXTURES, 'alltypes_plain.parquet'));
    expect(int96Paths(footer.meta)).toEqual(['timestamp_col']);
    const patched = withInt96AsBytes(footer.meta);
    expect(int96Paths(patched)).toEqual([]);
    const leaf = leaves(schemaTree(patched)).find((l) => l.name === 'timestamp_col')!;
    expect(leaf.physicalType).toBe(7);
    expect(int96Paths(footer.meta)).toEqual(['timestamp_col']); // the input is not modified
  });

  it('walks nested schemas leaf by leaf', async () => {
    const { footer } = await footerOf(join(FIXTURES, 'nested_maps.snappy.parquet'));
    expect(leaves(schemaTree(footer.meta)).map((l) => l.path.join('.'))).toEqual([
      'a.key_value.key',
      'a.key_value.value.key_value.key',
      'a.key_value.value.key_value.value',
      'b',
      'c',
    ]);
    expect(rowGroupRows(footer.meta)).toEqual([6]);
  });
});

describe('renewed key-value metadata', () => {
  const out = { path: 'updated_media_path', bad: 'bad_image' };

  it('appends the output columns to the Spark and Avro schemas and drops ARROW:schema', () => {
    const spark = JSON.stringify({ type: 'struct', fields: [{ name: 'a', type: 'string', nullable: true, metadata: {} }] });
    const avro = JSON.stringify({ type: 'record', name: 'r', fields: [{ name: 'a', type: 'string' }] });
    const result = renewedMetadata(
      [
        ['org.apache.spark.sql.parquet.row.metadata', spark],
        ['parquet.avro.schema', avro],
        ['ARROW:schema', '/////'],
        ['pandas', '{"columns": []}'],
      ],
      out,
    );
    expect([...result.keys()]).toEqual(['org.apache.spark.sql.parquet.row.metadata', 'parquet.avro.schema', 'pandas']);
    expect(JSON.parse(result.get('org.apache.spark.sql.parquet.row.metadata')!).fields.map((f: { name: string }) => f.name)).toEqual([
      'a',
      'updated_media_path',
      'bad_image',
    ]);
    expect(JSON.parse(result.get('parquet.avro.schema')!).fields).toEqual([
      { name: 'a', type: 'string' },
      { name: 'updated_media_path', type: ['null', 'string'], default: null },
      { name: 'bad_image', type: 'boolean' },
    ]);
    expect(result.get('pandas')).toBe('{"columns": []}');
  });

  it('drops a schema entry it cannot parse rather than keep a wrong one', () => {
    const result = renewedMetadata([['org.apache.spark.sql.parquet.row.metadata', '{not json']], out);
    expect(result.size).toBe(0);
  });
});
