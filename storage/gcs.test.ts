/**
 * What is particular to the GCS store, on firebase-tools' Storage emulator: the probe of
 * conditional create, error classification, the sha256 recorded after a streamed upload,
 * and a broken source leaving nothing behind. The shared behaviour is in conformance.test.ts.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { type AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { GCS_TEST_BUCKET, NO_GOOGLE_CREDENTIALS, type RunningGcs, startGcsEmulator } from '../test/helpers/backend-gcs.js';
import { type ServerProcess, startServer } from '../test/helpers/server.js';
import { StorageError } from './adapter.js';
import { classifyGcsError, gcsCredentialsProblem, openGcsStore } from './gcs.js';
import { writerTag } from './process.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('classifyGcsError', () => {
  it.each([
    [{ code: 404 }, 'NOT_FOUND', 404],
    [{ code: 401 }, 'FORBIDDEN', 401],
    [{ code: 403 }, 'FORBIDDEN', 403],
    [{ code: 412, errors: [{ reason: 'conditionNotMet' }] }, 'EXISTS', 412],
    [{ code: 429 }, 'THROTTLED', 429],
    [{ code: 503 }, 'THROTTLED', 503],
    [{ code: 500 }, 'TRANSIENT', 500],
    [{ code: 502 }, 'TRANSIENT', 502],
    [{ code: 504 }, 'TRANSIENT', 504],
    [{ code: 408 }, 'TRANSIENT', 408],
    [{ code: 400 }, 'FATAL', 400],
    [{ code: 409 }, 'FATAL', 409],
    // GaxiosError (resumable uploads): the status is on the response
    [{ code: 'ERR_BAD_RESPONSE', response: { status: 412 } }, 'EXISTS', 412],
    [{ status: 429, response: { status: 429 } }, 'THROTTLED', 429],
    // network errors, directly or as a cause
    [{ code: 'ECONNRESET' }, 'TRANSIENT', undefined],
    [{ code: 'EMFILE' }, 'TRANSIENT', undefined],
    [{ cause: { code: 'ENFILE' } }, 'TRANSIENT', undefined],
    [{ code: 'ECONNREFUSED' }, 'TRANSIENT', undefined],
    [{ code: 'ETIMEDOUT' }, 'TRANSIENT', undefined],
    [{ cause: { code: 'ECONNRESET' } }, 'TRANSIENT', undefined],
    [{ type: 'request-timeout' }, 'TRANSIENT', undefined],
    // the library's own checksum mismatch
    [{ code: 'FILE_NO_UPLOAD' }, 'TRANSIENT', undefined],
    [{ code: 'ENOENT' }, 'FATAL', undefined],
    [{}, 'FATAL', undefined],
  ])('%j → %s', (shape, code, status) => {
    const err = classifyGcsError(Object.assign(new Error('a message that must not decide anything'), shape), 'put gs://b/k');
    expect(err).toBeInstanceOf(StorageError);
    expect(err.code).toBe(code);
    expect(err.status).toBe(status);
    expect(err.message).not.toContain('\n');
  });

  it('keeps query strings (session ids, signatures) out of messages', () => {
    const err = classifyGcsError(new Error('failed at http://h/upload?upload_id=SECRET&x=1\nmore'), 'put gs://b/k');
    expect(err.code).toBe('FATAL');
    expect(err.message).not.toMatch(/SECRET|\n/);
  });
});

describe('gcsCredentialsProblem', () => {
  // Asked with nothing to find (no request leaves: see NO_GOOGLE_CREDENTIALS), or a key file.
  const none = () => {
    for (const [k, v] of Object.entries(NO_GOOGLE_CREDENTIALS)) vi.stubEnv(k, v);
  };
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('names the missing credentials, one line, FORBIDDEN, when nothing provides any', async () => {
    none();
    const problem = await gcsCredentialsProblem({}, 'its gs:// URLs cannot be fetched');
    expect(problem).toBeInstanceOf(StorageError);
    expect(problem?.code).toBe('FORBIDDEN');
    expect(problem?.message).toMatch(/^its gs:\/\/ URLs cannot be fetched: no Google credentials \(Could not load the default credentials\./);
    expect(problem?.message).not.toContain('\n');
  });

  it.each([
    ['--gcs-no-sign-request', { gcs: { unsigned: true } }],
    ['a custom endpoint (sent no credentials anyway)', { gcs: { endpoint: 'http://127.0.0.1:9' } }],
  ])('finds none needed under %s', async (_what, options) => {
    none();
    await expect(gcsCredentialsProblem(options, 'x')).resolves.toBeNull();
  });

  it('finds none missing with a service account key file (GOOGLE_APPLICATION_CREDENTIALS)', async () => {
    none();
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-gcs-key-'));
    try {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const key = path.join(dir, 'key.json');
      const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      await fs.writeFile(key, JSON.stringify({ type: 'service_account', project_id: 'p', client_email: 'ferry@p.iam.gserviceaccount.com', private_key: pem }));
      vi.stubEnv('GOOGLE_APPLICATION_CREDENTIALS', key);
      await expect(gcsCredentialsProblem({}, 'x')).resolves.toBeNull();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

/** A local endpoint answering every request with `statusFor(n)` (n counts from 1), JSON error body. */
async function fakeEndpoint(statusFor: (n: number) => number) {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url?.split('?')[0]}`);
    req.resume();
    const code = statusFor(seen.length);
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code, message: 'x', errors: [{ reason: 'backendError' }] } }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { seen, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

describe('GCS store on a busy endpoint', () => {
  it('fails an open whose probe meets no definite answer, and asks again next time', async () => {
    const fake = await fakeEndpoint(() => 503);
    try {
      await expect(openGcsStore('b', 'p/', { gcs: { endpoint: fake.endpoint }, maxAttempts: 1 })).rejects.toMatchObject({ code: 'THROTTLED', status: 503 });
      await expect(openGcsStore('b', 'p/', { gcs: { endpoint: fake.endpoint }, conditionalWrites: 'off', maxAttempts: 1 })).rejects.toMatchObject({ code: 'THROTTLED' });
      expect(fake.seen).toHaveLength(2);
    } finally {
      fake.close();
    }
  });

  it("with maxAttempts 1 (the worker's), makes one request per call and says THROTTLED", async () => {
    const fake = await fakeEndpoint((n) => (n === 1 ? 404 : 503)); // the root probe's PATCH gets a definite 404
    try {
      const store = await openGcsStore('b', 'p/', { gcs: { endpoint: fake.endpoint }, conditionalWrites: 'off', maxAttempts: 1 });
      const opts = { contentType: 'text/plain', metadata: {}, ifAbsent: false };
      await expect(store.stat('k')).rejects.toMatchObject({ code: 'THROTTLED', status: 503, message: 'stat gs://b/p/k: HTTP 503 backendError' });
      await expect(store.put('k', Buffer.from('x'), opts)).rejects.toMatchObject({ code: 'THROTTLED', status: 503 });
      await expect(store.put('k', Readable.from([Buffer.from('x')]), opts)).rejects.toMatchObject({ code: 'THROTTLED', status: 503 });
      await expect(store.read('k')).rejects.toMatchObject({ code: 'THROTTLED' });
      expect(fake.seen).toEqual([
        expect.stringMatching(/^PATCH \/storage\/v1\/b\/b\/o\/\.ferry-probe-[0-9a-f]+$/),
        'GET /storage/v1/b/b/o/p%2Fk',
        'POST /upload/storage/v1/b/b/o', // multipart
        'POST /upload/storage/v1/b/b/o', // resumable session
        'GET /storage/v1/b/b/o/p%2Fk',
      ]);
    } finally {
      fake.close();
    }
  });
});

describe('GCS store on the emulator', () => {
  let gcs: RunningGcs;

  beforeAll(async () => {
    gcs = await startGcsEmulator();
  });
  afterAll(async () => {
    await gcs?.stop();
  });

  it('ends a one-request upload that the endpoint stalls after --timeout (the library would wait 60 s)', async () => {
    const proxy: ServerProcess = await startServer(new URL('../test/servers/fault-proxy.mjs', import.meta.url).pathname, [gcs.endpoint]);
    try {
      const url = `http://127.0.0.1:${proxy.port}`;
      await fetch(`${url}/__faults`, { method: 'POST', body: JSON.stringify({ rules: [{ method: 'POST', path: 'upload.*stalled', fault: 'stall' }] }) });
      const store = await openGcsStore(GCS_TEST_BUCKET, 'stalled/', { gcs: { endpoint: url }, conditionalWrites: 'off', maxAttempts: 1, timeoutMs: 1000 });
      const started = Date.now();
      await expect(store.put('a.bin', Buffer.from('x'), { contentType: 'application/octet-stream', metadata: {}, ifAbsent: false })).rejects.toMatchObject({ code: 'TRANSIENT' });
      expect(Date.now() - started).toBeLessThan(10_000);
      await store.close();
    } finally {
      await proxy.stop();
    }
  }, 30_000);

  it('finds conditional create unenforced there, and obeys on/off', async () => {
    expect((await gcs.open()).capabilities.conditionalCreate).toBe(false);
    expect((await gcs.open({ conditionalWrites: 'on' })).capabilities.conditionalCreate).toBe(true);
    expect((await gcs.open({ conditionalWrites: 'off' })).capabilities.conditionalCreate).toBe(false);
    // the probe's markers are gone
    const all = [];
    for await (const o of (await openGcsStore(GCS_TEST_BUCKET, '', { gcs: { endpoint: gcs.endpoint } })).list('')) all.push(o.key);
    expect(all.filter((k) => k.includes('.ferry-probe-'))).toEqual([]);
  });

  it("removes the probe markers killed probes left at its root, and nothing else, at cleanup: not a live probe's", async () => {
    const store = await gcs.open({ conditionalWrites: 'off' });
    const put = (key: string) => store.bucket.file(store.prefix + key).save(Buffer.from('probe'), { resumable: false });
    const live = `.ferry-probe-${writerTag(process.pid)}-${Date.now()}-999`; // a probe of this process, under way
    const dead = `.ferry-probe-${writerTag(4_194_305)}-${Date.now()}-0`; // a pid no process has
    await Promise.all([put('.ferry-probe-0123456789abcdef'), put('.ferry-probe-fedcba9876543210'), put(dead), put(live), put('u/keep.txt')]);
    await store.cleanup('u/');
    const [left] = await store.bucket.getFiles({ prefix: store.prefix });
    expect(left.map((f) => f.name).sort()).toEqual([`${store.prefix}${live}`, `${store.prefix}u/keep.txt`]);
    await store.remove(live);
  });

  it('records the sha256 of a streamed body after the upload, with the rest of its metadata', async () => {
    const store = await gcs.open();
    const body = randomBytes(3 * 2 ** 20 + 17);
    const chunks = Array.from({ length: Math.ceil(body.length / 65536) }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536));
    const meta = { 'ferry-id': 'big', 'ferry-run': 'r1', 'ferry-sha256': 'a claim the bytes do not back' };
    const r = await store.put('s/big.bin', Readable.from(chunks), { contentType: 'application/x-test', metadata: meta, ifAbsent: true, size: body.length });
    expect(r.sha256).toBe(sha(body));
    const info = await store.stat('s/big.bin');
    expect(info).toMatchObject({ size: body.length, contentType: 'application/x-test', metadata: { 'ferry-id': 'big', 'ferry-run': 'r1', 'ferry-sha256': sha(body) } });
    expect(info?.version).toMatch(/^\d+$/);
  });

  it('records the sha256 of a buffer too, in the same request', async () => {
    const store = await gcs.open();
    const body = Buffer.from('buffer body');
    await store.put('b.txt', body, { contentType: 'text/plain', metadata: {}, ifAbsent: false });
    expect((await store.stat('b.txt'))?.metadata['ferry-sha256']).toBe(sha(body));
  });

  it('leaves no object when the source fails mid-way', async () => {
    const store = await gcs.open();
    let sent = 0;
    const broken = new Readable({
      read() {
        if (sent++ < 8) this.push(randomBytes(256 * 1024));
        else this.destroy(Object.assign(new Error('origin reset'), { code: 'ECONNRESET' }));
      },
    });
    const put = store.put('broken.bin', broken, { contentType: 'application/octet-stream', metadata: {}, ifAbsent: false });
    await expect(put).rejects.toMatchObject({ code: 'TRANSIENT' });
    expect(await store.stat('broken.bin')).toBeNull();
    const keys = [];
    for await (const o of store.list('')) keys.push(o.key);
    expect(keys).toEqual([]);
  });

  it('lists a prefix as a folder and gives gs:// URIs with the key as-is', async () => {
    const store = await gcs.open();
    const opts = { contentType: 'text/plain', metadata: {}, ifAbsent: false };
    await store.put('a/x.txt', Buffer.from('1'), opts);
    await store.put('a2/y.txt', Buffer.from('1'), opts);
    const keys = [];
    for await (const o of store.list('a')) keys.push(o.key);
    expect(keys).toEqual(['a/x.txt']);
    expect(store.uri('u/a%2Fb c.png')).toBe(`gs://${GCS_TEST_BUCKET}/${store.prefix}u/a%2Fb c.png`);
  });

  // `host:port` is how the firebase emulator, the Go client and gcloud spell it: plain HTTP.
  it.each([
    { form: 'a URL', host: () => gcs.endpoint },
    { form: 'host:port, without a scheme', host: () => new URL(gcs.endpoint).host },
  ])('honours STORAGE_EMULATOR_HOST ($form) when no endpoint is given', async ({ host }) => {
    const saved = process.env.STORAGE_EMULATOR_HOST;
    process.env.STORAGE_EMULATOR_HOST = host();
    try {
      const store = await openGcsStore(GCS_TEST_BUCKET, `env-${randomBytes(4).toString('hex')}/`, {});
      expect(store.capabilities.conditionalCreate).toBe(false);
      const body = randomBytes(100_000);
      await store.put('e.bin', Readable.from([body]), { contentType: 'application/octet-stream', metadata: {}, ifAbsent: true });
      expect((await store.stat('e.bin'))?.metadata['ferry-sha256']).toBe(sha(body));
    } finally {
      if (saved === undefined) delete process.env.STORAGE_EMULATOR_HOST;
      else process.env.STORAGE_EMULATOR_HOST = saved;
    }
  });
});
