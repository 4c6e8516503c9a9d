import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { idleCut, idleWrites } from './idle.js';

const cut = (detail: string) => Object.assign(new Error(detail), { code: 'FERRY_IDLE_TIMEOUT' });

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('idleCut', () => {
  it('passes a body through whole', async () => {
    const parts = Array.from({ length: 40 }, (_, i) => Buffer.alloc(10_000, i));
    expect(await readAll(idleCut(Readable.from(parts), 1000, cut))).toEqual(Buffer.concat(parts));
  });

  it('cuts a body that stops sending while it is read, and stops its source', async () => {
    let sent = false;
    const source = new Readable({
      read() {
        if (!sent) this.push(Buffer.from('first bytes, then nothing'));
        sent = true;
      },
    });
    const body = idleCut(source, 50, cut);
    await expect(readAll(body)).rejects.toMatchObject({ code: 'FERRY_IDLE_TIMEOUT', message: 'no body bytes for 50 ms' });
    expect(source.destroyed).toBe(true);
  });

  it('cuts a body that never sends its first byte', async () => {
    const body = idleCut(new Readable({ read() {} }), 50, cut);
    await expect(readAll(body)).rejects.toMatchObject({ code: 'FERRY_IDLE_TIMEOUT' });
  });

  it('does not cut a body its reader holds back, however long', async () => {
    const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16_384, i));
    const body = idleCut(Readable.from(parts), 30, cut);
    const it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = await it.next();
    await sleep(200); // the reader waits (a large-body slot, a slow destination): backpressure
    const rest: Buffer[] = [first.value as Buffer];
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
    expect(Buffer.concat(rest)).toEqual(Buffer.concat(parts));
  });

  it("passes the source's own error on, and a close before its end", async () => {
    const failing = new Readable({ read() { this.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' })); } });
    await expect(readAll(idleCut(failing, 1000, cut))).rejects.toMatchObject({ code: 'ECONNRESET' });
    const closing = new Readable({ read() { this.destroy(); } });
    await expect(readAll(idleCut(closing, 1000, cut))).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('destroying it destroys the source', async () => {
    const source = new Readable({ read() {} });
    const body = idleCut(source, 1000, cut);
    body.destroy();
    await sleep(0);
    expect(source.destroyed).toBe(true);
  });

  it('is the source itself when off', () => {
    const source = new Readable({ read() {} });
    expect(idleCut(source, 0, cut)).toBe(source);
  });
});

describe('idleWrites', () => {
  /** A sink that takes `takes` writes, then holds the next one; `finishes` says whether it ever finishes once ended. */
  function sink(takes = Infinity, finishes = true) {
    const got: Buffer[] = [];
    const w = new Writable({
      write(chunk: Buffer, _enc, done) {
        if (got.length >= takes) return; // never called back: a stalled destination
        got.push(chunk);
        done();
      },
      final(done) {
        if (finishes) done();
      },
    });
    return { w, got };
  }
  const parts = () => Array.from({ length: 20 }, (_, i) => Buffer.alloc(10_000, i));

  it('passes every byte on and finishes with its sink', async () => {
    const s = sink();
    await pipeline(Readable.from(parts()), idleWrites(s.w, 1000, cut));
    expect(Buffer.concat(s.got)).toEqual(Buffer.concat(parts()));
    expect(s.w.writableFinished).toBe(true);
  });

  it('cuts a sink that stops taking bytes, and destroys it', async () => {
    const s = sink(3);
    await expect(pipeline(Readable.from(parts()), idleWrites(s.w, 50, cut))).rejects.toMatchObject({ code: 'FERRY_IDLE_TIMEOUT', message: 'the destination took no bytes for 50 ms' });
    expect(s.w.destroyed).toBe(true);
  });

  it('cuts a sink that takes every byte but never finishes', async () => {
    const s = sink(Infinity, false);
    await expect(pipeline(Readable.from(parts()), idleWrites(s.w, 50, cut))).rejects.toMatchObject({ code: 'FERRY_IDLE_TIMEOUT' });
  });

  it('does not cut a sink that waits for a slow writer', async () => {
    async function* slow() {
      for (const p of parts().slice(0, 3)) {
        await sleep(120); // the source, not the destination, is slow
        yield p;
      }
    }
    const s = sink();
    await pipeline(Readable.from(slow()), idleWrites(s.w, 30, cut));
    expect(s.got).toHaveLength(3);
  });

  it("passes the sink's own error on", async () => {
    const w = new Writable({ write: (_c, _e, done) => done(Object.assign(new Error('refused'), { code: 'E_REFUSED' })) });
    await expect(pipeline(Readable.from(parts()), idleWrites(w, 1000, cut))).rejects.toMatchObject({ code: 'E_REFUSED' });
  });

  it('is the sink itself when off', () => {
    const s = sink();
    expect(idleWrites(s.w, 0, cut)).toBe(s.w);
  });
});
