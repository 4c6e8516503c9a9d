/**
 * The demo's manifests: Parquet files with an id, a URL and extra columns of several
 * types, written with apache-arrow and parquet-wasm.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Field, Float64, List, Table, TimestampMicrosecond, Utf8, tableToIPC, vectorFromArray } from '../parquet/arrow.js';
import { Compression, Table as WasmTable, WriterPropertiesBuilder, writeParquet } from '../parquet/wasm.js';

export type DemoRow = { id: string; url: string | null; title: string; price: number | null; tags: string[]; created: Date };

export async function writeDemoManifest(file: string, rows: DemoRow[]): Promise<void> {
  const table = new Table({
    id: vectorFromArray(rows.map((r) => r.id), new Utf8()),
    media_path: vectorFromArray(rows.map((r) => r.url), new Utf8()),
    title: vectorFromArray(rows.map((r) => r.title), new Utf8()),
    price: vectorFromArray(rows.map((r) => r.price), new Float64()),
    tags: vectorFromArray(rows.map((r) => r.tags), new List(new Field('item', new Utf8(), true))),
    created_at: vectorFromArray(rows.map((r) => r.created), new TimestampMicrosecond()),
  });
  const wasm = WasmTable.fromIPCStream(tableToIPC(table, 'stream'));
  const props = new WriterPropertiesBuilder().setCompression(Compression.ZSTD).build();
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, writeParquet(wasm, props));
}
