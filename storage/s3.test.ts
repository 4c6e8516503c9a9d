/**
 * S3-only behaviour, against fauxqs in its own process (test/servers/s3.mjs): multipart
 * cleanup, the conditional-write probe, sha256 metadata after a streamed upload, failed
 * streams leaving nothing behind, and the error classifier; then the lean PutObject
 * (s3-put.ts) against a scripted endpoint: which writes take it, how its failures are
 * classified, and its fallbacks. The shared behaviour is in conformance.test.ts; that the
 * lean path signs as the SDK does is in s3-sign.test.ts.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { type IncomingHttpHeaders, createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { fauxqsOptions, startS3Server, stopS3Server, useFakeAwsCredentials } from '../test/helpers/backend-s3.js';
import { retryAfterMs } from '../worker/download.js';
import { type PutOptions, StorageError, type StorageErrorCode } from './adapter.js';
import { tooManyParts } from './multipart.js';
import { writerTag } from './process.js';
import { PROBE_MARKER, type S3Store, classifyS3Error, createS3Client, openS3Store, s3CredentialsProblem } from './s3.js';
import { NO_AWS_CREDENTIALS, NO_AWS_FILE } from '../test/helpers/aws-env.js';
import { type ServerProcess, startServer } from '../test/helpers/server.js';

const MiB = 2 ** 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const opts = (extra: Partial<PutOptions> = {}): PutOptions => ({ contentType: 'application/octet-stream', metadata: { 'ferry-id': 'x' }, ifAbsent: false, ...extra });

/** A Readable of `bytes` in 1 MiB chunks that fails with `error` after them, asynchronously. */
function failingAfter(bytes: Buffer, error: Error): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < bytes.length; i += MiB) yield bytes.subarray(i, i + MiB);
      await new Promise((r) => setTimeout(r, 20));
      throw error;
    })(),
  );
}

async function bytesOf(body: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A local S3 server with one bucket, and an admin client on it. */
async function serve(args: string[] = []) {
  const { port, child } = await startS3Server(args);
  const bucket = `ferry-s3-${randomBytes(4).toString('hex')}`;
  const admin = createS3Client(fauxqsOptions(port));
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  let n = 0;
  const open = (extra: Parameters<typeof fauxqsOptions>[1] = {}) => openS3Store(bucket, `t${++n}/`, fauxqsOptions(port, extra));
  return { port, child, bucket, admin, open };
}

async function openUploads(admin: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const r = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (r.Uploads ?? []).map((u) => u.Key ?? '');
}

/** Runs `fn` with some environment variables set (or removed, for undefined), then puts them back. */
async function withEnv(values: Record<string, string | undefined>, fn: () => Promise<void>): Promise<void> {
  const before = Object.entries(values).map(([k]) => [k, process.env[k]] as const);
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    await fn();
  } finally {
    for (const [k, v] of before) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

let restoreEnv: () => void;
beforeAll(() => {
  restoreEnv = useFakeAwsCredentials();
});
afterAll(() => restoreEnv());

describe('S3Store on fauxqs', () => {
  let server: Awaited<ReturnType<typeof serve>>;
  let child: ChildProcessWithoutNullStreams;

  beforeAll(async () => {
    server = await serve();
    child = server.child;
  });
  afterAll(async () => {
    server?.admin.destroy();
    if (child) await stopS3Server(child);
  });

  it('probes conditional writes once per bucket: fauxqs accepts If-None-Match and overwrites, so off', async () => {
    const a = await server.open();
    const b = await server.open();
    try {
      expect(a.conditionalWrites).toMatchObject({ enabled: false, decidedBy: 'probe' });
      expect(a.capabilities.conditionalCreate).toBe(false);
      expect(b.conditionalWrites).toBe(a.conditionalWrites); // the same probe, not a second one
      const all = await server.admin.send(new ListObjectsV2Command({ Bucket: server.bucket }));
      expect((all.Contents ?? []).filter((o) => o.Key?.includes(PROBE_MARKER))).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it.each([
    ['on', true],
    ['off', false],
  ] as const)('takes --conditional-writes %s as given, without a probe', async (mode, enabled) => {
    const store = await server.open({ conditionalWrites: mode });
    expect(store.conditionalWrites).toMatchObject({ enabled, decidedBy: 'option' });
    expect(store.capabilities.conditionalCreate).toBe(enabled);
    await store.close();
  });

  it('finds its endpoint in AWS_ENDPOINT_URL_S3 by itself, and probes it as a custom one', async () => {
    await withEnv({ AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${server.port}`, AWS_ENDPOINT_URL: undefined, AWS_CONFIG_FILE: NO_AWS_FILE }, async () => {
      const store = await openS3Store(server.bucket, 'env/', { s3: { forcePathStyle: true } });
      expect(store.conditionalWrites).toMatchObject({ enabled: false, decidedBy: 'probe' });
      await store.put('k.txt', Buffer.from('via env'), opts());
      expect((await store.stat('k.txt'))?.size).toBe(7);
      await store.close();
    });
  });

  it('takes AWS itself (no custom endpoint) as enforcing, without a probe', async () => {
    await withEnv({ AWS_ENDPOINT_URL_S3: undefined, AWS_ENDPOINT_URL: undefined, AWS_CONFIG_FILE: NO_AWS_FILE }, async () => {
      const store = await openS3Store('ferry-never-contacted', '', {});
      expect(store.conditionalWrites).toMatchObject({ enabled: true, decidedBy: 'aws' });
      await store.close();
    });
  });

  it('gives URIs with the key as-is and lists keys relative to its prefix', async () => {
    const store = await server.open({ conditionalWrites: 'off' });
    expect(store.uri('u/a b%25é.png')).toBe(`s3://${server.bucket}/${store.prefix}u/a b%25é.png`);
    await store.put('u/a b%25é.png', Buffer.from('x'), opts());
    const keys: string[] = [];
    for await (const o of store.list('u/')) keys.push(o.key);
    expect(keys).toEqual(['u/a b%25é.png']);
    await store.close();
  });

  it("aborts the multipart uploads a unit's killed writers left open, across pages, and nothing else", async () => {
    const store = await server.open({ conditionalWrites: 'off' });
    const start = (key: string) => server.admin.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: store.prefix + key }));
    const shard = (n: number) => (n % 256).toString(16).padStart(2, '0');
    for (let i = 0; i < 1005; i += 100) await Promise.all(Array.from({ length: Math.min(100, 1005 - i) }, (_, j) => start(`killed/${shard(i + j)}/${i + j}.bin`)));
    await start('other/ab/keep.bin');
    await start('killed/sub/cd/nested-unit.bin'); // unit killed/sub: not killed's to clean
    await start('killed/ef/theirs.bin'); // another migration's, under a unit of the same name
    await store.put('killed/ab/done.txt', Buffer.from('x'), opts());
    expect(await openUploads(server.admin, server.bucket, `${store.prefix}killed/`)).toHaveLength(1000); // one page of many
    await store.cleanup('killed/', (key) => key !== 'killed/ef/theirs.bin');
    expect(await openUploads(server.admin, server.bucket, `${store.prefix}killed/`)).toEqual([`${store.prefix}killed/ef/theirs.bin`, `${store.prefix}killed/sub/cd/nested-unit.bin`]);
    expect(await openUploads(server.admin, server.bucket, `${store.prefix}other/`)).toEqual([`${store.prefix}other/ab/keep.bin`]);
    expect(await store.stat('killed/ab/done.txt')).not.toBeNull();
    await store.close();
  }, 60_000);

  it("aborts the multipart uploads killed publishes of a key left open, and no other key's", async () => {
    const store = await server.open({ conditionalWrites: 'off' });
    const start = (key: string) => server.admin.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: store.prefix + key }));
    await start('out/2024/b1.parquet');
    await start('out/2024/b1.parquet');
    await start('out/2024/b1.parquet.bak');
    await store.put('out/2024/b1.parquet', Buffer.from('renewed'), opts());
    await store.discardPartial('out/2024/b1.parquet');
    expect(await openUploads(server.admin, server.bucket, `${store.prefix}out/`)).toEqual([`${store.prefix}out/2024/b1.parquet.bak`]);
    expect(await store.stat('out/2024/b1.parquet')).not.toBeNull();
    await store.close();
  });

  it("removes the probe markers killed probes left at its root, and nothing else, at cleanup: not a live probe's", async () => {
    const store = await server.open({ conditionalWrites: 'off' });
    const put = (key: string) => server.admin.send(new PutObjectCommand({ Bucket: server.bucket, Key: store.prefix + key, Body: 'probe' }));
    const live = `${PROBE_MARKER}${writerTag(process.pid)}-${Date.now()}-999`; // a probe of this process, under way
    const dead = `${PROBE_MARKER}${writerTag(4_194_305)}-${Date.now()}-0`; // a pid no process has
    await Promise.all([put(`${PROBE_MARKER}0123456789abcdef`), put(`${PROBE_MARKER}fedcba9876543210`), put(dead), put(live), put('u/keep.txt')]);
    await store.cleanup('u/', () => true);
    const all = await server.admin.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: store.prefix }));
    expect((all.Contents ?? []).map((o) => o.Key).sort()).toEqual([`${store.prefix}${live}`, `${store.prefix}u/keep.txt`]);
    await store.remove(live);
    await store.close();
  });

  it('records ferry-sha256 with the caller metadata and content type after a streamed multipart upload', async () => {
    const store = await server.open({ conditionalWrites: 'off' });
    const body = randomBytes(14 * MiB); // three 6 MiB parts
    const r = await store.put('big.bin', Readable.from([body.subarray(0, 5 * MiB), body.subarray(5 * MiB)]), opts({ contentType: 'image/png', size: body.length }));
    expect(r.sha256).toBe(sha(body));
    const info = await store.stat('big.bin');
    expect(info).toMatchObject({ size: body.length, contentType: 'image/png', metadata: { 'ferry-id': 'x', 'ferry-sha256': sha(body) } });
    expect(sha(await bytesOf((await store.read('big.bin')).body))).toBe(sha(body));
    await store.close();
  }, 60_000);

  it('writes a stream shorter than one part as one object that carries ferry-sha256 from the start', async () => {
    const store = await server.open({ conditionalWrites: 'off' });
    const body = randomBytes(100_000);
    const r = await store.put('small.bin', Readable.from([body]), opts());
    expect(r.sha256).toBe(sha(body));
    expect((await store.stat('small.bin'))?.metadata).toEqual({ 'ferry-id': 'x', 'ferry-sha256': sha(body) });
    await store.close();
  });

  it.each([
    ['after two parts went up', 13 * MiB],
    ['within the first part', 2 * MiB],
  ])('rethrows a source that fails %s, and leaves no object and no open multipart upload', async (_when, bytes) => {
    const store = await server.open({ conditionalWrites: 'off' });
    const boom = Object.assign(new Error('origin reset'), { code: 'ECONNRESET' });
    await expect(store.put('broken.bin', failingAfter(randomBytes(bytes), boom), opts())).rejects.toBe(boom);
    expect(await store.stat('broken.bin')).toBeNull();
    expect(await openUploads(server.admin, server.bucket, store.prefix)).toEqual([]);
    await store.close();
  }, 60_000);

  it('refuses a stream whose length differs from its declared size, leaving nothing', async () => {
    const store = await server.open({ conditionalWrites: 'off' });
    const body = randomBytes(8 * MiB);
    await expect(store.put('short.bin', Readable.from([body]), opts({ size: body.length + 1 }))).rejects.toMatchObject({ code: 'TRANSIENT' });
    expect(await store.stat('short.bin')).toBeNull();
    expect(await openUploads(server.admin, server.bucket, store.prefix)).toEqual([]);
    await store.close();
  }, 60_000);

  it('refuses a stream whose declared size needs more parts than that before reading a byte or opening an upload', async () => {
    const store = await server.open({ conditionalWrites: 'off' }); // 6 MiB parts
    let read = false;
    const body = new Readable({
      read() {
        read = true;
        this.push(null);
      },
    });
    const size = 6 * MiB * 10_000 + 1;
    const err = await store.put('huge.bin', body, opts({ size })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code: 'FATAL' });
    expect((err as Error).message).toMatch(/^PUT s3:\/\/.*\/huge\.bin: 62914560001 bytes are 10001 parts of 6 MiB; S3 takes at most 10000 parts: a part size \(--part-size\) of at least 7 MiB fits it$/);
    expect(read).toBe(false);
    expect(await openUploads(server.admin, server.bucket, store.prefix)).toEqual([]);
    await store.close();
  });
});

describe('a machine clock an hour off, through a proxy that refuses requests signed 15 min away (RequestTimeTooSkewed), as S3 does', () => {
  let server: Awaited<ReturnType<typeof serve>>;
  let proxy: ServerProcess;
  let n = 0;
  /** A store with a client of its own (its clock offset learned from nothing yet), one try per request as a worker's. */
  const open = () => openS3Store(server.bucket, `skew${++n}/`, fauxqsOptions(proxy.port, { conditionalWrites: 'off', maxAttempts: 1 }));

  beforeAll(async () => {
    server = await serve();
    proxy = await startServer(new URL('../test/servers/fault-proxy.mjs', import.meta.url).pathname, [String(server.port)]);
    await fetch(`http://127.0.0.1:${proxy.port}/__faults`, { method: 'POST', body: JSON.stringify({ rules: [{ fault: 'clock' }] }) });
  });
  afterAll(async () => {
    server?.admin.destroy();
    await proxy?.stop();
    if (server) await stopS3Server(server.child);
  });
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 3_600_000);
  });
  afterEach(() => vi.useRealTimers());

  it("writes a small object: the lean PutObject takes S3's time from the refusal and signs once more, as the SDK does", async () => {
    const store = await open();
    await store.put('a.bin', Buffer.from('on time'), opts());
    expect((await store.stat('a.bin'))?.size).toBe(7);
    await store.close();
  });

  it.each([
    ['a HEAD', (store: S3Store) => store.stat('b.bin')],
    ['a PutObject of 2 MiB', (store: S3Store) => store.put('c.bin', randomBytes(2 * MiB), opts())],
  ])("%s the SDK sends is refused once as TRANSIENT, for the caller to retry, not FORBIDDEN: the next is signed at S3's time", async (_name, request) => {
    const store = await open();
    await expect(request(store)).rejects.toMatchObject({ code: 'TRANSIENT', status: 403 });
    await request(store);
    await store.close();
  });
});

describe('the 10,000 parts S3 takes per multipart upload', () => {
  it.each([
    [64 * MiB * 10_000, 64 * MiB, null],
    [64 * MiB * 10_000 + 1, 64 * MiB, 65],
    [5 * 2 ** 40, 64 * MiB, 525],
    [5 * 2 ** 40, 1024 * MiB, null],
  ])('tooManyParts(%i bytes, parts of %i): at least %s MiB', (size, partSize, least) => {
    const problem = tooManyParts(size, partSize);
    if (least === null) expect(problem).toBeNull();
    else expect(problem).toContain(`of at least ${least} MiB fits it`);
  });
});

describe('S3Store on an endpoint that enforces If-None-Match', () => {
  let server: Awaited<ReturnType<typeof serve>>;
  let store: S3Store;

  beforeAll(async () => {
    server = await serve(['--enforce-conditional-writes']);
    store = await server.open();
  });
  afterAll(async () => {
    await store?.close();
    server?.admin.destroy();
    if (server) await stopS3Server(server.child);
  });

  it('is found enforcing by the probe', () => {
    expect(store.conditionalWrites).toMatchObject({ enabled: true, decidedBy: 'probe' });
  });

  it('refuses a second buffer under ifAbsent with EXISTS (412), and overwrites without it', async () => {
    await store.put('one.bin', Buffer.from('first'), opts({ ifAbsent: true }));
    await expect(store.put('one.bin', Buffer.from('second'), opts({ ifAbsent: true }))).rejects.toMatchObject({ code: 'EXISTS', status: 412 });
    expect((await bytesOf((await store.read('one.bin')).body)).toString()).toBe('first');
    await store.put('one.bin', Buffer.from('second'), opts({ ifAbsent: false }));
    expect((await bytesOf((await store.read('one.bin')).body)).toString()).toBe('second');
  });

  it('refuses a multipart upload onto an existing key at completion, and aborts it', async () => {
    await store.put('big.bin', Buffer.from('first'), opts({ ifAbsent: true }));
    const body = randomBytes(13 * MiB);
    await expect(store.put('big.bin', Readable.from([body]), opts({ ifAbsent: true }))).rejects.toMatchObject({ code: 'EXISTS', status: 412 });
    expect((await bytesOf((await store.read('big.bin')).body)).toString()).toBe('first');
    expect(await openUploads(server.admin, server.bucket, store.prefix)).toEqual([]);
  }, 60_000);
});

describe('S3 error classification', () => {
  const sdkError = (name: string, status?: number, code?: string) =>
    Object.assign(new Error(`${name} with a message that must not be shown`), { name, ...(code ? { code } : {}), $metadata: status ? { httpStatusCode: status } : {} });

  it.each<[string, number | undefined, string | undefined, StorageErrorCode]>([
    ['NoSuchKey', 404, undefined, 'NOT_FOUND'],
    ['NotFound', 404, undefined, 'NOT_FOUND'],
    ['NoSuchBucket', 404, undefined, 'NOT_FOUND'],
    ['AccessDenied', 403, undefined, 'FORBIDDEN'],
    ['InvalidAccessKeyId', 403, undefined, 'FORBIDDEN'],
    ['SignatureDoesNotMatch', 403, undefined, 'FORBIDDEN'],
    ['RequestTimeTooSkewed', 403, undefined, 'TRANSIENT'],
    ['Unauthorized', 401, undefined, 'FORBIDDEN'],
    ['PreconditionFailed', 412, undefined, 'EXISTS'],
    ['ConditionalRequestConflict', 409, undefined, 'TRANSIENT'],
    ['BucketAlreadyOwnedByYou', 409, undefined, 'FATAL'],
    ['SlowDown', 503, undefined, 'THROTTLED'],
    ['TooManyRequests', 429, undefined, 'THROTTLED'],
    ['Throttling', 400, undefined, 'THROTTLED'],
    ['RequestLimitExceeded', 400, undefined, 'THROTTLED'],
    ['InternalError', 500, undefined, 'TRANSIENT'],
    ['BadGateway', 502, undefined, 'TRANSIENT'],
    ['RequestTimeout', 400, undefined, 'TRANSIENT'],
    ['XAmzContentSHA256Mismatch', 400, undefined, 'TRANSIENT'],
    ['BadDigest', 400, undefined, 'TRANSIENT'],
    ['IncompleteBody', 400, undefined, 'TRANSIENT'],
    ['TimeoutError', undefined, 'ETIMEDOUT', 'TRANSIENT'],
    ['SocketError', undefined, 'UND_ERR_SOCKET', 'TRANSIENT'],
    ['ConnectTimeoutError', undefined, 'UND_ERR_CONNECT_TIMEOUT', 'TRANSIENT'],
    ['HeadersTimeoutError', undefined, 'UND_ERR_HEADERS_TIMEOUT', 'TRANSIENT'],
    ['BodyTimeoutError', undefined, 'UND_ERR_BODY_TIMEOUT', 'TRANSIENT'],
    ['Error', undefined, 'ECONNRESET', 'TRANSIENT'],
    ['Error', undefined, 'ECONNREFUSED', 'TRANSIENT'],
    ['Error', undefined, 'EMFILE', 'TRANSIENT'],
    ['Error', undefined, 'ENFILE', 'TRANSIENT'],
    ['InvalidArgument', 400, undefined, 'FATAL'],
    ['EntityTooLarge', 413, undefined, 'FATAL'],
    ['Error', undefined, undefined, 'FATAL'],
  ])('%s (HTTP %s, %s) is %s', (name, status, code, expected) => {
    const err = classifyS3Error(sdkError(name, status, code), 'PUT s3://b/k');
    expect(err.code).toBe(expected);
    expect(err.status).toBe(status);
    expect(err.message).not.toMatch(/must not be shown|\n/);
    expect(err.message).toContain(name);
  });

  it('says FORBIDDEN, naming the missing credentials, when the credential chain finds none (no request is sent)', async () => {
    await withEnv(NO_AWS_CREDENTIALS, async () => {
      // Port 9 (discard): were a request sent, it would fail as TRANSIENT, not FORBIDDEN.
      const store = await openS3Store('b', '', fauxqsOptions(9, { conditionalWrites: 'off' }));
      await expect(store.read('k')).rejects.toMatchObject({
        code: 'FORBIDDEN',
        message: 'GET s3://b/k: no AWS credentials (CredentialsProviderError: Could not load credentials from any providers)',
      });
      await expect(store.put('k', Buffer.from('x'), opts())).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('PUT s3://b/k: no AWS credentials') });
      await store.close();
    });
  });

  it('asks the credential chain once without a request: FORBIDDEN naming what, null when unsigned or when credentials exist', async () => {
    const none = { ...NO_AWS_CREDENTIALS };
    await withEnv(none, async () => {
      const problem = await s3CredentialsProblem(fauxqsOptions(9), 'its s3:// URLs cannot be fetched');
      expect(problem).toMatchObject({ code: 'FORBIDDEN', message: 'its s3:// URLs cannot be fetched: no AWS credentials (CredentialsProviderError: Could not load credentials from any providers)' });
      const o = fauxqsOptions(9);
      expect(await s3CredentialsProblem({ ...o, s3: { ...o.s3, unsigned: true } }, 'x')).toBeNull();
    });
    await withEnv({ ...none, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' }, async () => {
      expect(await s3CredentialsProblem(fauxqsOptions(9), 'x')).toBeNull();
    });
  });

  it('reads unsigned where asked: no Authorization, no credentials needed', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createHttpServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': '5', etag: '"e"' }).end('hello');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await withEnv(NO_AWS_CREDENTIALS, async () => {
        const o = fauxqsOptions((server.address() as AddressInfo).port, { conditionalWrites: 'off' });
        const store = await openS3Store('pub', '', { ...o, s3: { ...o.s3, unsigned: true } });
        const { body, info } = await store.read('img/a.png');
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c as Buffer);
        expect([Buffer.concat(chunks).toString(), info.size]).toEqual(['hello', 5]);
        await store.close();
      });
    } finally {
      server.close();
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]).not.toHaveProperty('authorization');
    expect(seen[0]).not.toHaveProperty('x-amz-security-token');
  });

  it('classifies what is not an error object as FATAL', () => {
    expect(classifyS3Error('boom', 'GET s3://b/k').code).toBe('FATAL');
  });

  it('says TRANSIENT for an endpoint where nothing listens', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const store = await openS3Store('b', '', fauxqsOptions(port, { conditionalWrites: 'off' }));
    await expect(store.stat('k')).rejects.toMatchObject({ code: 'TRANSIENT' });
    await store.close();
  }, 30_000);
});

// ---------------------------------------------------------------------------------------

type Seen = { method: string; url: string; headers: IncomingHttpHeaders; bytes: number };
type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'reset' | 'stall';

/** A stand-in S3 endpoint on 127.0.0.1: answers each request from a script (200 once it is done) and records it. */
async function scripted() {
  const seen: Seen[] = [];
  const script: Answer[] = [];
  const server = createHttpServer((req, res) => {
    const answer = script.shift() ?? { status: 200 };
    if (answer === 'reset') return void req.socket.resetAndDestroy();
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bytes });
      if (answer !== 'stall') res.writeHead(answer.status, answer.headers).end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()) && server.closeAllConnections());
  return { endpoint, seen, script, close };
}

/** Sent by the SDK about itself; the lean PutObject sends none of it. */
const bySdk = (r: Seen) => r.headers['amz-sdk-invocation-id'] !== undefined;
const s3Error = (code: string) => `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>no</Message><RequestId>1</RequestId></Error>`;

describe('the lean PutObject (s3-put.ts)', () => {
  let server: Awaited<ReturnType<typeof scripted>>;
  let store: S3Store;

  beforeAll(async () => {
    server = await scripted();
  });
  afterAll(() => server?.close());
  beforeEach(async () => {
    await store?.close();
    store = await openS3Store('bucket', 'p/', { s3: { endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1' }, conditionalWrites: 'on', maxAttempts: 1, timeoutMs: 1000 });
    server.seen.length = 0;
    server.script.length = 0;
  });
  afterAll(() => store?.close());

  it('sends a Buffer below 2 MiB, and a stream shorter than a part, with its signed sha256 and no Content-MD5', async () => {
    const body = randomBytes(2 * MiB - 1);
    expect(await store.put('a.bin', body, opts({ ifAbsent: true, sha256: sha(body) }))).toEqual({ sha256: sha(body) });
    const small = randomBytes(1000);
    expect(await store.put('b.bin', Readable.from([small]), opts())).toEqual({ sha256: sha(small) });
    expect(server.seen.map((r) => [bySdk(r), r.url, r.bytes, r.headers['x-amz-content-sha256'], r.headers['content-md5'], r.headers['if-none-match']])).toEqual([
      [false, '/bucket/p/a.bin?x-id=PutObject', body.length, sha(body), undefined, '*'],
      [false, '/bucket/p/b.bin?x-id=PutObject', small.length, sha(small), undefined, undefined],
    ]);
    expect(server.seen[1]!.headers['x-amz-meta-ferry-sha256']).toBe(sha(small));
  });

  it('leaves a Buffer of 2 MiB or more to the SDK, with Content-MD5 and Expect: 100-continue', async () => {
    const body = randomBytes(2 * MiB);
    await store.put('big.bin', body, opts({ sha256: sha(body) }));
    expect(server.seen.map((r) => [bySdk(r), r.headers['content-md5'], r.headers.expect])).toEqual([[true, createHash('md5').update(body).digest('base64'), '100-continue']]);
  });

  it.each<[string, Answer, StorageErrorCode, number | undefined, string | RegExp]>([
    ['412 PreconditionFailed', { status: 412, body: s3Error('PreconditionFailed') }, 'EXISTS', 412, 'PreconditionFailed, HTTP 412'],
    ['403 AccessDenied', { status: 403, body: s3Error('AccessDenied') }, 'FORBIDDEN', 403, 'AccessDenied, HTTP 403'],
    ['403 SignatureDoesNotMatch', { status: 403, body: s3Error('SignatureDoesNotMatch') }, 'FORBIDDEN', 403, 'SignatureDoesNotMatch, HTTP 403'],
    ['503 SlowDown', { status: 503, body: s3Error('SlowDown') }, 'THROTTLED', 503, 'SlowDown, HTTP 503'],
    ['429 without a body', { status: 429 }, 'THROTTLED', 429, 'UnknownError, HTTP 429'],
    ['500 InternalError', { status: 500, body: s3Error('InternalError') }, 'TRANSIENT', 500, 'InternalError, HTTP 500'],
    ["a proxy's 502 page", { status: 502, body: '<html>Bad Gateway</html>' }, 'TRANSIENT', 502, 'UnknownError, HTTP 502'],
    ['400 XAmzContentSHA256Mismatch (a body damaged on the way: sent again)', { status: 400, body: s3Error('XAmzContentSHA256Mismatch') }, 'TRANSIENT', 400, 'XAmzContentSHA256Mismatch, HTTP 400'],
    ['200 with an error body (S3 failed after answering; a 503, as for the SDK)', { status: 200, body: s3Error('InternalError') }, 'THROTTLED', 503, 'InternalError, HTTP 503'],
    // reset while sending (the socket's own error) or while waiting for the answer (undici's)
    ['a connection reset', 'reset', 'TRANSIENT', undefined, /^(Error, ECONNRESET|SocketError, UND_ERR_SOCKET)$/],
    ['no answer within --timeout', 'stall', 'TRANSIENT', undefined, 'HeadersTimeoutError, UND_ERR_HEADERS_TIMEOUT'],
  ])('classifies %s as the SDK path would, in one request and a one-line message', async (_name, answer, code, status, label) => {
    server.script.push(answer);
    const err = await store.put('k.bin', Buffer.from('x'), opts()).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ code, status });
    const [what, detail] = (err as Error).message.split(': ');
    expect(what).toBe('PUT s3://bucket/p/k.bin');
    if (typeof label === 'string') expect(detail).toBe(label);
    else expect(detail).toMatch(label);
    expect((err as Error).message).not.toMatch(/ferry-test|Credential|Signature=|\n/);
    // undici retries nothing: each try is one the worker's loop counts (the reset one never completed its body).
    await new Promise((r) => setTimeout(r, 50));
    expect(server.seen.length).toBe(answer === 'reset' ? 0 : 1);
    expect(server.seen.every((r) => !bySdk(r))).toBe(true);
  }, 10_000);

  it("keeps S3's Retry-After where the worker reads it", async () => {
    server.script.push({ status: 503, headers: { 'Retry-After': '7' }, body: s3Error('SlowDown') });
    const err = await store.put('k.bin', Buffer.from('x'), opts()).catch((e: unknown) => e);
    expect(retryAfterMs(err)).toBe(7000);
  });

  it("hands a PUT that S3 redirects to the bucket's region to the SDK, and sends the store's next ones through it", async () => {
    server.script.push({ status: 301, headers: { 'x-amz-bucket-region': 'eu-west-3' }, body: s3Error('PermanentRedirect') });
    await store.put('one.bin', Buffer.from('1'), opts());
    await store.put('two.bin', Buffer.from('2'), opts());
    expect(server.seen.map((r) => [bySdk(r), r.url])).toEqual([
      [false, '/bucket/p/one.bin?x-id=PutObject'],
      [true, '/bucket/p/one.bin?x-id=PutObject'],
      [true, '/bucket/p/two.bin?x-id=PutObject'],
    ]);
  });
});

describe('the signing region', () => {
  let server: Awaited<ReturnType<typeof scripted>>;
  let dir: string;
  beforeAll(async () => {
    server = await scripted();
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-region-'));
    // A named profile brings its own (fake) keys: with AWS_PROFILE set, the SDK reads no keys from the environment.
    writeFileSync(path.join(dir, 'config'), '[default]\nregion = eu-west-3\n\n[profile other]\nregion = ap-south-1\naws_access_key_id = other-key\naws_secret_access_key = other-secret\n');
  });
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The region in the credential scope of the PUT a store sends with this environment. */
  async function signedRegion(env: Record<string, string | undefined>): Promise<string | undefined> {
    let region: string | undefined;
    await withEnv({ AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined, AWS_PROFILE: undefined, AWS_CONFIG_FILE: NO_AWS_FILE, ...env }, async () => {
      server.seen.length = 0;
      const store = await openS3Store('bucket', '', { s3: { endpoint: server.endpoint, forcePathStyle: true }, conditionalWrites: 'off', maxAttempts: 1 });
      try {
        await store.put('k.bin', Buffer.from('x'), opts());
      } finally {
        await store.close();
      }
      region = /Credential=[^/]+\/\d{8}\/([^/]+)\/s3\/aws4_request/.exec(String(server.seen[0]?.headers.authorization))?.[1];
    });
    return region;
  }

  it.each<[string, Record<string, string | undefined>, string]>([
    ["the config file's default profile (aws configure writes it there)", { AWS_CONFIG_FILE: 'config' }, 'eu-west-3'],
    ["AWS_PROFILE's region", { AWS_CONFIG_FILE: 'config', AWS_PROFILE: 'other' }, 'ap-south-1'],
    ['AWS_REGION over the file', { AWS_CONFIG_FILE: 'config', AWS_REGION: 'sa-east-1' }, 'sa-east-1'],
    ['AWS_DEFAULT_REGION (the aws CLI reads it)', { AWS_DEFAULT_REGION: 'eu-north-1' }, 'eu-north-1'],
    ['us-east-1 where nothing says', {}, 'us-east-1'],
  ])('is %s', async (_what, env, want) => {
    const file = env.AWS_CONFIG_FILE ? path.join(dir, env.AWS_CONFIG_FILE) : undefined;
    expect(await signedRegion({ ...env, ...(file ? { AWS_CONFIG_FILE: file } : {}) })).toBe(want);
  });
});
