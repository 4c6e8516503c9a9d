// Which Arrow types can hold ids and urls, and their normalisation to strings.
// DESIGN.md: ids are strings; integer id columns are written in decimal.
import { notUtf8 } from '../../protocol/tasks.js';
import { Type, util } from './arrow.js';
import type { DataType, Decimal, Dictionary, Vector } from './arrow.js';

const TEXT = new Set<Type>([Type.Utf8, Type.LargeUtf8, Type.Utf8View]);
const BYTES = new Set<Type>([Type.Binary, Type.LargeBinary, Type.BinaryView]);

/** The type whose values are read: a dictionary's value type, or the type itself. */
function valueType(type: DataType): DataType {
  return type.typeId === Type.Dictionary ? (type as Dictionary).dictionary : type;
}

// A column of type Null holds only nulls: PyArrow gives that type to a pandas column in
// which every value is None (a shard whose urls are all missing), and writes it to
// Parquet as such. Its rows are null ids or urls (NULL_ID, NULL_URL), as in any column.
//
// A decimal of scale 0 is an integer too: Spark reads an Oracle NUMBER(p) key over JDBC as
// decimal(p, 0). One with a fractional part has no single spelling (1.5, 1.50) to key by.
export function usableAsId(type: DataType): boolean {
  const value = valueType(type);
  const t = value.typeId;
  return TEXT.has(t) || BYTES.has(t) || t === Type.Int || t === Type.Null || (t === Type.Decimal && (value as Decimal).scale === 0);
}

export function usableAsUrl(type: DataType): boolean {
  const t = valueType(type).typeId;
  return TEXT.has(t) || BYTES.has(t) || t === Type.Null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Values as strings: text as-is, integers (bigint included, so exact beyond 2^53, and
 * decimals of scale 0) in decimal, binary decoded as UTF-8, or, when it is not UTF-8, marked (protocol `notUtf8`)
 * for the row checks to refuse as INVALID_ID or BAD_URL. Null stays null.
 */
export function toStrings(vector: Vector): (string | null)[] {
  const out = new Array<string | null>(vector.length);
  for (let i = 0; i < vector.length; i++) {
    const v: unknown = vector.get(i);
    out[i] = v === null || v === undefined ? null : asString(v);
  }
  return out;
}

function asString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return v.toString(10);
  // A decimal's unscaled value (scale 0 only, usableAsId): Arrow's 128- or 256-bit integer.
  if (util.isArrowBigNumSymbol in (v as object)) return util.bigNumToString(v as Parameters<typeof util.bigNumToString>[0]);
  if (v instanceof Uint8Array) {
    try {
      return utf8.decode(v);
    } catch {
      return notUtf8(v);
    }
  }
  throw new TypeError(`unexpected key value of type ${typeof v}`);
}
