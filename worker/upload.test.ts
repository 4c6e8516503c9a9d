import { hash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GcsStore } from '../storage/gcs.js';
import type { FileStore, StorageAdapter } from '../storage/index.js';
import { gcsBackend } from '../test/helpers/backend-gcs.js';
import { type Backend, type RunningBackend, backends, fileBackend } from '../test/helpers/backends.js';
import { type Payload, ferryMetadata, sourceTag, uploadPayload } from './upload.js';

const payloadOf = (key: string, body: Buffer): Payload => ({ id: 'x', key, body, contentType: 'image/png', sha256: hash('sha256', body, 'hex'), source: `${body.length}:"e"`, runId: 'r' });

describe.each(backends.map((b) => [b.name, b] as [string, Backend]))('uploadPayload onto an existing object, %s', (_name, backend) => {
  let running: RunningBackend;
  let store: StorageAdapter;
  beforeAll(async () => {
    running = await backend.start();
    store = await running.open();
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await running?.stop();
  });

  it('an identical object is existed, and is not rewritten', async () => {
    const p = payloadOf('u/aa/same.png', Buffer.from('the same bytes'));
    expect(await uploadPayload(store, p, { overwrite: false, retries: 0 })).toMatchObject({ ok: true, existed: false });
    const before = await store.stat(p.key);
    expect(await uploadPayload(store, p, { overwrite: false, retries: 0 })).toMatchObject({ ok: true, existed: true });
    expect((await store.stat(p.key))?.metadata).toEqual(before?.metadata);
  });

  it("other bytes under ferry's metadata for this payload are DEST_CONFLICT, naming the key, and --overwrite replaces them", async () => {
    // A tool that rewrote the bytes and carried the metadata along: the metadata says this payload, the object is not it.
    const p = payloadOf('u/bb/edited.png', Buffer.from('the bytes ferry wrote'));
    await store.put(p.key, Buffer.from('bytes edited by hand, longer'), { contentType: p.contentType, metadata: ferryMetadata(p), ifAbsent: false });
    const r = await uploadPayload(store, p, { overwrite: false, retries: 0 });
    expect(r).toMatchObject({ ok: false, reason: 'DEST_CONFLICT' });
    expect(r.ok ? '' : r.detail).toContain(store.uri(p.key));
    expect(await uploadPayload(store, p, { overwrite: true, retries: 0 })).toMatchObject({ ok: true, existed: false });
    expect((await store.stat(p.key))?.size).toBe(p.body.length);
  });
});

describe('uploadPayload onto other bytes of the same size under its own metadata (GCS)', () => {
  let running: RunningBackend;
  let store: GcsStore;
  beforeAll(async () => {
    running = await gcsBackend.start();
    store = (await running.open()) as GcsStore;
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await running?.stop();
  });

  it("is DEST_CONFLICT: GCS's own md5Hash says the bytes are not the payload's", async () => {
    const p = payloadOf('u/dd/edited.png', Buffer.from('the bytes ferry wrote'));
    const edited = Buffer.from('the bytes ferry wrotE');
    // Written with the raw client, as a tool that copies metadata along would: the store's put records the true sha256.
    await store.bucket.file(store.prefix + p.key).save(edited, { resumable: false, metadata: { contentType: p.contentType, metadata: ferryMetadata(p) } });
    expect((await store.stat(p.key))?.metadata['ferry-sha256']).toBe(p.sha256);
    expect(await uploadPayload(store, p, { overwrite: false, retries: 0 })).toMatchObject({ ok: false, reason: 'DEST_CONFLICT' });
    expect(await uploadPayload(store, p, { overwrite: true, retries: 0 })).toMatchObject({ ok: true, existed: false });
    expect(await uploadPayload(store, p, { overwrite: false, retries: 0 })).toMatchObject({ ok: true, existed: true });
  });
});

describe('uploadPayload onto a folder at the key (folder store)', () => {
  let running: RunningBackend;
  beforeAll(async () => {
    running = await fileBackend.start();
  });
  afterAll(() => running?.stop());

  it.each([false, true])('is a permanent DEST_CONFLICT naming the key, never a transient failure (overwrite %s)', async (overwrite) => {
    const store = (await running.open()) as FileStore;
    const p = payloadOf('u/cc/folder.png', Buffer.from('bytes'));
    await mkdir(path.join(store.root, p.key), { recursive: true });
    const r = await uploadPayload(store, p, { overwrite, retries: 2, backoffBaseMs: 1 });
    expect(r).toMatchObject({ ok: false, reason: 'DEST_CONFLICT', attempts: 1 });
    expect(r.ok ? '' : r.detail).toContain(store.uri(p.key));
  });
});

describe('sourceTag (ferry-source)', () => {
  it('carries a size and an ordinary ETag as they came, an unknown one as empty', () => {
    expect(sourceTag(123, '"abc-1"')).toBe('123:"abc-1"');
    expect(sourceTag(null, null)).toBe(':');
    expect(sourceTag(5, 'W/"x y"')).toBe('5:W/"x y"');
  });

  it('carries an ETag a store could refuse as metadata (long, or not printable ASCII) as its sha256, equal for equal ETags', () => {
    const long = `"${'a'.repeat(3000)}"`;
    expect(sourceTag(7, long)).toBe(`7:h-${hash('sha256', long, 'hex')}`);
    expect(sourceTag(7, long)).toBe(sourceTag(7, long));
    const latin1 = '"caf\u00e9"'; // obs-text: undici hands header bytes past 0x7f over as latin1
    expect(sourceTag(7, latin1)).toBe(`7:h-${hash('sha256', latin1, 'hex')}`);
    expect(sourceTag(7, 'a\tb')).toMatch(/^7:h-[0-9a-f]{64}$/);
  });
});
