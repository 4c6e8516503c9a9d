/**
 * One conformance suite for every storage backend (after rclone's fstests): the same
 * behaviour from file, s3 and gcs stores, each on a real local server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, type RunningBackend, backends } from '../test/helpers/backends.js';
import { type StorageAdapter, StorageError } from './adapter.js';
import { writerTag } from './process.js';
import { WRITE_CHECK_MARKER, checkWrites } from './write-check.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function bytesOf(body: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function keysOf(store: StorageAdapter, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys.sort();
}

const meta = (b: Buffer) => ({ 'ferry-id': 'x', 'ferry-sha256': sha(b), 'ferry-run': 'r1' });

describe.each(backends.map((b) => [b.name, b] as [string, Backend]))('%s store', (_name, backend) => {
  let running: RunningBackend;
  let store: StorageAdapter;

  beforeAll(async () => {
    running = await backend.start();
    store = await running.open();
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    await running?.stop();
  });

  it('writes a buffer and reads back its bytes, size, content type and metadata', async () => {
    const body = randomBytes(20_000);
    const r = await store.put('u/ab/one.jpg', body, { contentType: 'image/jpeg', metadata: meta(body), ifAbsent: true });
    expect(r.sha256).toBe(sha(body));
    const info = await store.stat('u/ab/one.jpg');
    expect(info).toMatchObject({ key: 'u/ab/one.jpg', size: body.length });
    if (!(store.contentSha256 && Object.keys(info!.metadata).length === 0)) {
      expect(info!.metadata['ferry-sha256']).toBe(sha(body));
      expect(info!.contentType).toBe('image/jpeg');
    }
    const read = await store.read('u/ab/one.jpg');
    expect(read.info.size).toBe(body.length);
    expect(sha(await bytesOf(read.body))).toBe(sha(body));
  });

  it('streams a Readable body in parts, never whole, and records its sha256', async () => {
    const size = Math.min(running.maxRequestBytes, 64 * 2 ** 20) + 3 * 2 ** 20;
    const body = randomBytes(size);
    const chunks = Array.from({ length: Math.ceil(size / 65536) }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536));
    const r = await store.put('u/big.bin', Readable.from(chunks), { contentType: 'application/octet-stream', metadata: { 'ferry-id': 'big' }, ifAbsent: false, size });
    expect(r.sha256).toBe(sha(body));
    expect((await store.stat('u/big.bin'))?.size).toBe(size);
    expect(sha(await bytesOf((await store.read('u/big.bin')).body))).toBe(sha(body));
  }, 120_000);

  it('refuses to overwrite under ifAbsent where the endpoint enforces it', async () => {
    const a = Buffer.from('first');
    await store.put('u/cond.bin', a, { contentType: 'application/octet-stream', metadata: meta(a), ifAbsent: true });
    const b = Buffer.from('second');
    if (store.capabilities.conditionalCreate) {
      await expect(store.put('u/cond.bin', b, { contentType: 'application/octet-stream', metadata: meta(b), ifAbsent: true })).rejects.toMatchObject({ code: 'EXISTS' });
      expect((await bytesOf((await store.read('u/cond.bin')).body)).toString()).toBe('first');
    }
    await store.put('u/cond.bin', b, { contentType: 'application/octet-stream', metadata: meta(b), ifAbsent: false });
    expect((await bytesOf((await store.read('u/cond.bin')).body)).toString()).toBe('second');
  });

  it('lists by folder prefix, recursively and across pages, never a sibling with the same start', async () => {
    const one = Buffer.from('1');
    const opts = { contentType: 'text/plain', metadata: {}, ifAbsent: false };
    await Promise.all(Array.from({ length: 1005 }, (_, i) => store.put(`list/a/${String(i).padStart(4, '0')}.txt`, one, opts)));
    await store.put('list/a/deep/er/x.txt', one, opts);
    await store.put('list/a2/y.txt', one, opts);
    const keys = await keysOf(store, 'list/a/');
    expect(keys).toHaveLength(1006);
    expect(keys).toContain('list/a/deep/er/x.txt');
    expect(keys).not.toContain('list/a2/y.txt');
  }, 120_000);

  it('keeps keys with spaces, percent signs and unicode exact', async () => {
    const key = 'u/7f/a%2Fb c%25d é.png';
    const body = Buffer.from('k');
    await store.put(key, body, { contentType: 'image/png', metadata: meta(body), ifAbsent: false });
    expect(await keysOf(store, 'u/7f/')).toEqual([key]);
    expect((await store.stat(key))?.size).toBe(1);
  });

  it('says NOT_FOUND and null for what is not there, and removes', async () => {
    expect(await store.stat('nothing/here')).toBeNull();
    await expect(store.read('nothing/here')).rejects.toBeInstanceOf(StorageError);
    await expect(store.read('nothing/here')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await store.put('u/gone.txt', Buffer.from('x'), { contentType: 'text/plain', metadata: {}, ifAbsent: false });
    await store.remove('u/gone.txt');
    expect(await store.stat('u/gone.txt')).toBeNull();
    await store.remove('u/gone.txt'); // removing what is gone is fine
  });

  it('cleans up under a prefix without touching finished objects', async () => {
    await store.put('clean/u/ok.txt', Buffer.from('x'), { contentType: 'text/plain', metadata: {}, ifAbsent: false });
    await store.cleanup('clean/u/', () => true);
    expect(await keysOf(store, 'clean/')).toEqual(['clean/u/ok.txt']);
  });

  it("a write check removes the markers killed checks left at the root, and nobody else's", async () => {
    const put = (key: string) => store.put(key, Buffer.from('ferry'), { contentType: 'text/plain', metadata: {}, ifAbsent: false });
    const now = Date.now();
    const dead = `${WRITE_CHECK_MARKER}${writerTag(4_194_305)}-${now}-0`; // a pid no process has
    const live = `${WRITE_CHECK_MARKER}${writerTag(process.pid)}-${now}-999`; // a check of this process, under way
    const old = `${WRITE_CHECK_MARKER}1234-${now - 2 * 3_600_000}`; // an earlier version's, two hours old
    const young = `${WRITE_CHECK_MARKER}1234-${now}`; // an earlier version's, which no pid check can judge
    const users = `${WRITE_CHECK_MARKER}notes.txt`;
    const nested = `check/${WRITE_CHECK_MARKER}${writerTag(4_194_305)}-${now}-0`; // not at the root
    for (const key of [dead, live, old, young, users, nested]) await put(key);
    await checkWrites(store);
    const left: string[] = [];
    for await (const key of store.rootKeys(WRITE_CHECK_MARKER)) left.push(key);
    expect(left.sort()).toEqual([live, young, users].sort());
    expect(await store.stat(nested)).not.toBeNull();
    for (const key of [...left, nested]) await store.remove(key);
  });
});
