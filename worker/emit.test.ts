import { describe, expect, it } from 'vitest';
import { Emitter } from './emit.js';

const sink = () => ({ text: '', write(chunk: string) { this.text += chunk; return true; }, on: () => undefined, off: () => undefined });

function emitter() {
  return new Emitter(sink(), sink(), () => ({ inflight: 0, conc: 1 }));
}

const upOk = (id: string, bytes: number, existed: boolean) => ({ kind: 'UP_OK', id, uri: 'file:///x', ext: 'bin', bytes, sha256: '', width: null, height: null, existed }) as const;

describe('Emitter byte totals (PROGRESS rates are their differences)', () => {
  it('counts a buffered body once its DL_OK and UP_OK say so', () => {
    const e = emitter();
    e.emit({ kind: 'DL_OK', id: 'a', bytes: 10 });
    e.emit(upOk('a', 10, false));
    expect([e.downBytes, e.upBytes]).toEqual([10, 10]);
  });

  it('counts a streamed body as it passes, and its events do not count it again', () => {
    const e = emitter();
    e.flowed('b', 500, 500);
    e.flowed('b', 500, 500);
    e.emit({ kind: 'DL_OK', id: 'b', bytes: 1000 });
    e.emit(upOk('b', 1000, false));
    expect([e.downBytes, e.upBytes]).toEqual([1000, 1000]);
  });

  it('keeps the bytes of a streamed body that failed: the totals never go down', () => {
    const e = emitter();
    e.flowed('c', 700, 700);
    e.emit({ kind: 'DL_ERR', id: 'c', reason: 'SHORT_BODY', attempts: 1, detail: '700 of 1400 bytes' });
    expect([e.downBytes, e.upBytes]).toEqual([700, 700]);
    // The same id again later (a replay, another unit) starts from nothing.
    e.emit({ kind: 'DL_OK', id: 'c', bytes: 5 });
    expect(e.downBytes).toBe(705);
  });

  it('counts a retried body each time it passes, and its DL_OK once more only beyond them', () => {
    const e = emitter();
    e.flowed('d', 300, 300); // a first try, cut
    e.flowed('d', 1000, 1000); // the whole body
    e.emit({ kind: 'DL_OK', id: 'd', bytes: 1000 });
    e.emit(upOk('d', 1000, false));
    expect([e.downBytes, e.upBytes]).toEqual([1300, 1300]);
  });

  it('a body only hashed against an existing object is downloaded, not uploaded', () => {
    const e = emitter();
    e.flowed('f', 2000, 0);
    e.emit({ kind: 'DL_OK', id: 'f', bytes: 2000 });
    e.emit(upOk('f', 2000, true));
    expect([e.downBytes, e.upBytes]).toEqual([2000, 0]);
  });
});
