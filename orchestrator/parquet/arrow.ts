// Apache Arrow for the Parquet codec, from its single-file build. Arrow's ESM build is
// some 200 modules, whose loading cost each codec thread ~0.12 s of CPU, more than the
// Parquet work of a 5,000-row unit; the single file, the same code bundled, loads in
// ~15 ms. Every module of ours takes Arrow from here, so one copy is ever loaded (Arrow's
// classes from two copies would not mix).
import { createRequire } from 'node:module';
import type * as Arrow from 'apache-arrow';

const arrow = createRequire(import.meta.url)('apache-arrow/Arrow.esnext.min') as typeof Arrow;

export type * from 'apache-arrow';
export const {
  Binary,
  Bool,
  Decimal,
  Dictionary,
  Field,
  FixedSizeBinary,
  FixedSizeList,
  Float64,
  Int8,
  Int16,
  Int32,
  Int64,
  LargeList,
  LargeUtf8,
  List,
  Map_,
  Null,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimeUnit,
  Timestamp,
  TimestampMicrosecond,
  Type,
  Uint64,
  Utf8,
  makeBuilder,
  makeData,
  makeVector,
  tableFromIPC,
  tableToIPC,
  util,
  vectorFromArray,
} = arrow;
// The classes that are used as types too (a destructured constant is a value only).
export type Decimal = Arrow.Decimal;
export type Dictionary = Arrow.Dictionary;
export type Field<T extends Arrow.DataType = Arrow.DataType> = Arrow.Field<T>;
export type FixedSizeBinary = Arrow.FixedSizeBinary;
export type FixedSizeList = Arrow.FixedSizeList;
export type Map_ = Arrow.Map_;
export type Schema = Arrow.Schema;
export type Struct = Arrow.Struct;
export type Table = Arrow.Table;
export type TimestampMicrosecond = Arrow.TimestampMicrosecond;
export type Type = Arrow.Type;
