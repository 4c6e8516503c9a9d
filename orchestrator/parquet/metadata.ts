// The input's key-value metadata, carried into the renewed file. Two well-known entries
// describe the whole schema, and their readers believe them over the Parquet schema:
// Spark takes its row schema from `org.apache.spark.sql.parquet.row.metadata`, parquet-avro
// its record from `parquet.avro.schema`. Copied unchanged they would hide the two new
// columns, so the columns are appended to them; an entry that cannot be parsed is dropped
// (the reader then derives the schema from the Parquet schema, which is right).
// `ARROW:schema` is left out: the writer writes its own, for the schema it writes.
import type { OutputColumns } from './messages.js';

const SPARK = 'org.apache.spark.sql.parquet.row.metadata';
const AVRO = 'parquet.avro.schema';
const ARROW = 'ARROW:schema';

export function renewedMetadata(input: [string, string][], out: OutputColumns): Map<string, string> {
  const result = new Map<string, string>();
  for (const [key, value] of input) {
    if (key === ARROW) continue;
    const renewed = key === SPARK ? withSparkFields(value, out) : key === AVRO ? withAvroFields(value, out) : value;
    if (renewed !== undefined) result.set(key, renewed);
  }
  return result;
}

type Fields = { fields: unknown[] };

function appendFields(json: string, check: (v: Record<string, unknown>) => boolean, extra: unknown[]): string | undefined {
  try {
    const parsed: unknown = JSON.parse(json);
    if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as Fields).fields)) return undefined;
    if (!check(parsed as Record<string, unknown>)) return undefined;
    (parsed as Fields).fields.push(...extra);
    return JSON.stringify(parsed);
  } catch {
    return undefined;
  }
}

function withSparkFields(json: string, out: OutputColumns): string | undefined {
  return appendFields(json, (v) => v.type === 'struct', [
    { name: out.path, type: 'string', nullable: true, metadata: {} },
    { name: out.bad, type: 'boolean', nullable: false, metadata: {} },
  ]);
}

function withAvroFields(json: string, out: OutputColumns): string | undefined {
  return appendFields(json, (v) => v.type === 'record', [
    { name: out.path, type: ['null', 'string'], default: null },
    { name: out.bad, type: 'boolean' },
  ]);
}
