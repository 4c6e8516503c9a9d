import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { idleCut } from './idle.js';

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
