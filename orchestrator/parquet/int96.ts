// INT96 timestamps (Impala/Spark: 8 bytes of nanoseconds within the day, then a 4-byte
// Julian day number, little-endian) become INT64 microsecond timestamps, as DESIGN.md
// says. footer.ts makes the reader hand the 12 raw bytes over as FixedSizeBinary(12);
// here they are converted exactly, with BigInt, and a value that does not fit an INT64
// count of microseconds is refused, never wrapped.
import { Field, FixedSizeList, LargeList, List, Map_, Struct, TimestampMicrosecond, Type, makeData } from './arrow.js';
import type { Data, DataType, FixedSizeBinary } from './arrow.js';

const JULIAN_DAY_OF_UNIX_EPOCH = 2_440_588n;
const MICROS_PER_DAY = 86_400_000_000n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** `micros` is undefined when the value does not fit an INT64. */
export type Int96Value = { day: number; nanos: bigint; micros: bigint | undefined; subMicrosecond: boolean };

/** A value outside INT64 microseconds; the caller names the file. */
export class Int96RangeError extends Error {
  constructor(
    readonly column: string,
    /** `row N` (counting from 0), or the row group for values inside lists and maps. */
    readonly where: string,
    readonly julianDay: number,
    readonly nanosOfDay: bigint,
  ) {
    super(
      `column "${column}" ${where}: INT96 timestamp (Julian day ${julianDay}, ${nanosOfDay} ns) is outside ` +
        `the range of INT64 microsecond timestamps (years 290308 BC to 294247 AD), the type ferry writes INT96 as; ` +
        `refusing rather than wrapping it`,
    );
  }
}

/**
 * Decodes one INT96 value. Microseconds truncate toward zero, as DuckDB and Spark read
 * INT96; `undefined` when the result does not fit an INT64.
 */
export function int96ToMicros(bytes: Uint8Array, offset = 0): Int96Value {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 12);
  const nanos = view.getBigInt64(0, true);
  const day = view.getInt32(8, true);
  const micros = (BigInt(day) - JULIAN_DAY_OF_UNIX_EPOCH) * MICROS_PER_DAY + nanos / 1000n;
  const fits = micros >= INT64_MIN && micros <= INT64_MAX;
  return { day, nanos, micros: fits ? micros : undefined, subMicrosecond: nanos % 1000n !== 0n };
}

/** Counts what a conversion saw, over all the row groups of a file. */
export type Int96Tally = { subMicrosecondValues: number };

/**
 * FixedSizeBinary(12) holding INT96 bytes → Timestamp(µs, no time zone). `rowBase` is
 * the row of the first value, or `undefined` for values inside a list or map.
 */
export function convertInt96Data(
  data: Data<FixedSizeBinary>,
  column: string,
  rowBase: number | undefined,
  groupBase: number,
  tally: Int96Tally,
): Data<TimestampMicrosecond> {
  const { length } = data;
  const out = new BigInt64Array(length);
  const validity = new Uint8Array(Math.ceil(length / 8));
  const values = data.values;
  let nulls = 0;
  for (let i = 0; i < length; i++) {
    if (!data.getValid(i)) {
      nulls++;
      continue;
    }
    validity[i >> 3]! |= 1 << (i & 7);
    const v = int96ToMicros(values, (data.offset + i) * 12);
    if (v.micros === undefined) {
      const where = rowBase === undefined ? `in the row group starting at row ${groupBase}` : `row ${rowBase + i}`;
      throw new Int96RangeError(column, where, v.day, v.nanos);
    }
    if (v.subMicrosecond) tally.subMicrosecondValues++;
    out[i] = v.micros;
  }
  return makeData({
    type: new TimestampMicrosecond(),
    length,
    nullCount: nulls,
    nullBitmap: nulls > 0 ? validity : null,
    data: out,
  });
}

/**
 * Rebuilds a column with its INT96 leaves converted. `leafIndexes` are depth-first leaf
 * positions within this column, the order shared by the Parquet schema and Arrow's
 * nested types (struct children in order, a list's one child, a map's key then value).
 * `rowBase`, the row of the data's first value, only labels errors.
 */
export function convertInt96Column(
  data: Data,
  field: Field,
  leafIndexes: ReadonlySet<number>,
  rowBase: number,
  tally: Int96Tally,
): { data: Data; field: Field } {
  const counter = { next: 0 };
  return convertNode(data, field, { leafIndexes, rowBase, tally, counter, path: field.name, inList: false });
}

/** The field's type once convertInt96Column has run: INT96 leaves as Timestamp(µs). */
export function convertInt96Field(field: Field, leafIndexes: ReadonlySet<number>): Field {
  const counter = { next: 0 };
  const walkField = (f: Field): Field => {
    const childFields: Field[] = f.type.children ?? [];
    if (childFields.length === 0 || f.type.typeId === Type.Dictionary) {
      const index = counter.next++;
      return leafIndexes.has(index) ? new Field(f.name, new TimestampMicrosecond(), f.nullable, f.metadata) : f;
    }
    return new Field(f.name, withChildren(f.type, childFields.map(walkField)), f.nullable, f.metadata);
  };
  return walkField(field);
}

type Walk = {
  leafIndexes: ReadonlySet<number>;
  rowBase: number;
  tally: Int96Tally;
  counter: { next: number };
  path: string;
  /** Below a list or map, value positions are no longer rows. */
  inList: boolean;
};

function convertNode(data: Data, field: Field, walk: Walk): { data: Data; field: Field } {
  const childFields: Field[] = data.type.children ?? [];
  if (childFields.length === 0 || data.type.typeId === Type.Dictionary) {
    const index = walk.counter.next++;
    if (!walk.leafIndexes.has(index)) return { data, field };
    if (data.type.typeId !== Type.FixedSizeBinary) throw new Error(`INT96 leaf ${walk.path} arrived as ${String(data.type)}`);
    const rowBase = walk.inList ? undefined : walk.rowBase;
    const converted = convertInt96Data(data as Data<FixedSizeBinary>, walk.path, rowBase, walk.rowBase, walk.tally);
    return { data: converted, field: new Field(field.name, converted.type, field.nullable, field.metadata) };
  }
  const children: Data[] = [];
  const fields: Field[] = [];
  childFields.forEach((childField, i) => {
    const child = data.children[i];
    if (!child) throw new Error(`${walk.path}: Arrow data lacks child ${i}`);
    const inList = walk.inList || data.type.typeId !== Type.Struct;
    const r = convertNode(child, childField, { ...walk, path: `${walk.path}.${childField.name}`, inList });
    children.push(r.data);
    fields.push(r.field);
  });
  const type = withChildren(data.type, fields);
  return { data: data.clone(type, data.offset, data.length, data.nullCount, undefined, children), field: new Field(field.name, type, field.nullable, field.metadata) };
}

function withChildren(type: DataType, fields: Field[]): DataType {
  const [first] = fields;
  switch (type.typeId) {
    case Type.Struct:
      return new Struct(fields);
    case Type.List:
      return new List(first!);
    case Type.LargeList:
      return new LargeList(first!);
    case Type.FixedSizeList:
      return new FixedSizeList((type as FixedSizeList).listSize, first!);
    case Type.Map:
      return new Map_(first as Field<Struct>, (type as Map_).keysSorted);
    default:
      throw new Error(`INT96 inside ${String(type)} is not supported`);
  }
}
