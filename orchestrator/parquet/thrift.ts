// A generic Thrift compact-protocol reader and writer, just enough for Parquet footers.
// parquet-wasm exposes no physical types (INT96 must be found) and cannot be told how to
// annotate what it writes, so the codec reads footers itself and, where needed, writes a
// patched copy. Values are kept generically (field id + wire type), so a footer
// round-trips byte for byte, fields we do not know about included.

/** Compact-protocol wire types. */
export enum TType {
  True = 1,
  False = 2,
  Byte = 3,
  I16 = 4,
  I32 = 5,
  I64 = 6,
  Double = 7,
  Binary = 8,
  List = 9,
  Set = 10,
  Map = 11,
  Struct = 12,
}

export type TValue =
  | { t: TType.True | TType.False; v: boolean }
  | { t: TType.Byte | TType.I16 | TType.I32; v: number }
  | { t: TType.I64; v: bigint }
  | { t: TType.Double; v: number }
  | { t: TType.Binary; v: Uint8Array }
  | { t: TType.List | TType.Set; elem: number; items: TValue[] }
  | { t: TType.Map; key: number; val: number; entries: [TValue, TValue][] }
  | TStruct;

export type TStruct = { t: TType.Struct; fields: TField[] };
export type TField = { id: number; value: TValue };

export class ThriftError extends Error {}

const MAX_DEPTH = 64;

export class CompactReader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get offset(): number {
    return this.pos;
  }

  readStruct(depth = 0): TStruct {
    if (depth > MAX_DEPTH) throw new ThriftError('nesting too deep');
    const fields: TField[] = [];
    let lastId = 0;
    for (;;) {
      const head = this.byte();
      if (head === 0) return { t: TType.Struct, fields };
      const type = head & 0x0f;
      const delta = head >> 4;
      const id = delta === 0 ? this.zigzag32() : lastId + delta;
      lastId = id;
      const value =
        type === TType.True || type === TType.False
          ? { t: type, v: type === TType.True }
          : this.value(type, depth);
      fields.push({ id, value: value as TValue });
    }
  }

  private value(type: number, depth: number): TValue {
    switch (type) {
      case TType.Byte:
        return { t: type, v: (this.byte() << 24) >> 24 };
      case TType.I16:
      case TType.I32:
        return { t: type, v: this.zigzag32() };
      case TType.I64:
        return { t: type, v: this.zigzag64() };
      case TType.Double:
        return { t: type, v: this.double() };
      case TType.Binary:
        return { t: type, v: this.bytes(this.varint32()) };
      case TType.List:
      case TType.Set:
        return this.list(type, depth);
      case TType.Map:
        return this.map(depth);
      case TType.Struct:
        return this.readStruct(depth + 1);
      default:
        throw new ThriftError(`unknown compact type ${type} at byte ${this.pos}`);
    }
  }

  /** In collections a boolean is one byte (1 = true); everything else as in fields. */
  private element(type: number, depth: number): TValue {
    if (type === TType.True || type === TType.False) {
      const v = this.byte() === TType.True;
      return { t: v ? TType.True : TType.False, v };
    }
    return this.value(type, depth);
  }

  private list(t: TType.List | TType.Set, depth: number): TValue {
    const head = this.byte();
    const elem = head & 0x0f;
    const size = head >> 4 === 15 ? this.varint32() : head >> 4;
    this.checkCount(size);
    const items: TValue[] = [];
    for (let i = 0; i < size; i++) items.push(this.element(elem, depth + 1));
    return { t, elem, items };
  }

  private map(depth: number): TValue {
    const size = this.varint32();
    this.checkCount(size);
    if (size === 0) return { t: TType.Map, key: 0, val: 0, entries: [] };
    const kv = this.byte();
    const key = kv >> 4;
    const val = kv & 0x0f;
    const entries: [TValue, TValue][] = [];
    for (let i = 0; i < size; i++) entries.push([this.element(key, depth + 1), this.element(val, depth + 1)]);
    return { t: TType.Map, key, val, entries };
  }

  /** Each element takes at least one byte: a larger count is a corrupt footer. */
  private checkCount(n: number): void {
    if (n > this.buf.length - this.pos) throw new ThriftError(`collection of ${n} elements overruns the footer`);
  }

  private byte(): number {
    const b = this.buf[this.pos];
    if (b === undefined) throw new ThriftError('footer ends early');
    this.pos++;
    return b;
  }

  private bytes(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw new ThriftError('footer ends early');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private double(): number {
    const b = this.bytes(8);
    return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true);
  }

  private varint64(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new ThriftError('varint too long');
  }

  private varint32(): number {
    const v = this.varint64();
    if (v > 0xffffffffn) throw new ThriftError('varint32 out of range');
    return Number(v);
  }

  private zigzag32(): number {
    const v = this.varint32();
    return (v >>> 1) ^ -(v & 1);
  }

  private zigzag64(): bigint {
    const v = this.varint64();
    return (v >> 1n) ^ -(v & 1n);
  }
}

export class CompactWriter {
  private chunks: number[] = [];

  writeStruct(s: TStruct): void {
    let lastId = 0;
    for (const { id, value } of s.fields) {
      const type = value.t;
      const delta = id - lastId;
      if (delta > 0 && delta <= 15) this.byte((delta << 4) | type);
      else {
        this.byte(type);
        this.zigzag(BigInt(id));
      }
      lastId = id;
      if (type !== TType.True && type !== TType.False) this.value(value);
    }
    this.byte(0);
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }

  private value(value: TValue): void {
    switch (value.t) {
      case TType.True:
      case TType.False:
        this.byte(value.v ? TType.True : TType.False);
        return;
      case TType.Byte:
        this.byte(value.v & 0xff);
        return;
      case TType.I16:
      case TType.I32:
        this.zigzag(BigInt(value.v));
        return;
      case TType.I64:
        this.zigzag(value.v);
        return;
      case TType.Double: {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setFloat64(0, value.v, true);
        for (const x of b) this.byte(x);
        return;
      }
      case TType.Binary:
        this.varint(BigInt(value.v.length));
        for (const x of value.v) this.byte(x);
        return;
      case TType.List:
      case TType.Set:
        this.list(value.elem, value.items);
        return;
      case TType.Map:
        this.map(value);
        return;
      case TType.Struct:
        this.writeStruct(value);
        return;
    }
  }

  private list(elem: number, items: TValue[]): void {
    if (items.length < 15) this.byte((items.length << 4) | elem);
    else {
      this.byte(0xf0 | elem);
      this.varint(BigInt(items.length));
    }
    for (const item of items) this.value(item);
  }

  private map(m: Extract<TValue, { t: TType.Map }>): void {
    this.varint(BigInt(m.entries.length));
    if (m.entries.length === 0) return;
    this.byte((m.key << 4) | m.val);
    for (const [k, v] of m.entries) {
      this.value(k);
      this.value(v);
    }
  }

  private byte(b: number): void {
    this.chunks.push(b);
  }

  private varint(v: bigint): void {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }

  private zigzag(v: bigint): void {
    this.varint(BigInt.asUintN(64, (v << 1n) ^ (v >> 63n)));
  }
}

/** Accessors for generic structs: footers are small, linear scans are fine. */
export function field(s: TStruct, id: number): TValue | undefined {
  return s.fields.find((f) => f.id === id)?.value;
}

export function setField(s: TStruct, id: number, value: TValue | undefined): void {
  const i = s.fields.findIndex((f) => f.id === id);
  if (value === undefined) {
    if (i >= 0) s.fields.splice(i, 1);
    return;
  }
  if (i >= 0) s.fields[i] = { id, value };
  else {
    s.fields.push({ id, value });
    s.fields.sort((a, b) => a.id - b.id);
  }
}

export function i32(s: TStruct, id: number): number | undefined {
  const v = field(s, id);
  return v && (v.t === TType.I32 || v.t === TType.I16 || v.t === TType.Byte) ? v.v : undefined;
}

export function i64(s: TStruct, id: number): bigint | undefined {
  const v = field(s, id);
  if (!v) return undefined;
  if (v.t === TType.I64) return v.v;
  return v.t === TType.I32 ? BigInt(v.v) : undefined;
}

export function str(s: TStruct, id: number): string | undefined {
  const v = field(s, id);
  return v?.t === TType.Binary ? new TextDecoder().decode(v.v) : undefined;
}

export function struct(s: TStruct, id: number): TStruct | undefined {
  const v = field(s, id);
  return v?.t === TType.Struct ? v : undefined;
}

export function structs(s: TStruct, id: number): TStruct[] {
  const v = field(s, id);
  if (v?.t !== TType.List) return [];
  return v.items.filter((x): x is TStruct => x.t === TType.Struct);
}
