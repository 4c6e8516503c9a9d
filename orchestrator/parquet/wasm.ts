// parquet-wasm for the codec, loaded with require: its Node build is CommonJS, which an
// ESM import first scans with Node's CJS export lexer (~100 KB of JS; the scan got hot
// enough in each codec thread to be optimised, ~50 ms of CPU in all). Every module of
// ours takes parquet-wasm from here.
import { createRequire } from 'node:module';
import type * as ParquetWasm from 'parquet-wasm/node';

const wasm = createRequire(import.meta.url)('parquet-wasm/node') as typeof ParquetWasm;

export type * from 'parquet-wasm/node';
export const { Compression, ParquetFile, Table, WriterPropertiesBuilder, transformParquetStream, wasmMemory, writeParquet } = wasm;
export type ParquetFile = ParquetWasm.ParquetFile;
export type Table = ParquetWasm.Table;
export type WriterPropertiesBuilder = ParquetWasm.WriterPropertiesBuilder;
