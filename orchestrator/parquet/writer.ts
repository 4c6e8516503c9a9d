// Writing the renewed manifest, for the codec thread: each row group read, extended with
// the two output columns the main thread returns for its keys, and streamed through
// parquet-wasm's writer to the file; then the footer's annotations are restored.
import { open, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { Bool, Field, RecordBatch, Schema, Struct, Table, Utf8, makeBuilder, makeData, tableToIPC } from './arrow.js';
import type { Data } from './arrow.js';
import { Compression, WriterPropertiesBuilder, Table as WasmTable, transformParquetStream } from './wasm.js';
import type { RecordBatch as WasmRecordBatch } from './wasm.js';
import { footerTail, int96Paths, keyValueMetadata, readFooter, restoreAnnotations as restoreFooterAnnotations, rowGroupRows } from './footer.js';
import type { Footer } from './footer.js';
import { oneLine } from './errors.js';
import type { Int96Tally } from './int96.js';
import type { FromThread, OutputColumns, RenewResult, ThreadRequest, ToThread } from './messages.js';
import { renewedMetadata } from './metadata.js';
import { ReadError, checkColumns, checkRowGroupSizes, convertInt96, keysOf, readRowGroup, renewedField } from './reader.js';
import type { Manifest } from './reader.js';

/**
 * The writer's row-group ceiling. Below it, output row groups hold as many rows as the
 * input's largest: parquet-wasm's stream writer cuts by row count and cannot be told to
 * flush at the input's boundaries, so the rows and their order are the input's, the
 * row-group boundaries need not be.
 */
const MAX_ROW_GROUP_ROWS = 1 << 20;

export type Ask = (m: FromThread) => Promise<ToThread>;

/** Builds the two output columns of one batch. */
function outputData(paths: (string | null)[], bad: Uint8Array, from: number, length: number): [Data, Data] {
  const encoder = new TextEncoder();
  const offsets = new Int32Array(length + 1);
  const parts: Uint8Array[] = [];
  const validity = new Uint8Array(Math.ceil(length / 8));
  const bits = new Uint8Array(Math.ceil(length / 8));
  let bytes = 0;
  let nulls = 0;
  for (let i = 0; i < length; i++) {
    const p = paths[from + i];
    if (p === null || p === undefined) nulls++;
    else {
      const enc = encoder.encode(p);
      parts.push(enc);
      bytes += enc.length;
      validity[i >> 3]! |= 1 << (i & 7);
    }
    offsets[i + 1] = bytes;
    if (bad[from + i]) bits[i >> 3]! |= 1 << (i & 7);
  }
  const values = new Uint8Array(bytes);
  let at = 0;
  for (const part of parts) {
    values.set(part, at);
    at += part.length;
  }
  return [
    makeData({ type: new Utf8(), length, nullCount: nulls, nullBitmap: nulls > 0 ? validity : null, valueOffsets: offsets, data: values }),
    makeData({ type: new Bool(), length, nullCount: 0, data: bits }),
  ];
}

function withOutputs(table: Table, schema: Schema, paths: (string | null)[], bad: Uint8Array): Table {
  let from = 0;
  const batches = table.batches.map((batch) => {
    const extra = outputData(paths, bad, from, batch.numRows);
    from += batch.numRows;
    const children = [...batch.data.children, ...extra];
    return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: batch.numRows, nullCount: 0, children }));
  });
  return new Table(schema, batches);
}

function outputSchema(m: Manifest, out: OutputColumns): Schema {
  const fields = m.schema.fields.map((f) => renewedField(m, f));
  fields.push(new Field(out.path, new Utf8(), true), new Field(out.bad, new Bool(), false));
  return new Schema(fields, m.schema.metadata);
}

/** Reads, extends and hands over row groups one at a time, as the writer asks for them. */
function renewedBatches(
  m: Manifest,
  req: Extract<ThreadRequest, { op: 'renew' }>,
  ask: Ask,
  tally: Int96Tally,
  state: { rows: number; failure?: unknown },
): ReadableStream<WasmRecordBatch> {
  const groups = rowGroupRows(m.footer.meta);
  const schema = outputSchema(m, req.out);
  let g = 0;
  return new ReadableStream<WasmRecordBatch>({
    pull: async (controller) => {
      try {
        // An empty row group yields no batch; read on until one does or the file ends.
        for (;;) {
          if (g >= groups.length) {
            // A file without rows still needs its schema written: send one empty batch.
            if (state.rows === 0 && g === groups.length) {
              g++;
              enqueueTable(controller, new Table(schema, [new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: 0, nullCount: 0, children: emptyChildren(schema) }))]));
            }
            controller.close();
            return;
          }
          const table = convertInt96(m, await readRowGroup(m, g, undefined), state.rows, tally);
          const { ids, urls } = keysOf(table, req.keys);
          const answer = await ask({ kind: 'rowGroup', index: g, ids, urls });
          if (answer.kind !== 'outputs') throw new Error(`expected outputs, got ${answer.kind}`);
          g++;
          state.rows += table.numRows;
          if (table.numRows === 0) continue;
          enqueueTable(controller, withOutputs(table, schema, answer.paths, answer.bad));
          return;
        }
      } catch (e) {
        // Keep our error: the writer only sees that its input stream failed.
        state.failure = e;
        controller.error(e);
      }
    },
  });
}

/** Zero-length arrays of each field's type; builders give nested types valid offsets. */
function emptyChildren(schema: Schema): Data[] {
  return schema.fields.map((f) => makeBuilder({ type: f.type }).finish().flush());
}

function enqueueTable(controller: ReadableStreamDefaultController<WasmRecordBatch>, table: Table): void {
  const wasm = WasmTable.fromIPCStream(tableToIPC(table, 'stream'));
  for (const batch of wasm.recordBatches()) controller.enqueue(batch);
  wasm.free();
}

export async function renew(m: Manifest, req: Extract<ThreadRequest, { op: 'renew' }>, ask: Ask): Promise<RenewResult> {
  checkColumns(m, req.keys, req.out);
  checkRowGroupSizes(m);
  const tally: Int96Tally = { subMicrosecondValues: 0 };
  const state: { rows: number; failure?: unknown } = { rows: 0 };
  const largest = Math.max(1, ...rowGroupRows(m.footer.meta));
  const props = new WriterPropertiesBuilder()
    .setCompression(Compression.ZSTD)
    .setMaxRowGroupSize(Math.min(largest, MAX_ROW_GROUP_ROWS))
    .setKeyValueMetadata(renewedMetadata(keyValueMetadata(m.footer.meta), req.out))
    .build();
  const out = await open(req.outFile, 'w+').catch((e: NodeJS.ErrnoException) => {
    throw new ReadError(`cannot write ${req.outFile}: ${e.code ?? oneLine(e)}`);
  });
  try {
    let chunks: ReadableStreamDefaultReader<Uint8Array>;
    try {
      const bytes = await transformParquetStream(renewedBatches(m, req, ask, tally, state), props);
      chunks = (bytes as ReadableStream<Uint8Array>).getReader();
    } catch (e) {
      throw state.failure ?? new ReadError(`cannot write the renewed Parquet: ${oneLine(e)}`, true);
    }
    await copyTo(out, chunks, req.outFile, state);
    await restoreAnnotations(out, m.footer);
  } catch (e) {
    await out.close();
    await rm(req.outFile, { force: true });
    throw e;
  }
  await out.close();
  return { rows: state.rows, int96: { columns: int96Paths(m.footer.meta), subMicrosecondValues: tally.subMicrosecondValues } };
}

/** Drains the writer's output into the file; tells the writer's failures from the disk's. */
async function copyTo(out: FileHandle, chunks: ReadableStreamDefaultReader<Uint8Array>, path: string, state: { failure?: unknown }): Promise<void> {
  for (;;) {
    let next: Awaited<ReturnType<typeof chunks.read>>;
    try {
      next = await chunks.read();
    } catch (e) {
      throw state.failure ?? new ReadError(`cannot write the renewed Parquet: ${oneLine(e)}`, true);
    }
    if (next.done) break;
    await out.write(next.value).catch((e: NodeJS.ErrnoException) => {
      throw new ReadError(`cannot write ${path}: ${e.code ?? oneLine(e)}`);
    });
  }
  if (state.failure) throw state.failure;
}

/** See footer.ts restoreAnnotations: rewrites the written file's footer in place if needed. */
async function restoreAnnotations(out: FileHandle, input: Footer): Promise<void> {
  const written = await readFooter(out);
  if (restoreFooterAnnotations(input.meta, written.meta) === 0) return;
  const tail = footerTail(written.meta);
  await out.write(tail, 0, tail.length, written.start);
  await out.truncate(written.start + tail.length);
}
