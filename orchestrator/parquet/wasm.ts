// parquet-wasm for the codec, loaded with require: its Node build is CommonJS, which an
// ESM import first scans with Node's CJS export lexer (~100 KB of JS; the scan got hot
// enough in each codec thread to be optimised, ~50 ms of CPU in all). Every module of
// ours takes parquet-wasm from here.
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import type * as ParquetWasm from 'parquet-wasm/node';

// V8 re-compiles a WebAssembly function with TurboFan once it has run a budget of work
// (~1.8 MB of code executed). parquet-wasm's functions are large: at that budget, a compile
// of four 5,000-row manifests kept V8's threads busy optimising code that then ran for a
// few ms. At ten times the budget, V8's threads in that compile went 0.37 → 0.29 CPU-s
// (medians of 6), and a 2,000,000-row renewal, whose hot loops still tier up, takes the
// same time (8.1-8.4 s). V8's flags are the process's: this one only touches WebAssembly,
// and the orchestrator's is the codec's (workers are processes of their own).
setFlagsFromString('--wasm-tiering-budget=18000000');

const wasm = createRequire(import.meta.url)('parquet-wasm/node') as typeof ParquetWasm;

export type * from 'parquet-wasm/node';
export const { Compression, ParquetFile, Table, WriterPropertiesBuilder, transformParquetStream, wasmMemory, writeParquet } = wasm;
export type ParquetFile = ParquetWasm.ParquetFile;
export type Table = ParquetWasm.Table;
export type WriterPropertiesBuilder = ParquetWasm.WriterPropertiesBuilder;
