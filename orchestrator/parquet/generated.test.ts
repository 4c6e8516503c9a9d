// A manifest written by another implementation (DuckDB), several row groups, every kind
// of column a real manifest carries: scanned and renewed, then checked value by value.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Oracle, parquet } from './duckdb-oracle.js';
import { renewManifest, scanManifest } from './index.js';
import { OUT, plannedBad, plannedPath, recorder } from './testing.js';

const ROWS = 5000;

// Row 0 has an empty id, rows ≡ 3 (mod 97) a null id, rows ≡ 0 (mod 89) a null url.
const MANIFEST_SQL = `
  SELECT
    CASE WHEN i = 0 THEN '' WHEN i % 97 = 3 THEN NULL ELSE 'id-' || i || CASE WHEN i % 10 = 1 THEN ' é✓' ELSE '' END END AS id,
    CASE WHEN i % 97 = 3 THEN NULL ELSE (i - 2500) * 3689348814741910 END::BIGINT AS big_id,
    CASE WHEN i % 97 = 3 THEN NULL ELSE (i - 2500) * 3689348814741 END::DECIMAL(18, 0) AS number_id,
    CASE WHEN i % 97 = 3 THEN NULL ELSE ('-9999999999999999999999999999' || lpad(i::VARCHAR, 10, '0'))::DECIMAL(38, 0) END AS wide_number_id,
    CASE WHEN i % 89 = 0 THEN NULL ELSE 'https://img.example.com/a/' || i || '.jpg?sig=' || md5(i::VARCHAR) END AS media_path,
    'caption ' || repeat('x', i % 13) AS caption,
    (i * 7)::INTEGER AS n32,
    (i % 3)::TINYINT AS n8,
    (i * 1000)::UBIGINT AS u64,
    [i, i + 1, NULL] AS ints,
    CASE WHEN i % 4 = 0 THEN NULL ELSE ['a' || i, 'b'] END AS strs,
    TIMESTAMP '2024-02-29 12:00:00.123456' + INTERVAL (i) SECOND AS ts_us,
    make_timestamp_ns(946684799123456789 + i * 60000000001) AS ts_ns,
    TIMESTAMPTZ '2024-01-01 00:00:00+00' + INTERVAL (i) HOUR AS ts_tz,
    (TIMESTAMP '2024-01-01' + INTERVAL (i) DAY)::TIMESTAMP_MS AS ts_ms,
    DATE '1970-01-01' + i::INTEGER AS day,
    TIME '12:34:56.789' + INTERVAL (i) SECOND AS tod,
    (TIME '01:02:03' + INTERVAL (i) SECOND)::TIMETZ AS tod_tz,
    INTERVAL (i) DAY + INTERVAL (i) MICROSECOND AS span,
    ('00000000-0000-4000-8000-' || lpad(i::VARCHAR, 12, '0'))::UUID AS uid,
    ('{"n":' || i || '}')::JSON AS doc,
    CASE WHEN i % 5 = 0 THEN NULL WHEN i % 7 = 0 THEN 'NaN'::DOUBLE ELSE i / 7.0 END::DOUBLE AS maybe_double,
    (i / 3.0)::FLOAT AS f32,
    (i * 1.125)::DECIMAL(9, 3) AS dec9,
    (i * 12345678.9012)::DECIMAL(18, 4) AS dec18,
    ('12345678901234567890.' || i)::DECIMAL(38, 10) AS dec38,
    9007199254740993 + i AS beyond_2_53,
    -9223372036854775808 + i AS near_min,
    {'a': i, 'b': 'x' || i, 'c': [i::DOUBLE]} AS st,
    MAP {'k' || i: i, 'z': NULL} AS mp,
    ('\\x00\\xFF' || i::VARCHAR)::BLOB AS raw,
    i % 2 = 0 AS flag,
    CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 11) > 5 END AS maybe_flag
  FROM range(${ROWS}) r(i)`;

let oracle: Oracle;
let dir: string;
let manifest: string;

beforeAll(async () => {
  oracle = await Oracle.open();
  dir = await mkdtemp(join(tmpdir(), 'ferry-parquet-generated-'));
  manifest = join(dir, 'manifest.parquet');
  await oracle.run(`COPY (${MANIFEST_SQL}) TO '${manifest}' (FORMAT parquet, ROW_GROUP_SIZE 1000)`);
});
afterAll(async () => {
  oracle.close();
  await rm(dir, { recursive: true, force: true });
});

describe.each([
  { keys: { id: 'id', url: 'media_path' } },
  { keys: { id: 'big_id', url: 'media_path' } },
  // Oracle NUMBER(p) keys as Spark reads them over JDBC: decimals of scale 0, stored as
  // INT64 (precision 18) and as fixed-length bytes (38).
  { keys: { id: 'number_id', url: 'media_path' } },
  { keys: { id: 'wide_number_id', url: 'media_path' } },
])('id column $keys.id', ({ keys }) => {
  it('scans ids and urls row group by row group, as DuckDB reads them', async () => {
    const groups: number[] = [];
    const ids: (string | null)[] = [];
    const urls: (string | null)[] = [];
    const info = await scanManifest(manifest, keys, OUT, async (i, u) => {
      groups.push(i.length);
      ids.push(...i);
      urls.push(...u);
      await new Promise((r) => setTimeout(r, 1)); // an async consumer is awaited
    });
    const rowGroups = await oracle.rows(
      `SELECT row_group_id, max(row_group_num_rows)::INTEGER AS n FROM parquet_metadata('${manifest}') GROUP BY 1 ORDER BY 1`,
    );
    expect(groups).toEqual(rowGroups.map((r) => r.n));
    expect(groups.length).toBeGreaterThan(1);
    expect(info.rows).toBe(ROWS);
    expect(info.rowGroups).toBe(groups.length);
    expect(info.int96Columns).toEqual([]);
    expect({ ids, urls }).toEqual(await oracle.keysAsText(manifest, keys));
    if (keys.id === 'id') {
      expect(ids[0]).toBe('');
      expect(ids[3]).toBeNull();
      expect(ids[11]).toBe('id-11 é✓');
    } else if (keys.id === 'big_id') {
      expect(ids[0]).toBe(String(-2500n * 3689348814741910n));
    } else if (keys.id === 'number_id') {
      expect(ids[0]).toBe(String(-2500n * 3689348814741n));
    } else {
      expect(ids[12]).toBe('-99999999999999999999999999990000000012');
    }
  });

  it('renews every value exactly and appends the two columns', async () => {
    const output = join(dir, `renewed-${keys.id}.parquet`);
    const rec = recorder();
    const result = await renewManifest(manifest, output, keys, OUT, async (ids, urls) => {
      await new Promise((r) => setImmediate(r));
      return rec.outputsFor(ids, urls);
    });
    expect(result).toEqual({ rows: ROWS, int96: { columns: [], subMicrosecondValues: 0 } });
    expect({ ids: rec.ids, urls: rec.urls }).toEqual(await oracle.keysAsText(manifest, keys));

    const before = await oracle.columns(manifest);
    const after = await oracle.columns(output);
    expect(after).toEqual([...before, { name: OUT.path, type: 'VARCHAR' }, { name: OUT.bad, type: 'BOOLEAN' }]);
    expect((await oracle.leaves(output)).slice(0, -2)).toEqual(await oracle.leaves(manifest));
    const differences = await oracle.differences(manifest, output, before.map((c) => c.name));
    expect(differences).toEqual(Object.fromEntries(before.map((c) => [c.name, 0])));

    const outputs = await oracle.rows(`SELECT ${OUT.path} AS p, ${OUT.bad} AS b FROM ${parquet(output, true)} ORDER BY file_row_number`);
    expect(outputs).toEqual(Array.from({ length: ROWS }, (_, i) => ({ p: plannedPath(i), b: plannedBad(i) })));
    // The appended columns' Parquet types: nullable UTF-8 and a REQUIRED boolean.
    const schema = await oracle.rows(
      `SELECT name, type, repetition_type AS rep, converted_type AS conv FROM parquet_schema('${output}') WHERE name IN ('${OUT.path}', '${OUT.bad}')`,
    );
    expect(schema).toEqual([
      { name: OUT.path, type: 'BYTE_ARRAY', rep: 'OPTIONAL', conv: 'UTF8' },
      { name: OUT.bad, type: 'BOOLEAN', rep: 'REQUIRED', conv: null },
    ]);
  });
});

it('renews a manifest without rows: the schema and the two columns', async () => {
  const input = join(dir, 'no-rows.parquet');
  const output = join(dir, 'no-rows.renewed.parquet');
  await oracle.run(`COPY (SELECT * FROM (${MANIFEST_SQL}) LIMIT 0) TO '${input}' (FORMAT parquet)`);
  const rec = recorder();
  const result = await renewManifest(input, output, { id: 'id', url: 'media_path' }, OUT, rec.outputsFor);
  expect(result.rows).toBe(0);
  expect(await oracle.count(output)).toBe(0);
  const before = await oracle.columns(input);
  expect(await oracle.columns(output)).toEqual([...before, { name: OUT.path, type: 'VARCHAR' }, { name: OUT.bad, type: 'BOOLEAN' }]);
});

it('reads key columns whose names hold dots, beside a struct sharing the prefix', async () => {
  const input = join(dir, 'dots.parquet');
  await oracle.run(
    `COPY (SELECT 'i' || i AS "my.id", 'https://x/' || i AS "a.b", {'b': i} AS a FROM range(5) r(i)) TO '${input}' (FORMAT parquet)`,
  );
  const keys = { id: 'my.id', url: 'a.b' };
  const scanned: (string | null)[] = [];
  await scanManifest(input, keys, OUT, (ids, urls) => {
    scanned.push(...ids, ...urls);
  });
  expect(scanned).toEqual(['i0', 'i1', 'i2', 'i3', 'i4', ...[0, 1, 2, 3, 4].map((i) => `https://x/${i}`)]);
  const output = join(dir, 'dots.renewed.parquet');
  await renewManifest(input, output, keys, OUT, recorder().outputsFor);
  expect(await oracle.differences(input, output, ['my.id', 'a.b', 'a'])).toEqual({ 'my.id': 0, 'a.b': 0, a: 0 });
});
