import { MAX_URL_BYTES, notUtf8 } from '../../protocol/index.js';
import { refuseRow } from '../state.js';
import { Binary, Bool, Decimal, Dictionary, Float64, Int8, Int16, Int32, Int64, LargeUtf8, Null, Timestamp, TimeUnit, Uint64, Utf8, makeData, makeVector, vectorFromArray } from './arrow.js';
import type { DataType } from './arrow.js';
import { describe, expect, it } from 'vitest';
import { toStrings, usableAsId, usableAsUrl } from './keys.js';

describe('key types', () => {
  it.each([
    ['Utf8', new Utf8(), true, true],
    ['LargeUtf8', new LargeUtf8(), true, true],
    ['Binary', new Binary(), true, true],
    ['Dictionary<Utf8>', new Dictionary(new Utf8(), new Int32()), true, true],
    ['Int8', new Int8(), true, false],
    ['Int64', new Int64(), true, false],
    ['Uint64', new Uint64(), true, false],
    // PyArrow's type for a pandas column of None only: every row a null id or url.
    ['Null', new Null(), true, true],
    ['Decimal(18, 0)', new Decimal(0, 18, 128), true, false],
    ['Decimal(76, 0)', new Decimal(0, 76, 256), true, false],
    ['Decimal(10, 2)', new Decimal(2, 10, 128), false, false],
    ['Float64', new Float64(), false, false],
    ['Bool', new Bool(), false, false],
    ['Timestamp', new Timestamp(TimeUnit.MICROSECOND), false, false],
  ] as [string, DataType, boolean, boolean][])('%s: id %s, url %s', (_, type, id, url) => {
    expect([usableAsId(type), usableAsUrl(type)]).toEqual([id, url]);
  });
});

describe('toStrings', () => {
  it.each([
    ['text, with an empty string and nulls', vectorFromArray(['a', '', null, 'é✓'], new Utf8()), ['a', '', null, 'é✓']],
    ['large text', vectorFromArray(['x', null], new LargeUtf8()), ['x', null]],
    ['dictionary-encoded text', vectorFromArray(['b', 'a', null, 'b'], new Dictionary(new Utf8(), new Int32())), ['b', 'a', null, 'b']],
    ['int16 in decimal', vectorFromArray([-32768, 0, null, 7], new Int16()), ['-32768', '0', null, '7']],
    ['int64 beyond 2^53, exact', vectorFromArray([9007199254740993n, -9223372036854775808n, null], new Int64()), ['9007199254740993', '-9223372036854775808', null]],
    ['uint64 above int64', vectorFromArray([18446744073709551615n], new Uint64()), ['18446744073709551615']],
    ['binary as UTF-8, or marked when it is not', vectorFromArray([new TextEncoder().encode('ab'), new Uint8Array([0xff]), new Uint8Array([0xfe]), null], new Binary()), ['ab', notUtf8(new Uint8Array([0xff])), notUtf8(new Uint8Array([0xfe])), null]],
    ['a column of type Null, as nulls', makeVector(makeData({ type: new Null(), length: 3, nullCount: 3 })), [null, null, null]],
  ])('%s', (_, vector, expected) => {
    expect(toStrings(vector)).toEqual(expected);
  });

  it('refuses a marked id as INVALID_ID naming its bytes, and a marked url as BAD_URL; two such ids never collide', () => {
    const seen = new Set<string>();
    expect(refuseRow(notUtf8(new Uint8Array([0xff])), 'http://h/a', 1, seen)).toEqual({ reason: 'INVALID_ID', detail: 'row 1: id is not UTF-8 text (bytes ff)' });
    expect(refuseRow(notUtf8(new Uint8Array([0xfe])), 'http://h/b', 2, seen)).toEqual({ reason: 'INVALID_ID', detail: 'row 2: id is not UTF-8 text (bytes fe)' });
    expect(refuseRow('ok', notUtf8(new Uint8Array([0x68, 0xff])), 3, seen)).toEqual({ reason: 'BAD_URL', detail: 'row 3: url is not UTF-8 text' });
  });
  it('refuses a url longer than a task line can carry as BAD_URL, and takes one of exactly that length', () => {
    const seen = new Set<string>();
    // 'http://h/' and two-byte characters: its bytes, not its characters, count
    const url = (bytes: number) => 'http://h/' + 'é'.repeat(Math.floor((bytes - 9) / 2)) + (bytes % 2 === 0 ? 'a' : '');
    expect(refuseRow('a', url(MAX_URL_BYTES), 1, seen)).toBeNull();
    expect(refuseRow('b', url(MAX_URL_BYTES + 1), 2, seen)).toEqual({ reason: 'BAD_URL', detail: `row 2: url longer than ${MAX_URL_BYTES} bytes (65537)` });
  });
});
