/**
 * GCS through test/servers/fault-proxy.mjs, a proxy process in front of the Storage
 * emulator that stalls requests and bodies on real sockets: a stalled gs:// source body
 * and a stalled streamed upload must each end after --timeout and be retried, never hold
 * a task for good.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHttpClient } from '../../storage/http.js';
import { objectKey, openStore } from '../../storage/index.js';
import { download, retryAfterMs } from '../../worker/download.js';
import { GCS_TEST_BUCKET, type RunningGcs, startGcsEmulator } from '../helpers/backend-gcs.js';
import { duck } from '../helpers/duckdb.js';
import { type Origin, ferry, ferrySpawn, startOrigin } from '../helpers/run.js';
import { type ServerProcess, startServer } from '../helpers/server.js';

const PROXY = fileURLToPath(new URL('../servers/fault-proxy.mjs', import.meta.url));
type Rule = { method?: string; path?: string; fault: string; times?: number; ms?: number; status?: number; code?: string };

let gcs: RunningGcs;
let proxy: ServerProcess;
let url: string;

async function control(method: string, route: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`${url}${route}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (!r.ok) throw new Error(`fault-proxy ${method} ${route}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function faults(rules: Rule[]): Promise<void> {
  await control('POST', '/__faults', { rules, seed: 7 });
  await control('DELETE', '/__stats');
}

const stats = () => control('GET', '/__stats') as Promise<{ faults: Record<string, number>; stalled: number }>;

beforeAll(async () => {
  gcs = await startGcsEmulator();
  proxy = await startServer(PROXY, [gcs.endpoint]);
  url = `http://127.0.0.1:${proxy.port}`;
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await gcs?.stop();
});

describe('a gs:// source through the proxy', () => {
  it('whose body stalls is cut after --timeout without a byte, as an HTTP body is, and retried', async () => {
    const key = 'src/stall-idle.bin';
    const direct = await openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: '' }, { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
    await direct.put(key, Buffer.alloc(200_000, 3), { contentType: 'application/octet-stream', metadata: {}, ifAbsent: false });
    // Only the media GET stalls (the metadata GET before it answers).
    await faults([{ method: 'GET', path: 'stall-idle\\.bin.*alt=media', fault: 'stall-body' }]);
    // No minimum rate, and the library's per-request timeout far off: only --timeout can end it.
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none', minRate: 0, timeoutMs: 1000 });
    const stores = () => openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: '' }, { gcs: { endpoint: url }, conditionalWrites: 'off', maxAttempts: 1, timeoutMs: 120_000 });
    try {
      const r = await download(`gs://${GCS_TEST_BUCKET}/${key}`, { client, retries: 1, backoffBaseMs: 5, stores });
      expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 2 });
      expect(r.ok || r.detail).toContain('FERRY_IDLE_TIMEOUT');
      expect((await stats()).faults).toEqual({ 'GET stall-body': 2 });
    } finally {
      await client.close();
    }
  }, 60_000);
  // The object's bytes come from a second request (alt=media) after its metadata: a refusal
  // there reached the download as a body error, read as a bug (RESET, never retried:
  // "internal error (bug?): FORBIDDEN …"), and a throttle's Retry-After was lost.
  it.each([
    { what: '403', rule: { fault: 'status', status: 403, code: 'forbidden' }, result: { reason: 'FORBIDDEN', attempts: 1 }, faulted: 1 },
    { what: '404 (the generation read is gone)', rule: { fault: 'status', status: 404, code: 'notFound' }, result: { reason: 'NOT_FOUND', attempts: 1 }, faulted: 1 },
    { what: '429 asking for 120 s', rule: { fault: 'throttle', retryAfter: '120' }, result: { reason: 'THROTTLED', attempts: 1 }, faulted: 1 },
    { what: '500', rule: { fault: 'internal' }, result: { reason: 'HTTP_5XX', attempts: 2 }, faulted: 2 },
  ])('whose media request is refused with $what fails as the store said, as when its metadata request is', async ({ rule, result, faulted }) => {
    const key = 'src/refused-media.bin';
    const direct = await openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: '' }, { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
    await direct.put(key, Buffer.alloc(200_000, 5), { contentType: 'application/octet-stream', metadata: {}, ifAbsent: false });
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none', minRate: 0, timeoutMs: 5000 });
    const stores = () => openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: '' }, { gcs: { endpoint: url }, conditionalWrites: 'off', maxAttempts: 1, timeoutMs: 5000 });
    try {
      // Read whole, and handed over unread as a stream (a large object under --profile any).
      for (const streamAbove of [undefined, 1000]) {
        await faults([{ method: 'GET', path: 'refused-media\\.bin.*alt=media', ...rule }]);
        const r = await download(`gs://${GCS_TEST_BUCKET}/${key}`, { client, retries: 1, backoffBaseMs: 5, stores, ...(streamAbove ? { streamAbove } : {}) });
        expect(r).toMatchObject({ ok: false, ...result });
        expect(r.ok || r.detail).not.toContain('bug');
        expect(Object.values((await stats()).faults)).toEqual([faulted]);
      }
    } finally {
      await client.close();
    }
  }, 60_000);
});

describe('a gs:// source stored with Content-Encoding: gzip', () => {
  // GCS keeps such an object's gzip bytes (its size is theirs) and serves them decoded, as
  // browsers and gsutil take them: every one failed RESET 'body longer than its announced
  // N bytes', on every retry, the decoded bytes being more than the stored size.
  it('is copied as its decoded bytes (their size and sha256), as an HTTP body in a coding is; a gzip file labelled so is copied as stored', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-gcs-gzip-'));
    try {
      const store = await gcs.open({ conditionalWrites: 'off' });
      const text = Buffer.from('a line of text, said again and again\n'.repeat(400));
      const big = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 13));
      const put = (key: string, bytes: Buffer, contentType: string) =>
        store.bucket.file(store.prefix + key).save(gzipSync(bytes), { resumable: false, contentType, metadata: { contentEncoding: 'gzip' } });
      await put('text.txt', text, 'text/plain');
      await put('big.bin', big, 'application/octet-stream');
      await put('archive.tar.gz', text, 'application/gzip');
      const archive = (await store.bucket.file(`${store.prefix}archive.tar.gz`).download({ decompress: false }))[0];
      const src = (key: string) => `gs://${GCS_TEST_BUCKET}/${store.prefix}${key}`;
      const tasks = `t\t${src('text.txt')}\nb\t${src('big.bin')}\na\t${src('archive.tar.gz')}\n`;
      // big.bin is past the threshold decoded: streamed, with no length announced.
      const r = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, 'dest'), '--gcs-endpoint', gcs.endpoint, '--profile', 'any', '--multipart-threshold', '100KiB', '--retries', '0'], { input: tasks });
      expect(r.code, r.stderr).toBe(0);
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      const done = r.stdout.split('\n').filter((l) => /^(UP_OK|UP_ERR|DL_ERR)/.test(l)).map((l) => l.split('\t')).map((f) => [f[0], f[1], f[4], f[5]].join(' ')).sort();
      expect(done).toEqual([`UP_OK a ${archive.length} ${sha(archive)}`, `UP_OK b ${big.length} ${sha(big)}`, `UP_OK t ${text.length} ${sha(text)}`]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('a gs:// destination through the proxy', () => {
  const big = () => Readable.from(Array.from({ length: 64 }, (_, i) => Buffer.alloc(65_536, i)));
  const opts = { contentType: 'application/octet-stream', metadata: {}, ifAbsent: false };

  it.each([
    { what: 'the session request', rule: { method: 'POST', path: 'upload.*uploadType=resumable', fault: 'stall' } },
    { what: 'the streamed PUT, once it has every byte', rule: { method: 'PUT', path: 'upload', fault: 'stall' } },
    { what: 'the streamed PUT, half-way', rule: { method: 'PUT', path: 'upload', fault: 'stall-body' } },
  ])('ends a streamed (resumable) upload that stalls at $what after --timeout, as a transient failure', async ({ rule }) => {
    await faults([rule]);
    const store = await openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: 'stalled-up/' }, { gcs: { endpoint: url }, conditionalWrites: 'off', maxAttempts: 1, timeoutMs: 1000 });
    await expect(store.put('big.bin', big(), opts)).rejects.toMatchObject({ code: 'TRANSIENT', message: expect.stringContaining('took no bytes for 1000 ms') });
    expect(Object.values((await stats()).faults)).toEqual([1]);
    // The cut request's socket is closed, not left to the stalled server (one per cut, for good).
    await vi.waitFor(async () => expect((await stats()).stalled).toBe(0), { timeout: 10_000, interval: 100 });
    // Without the fault, the next try goes through.
    await faults([]);
    await store.put('big.bin', big(), opts);
    expect((await store.stat('big.bin'))?.size).toBe(64 * 65_536);
    await store.close();
  }, 60_000);

  // A Buffer's refusal kept its answer (and its Retry-After); a resumable upload's became the
  // library's bare 'Upload failed' with a status only: the worker's next try of a large
  // object came at its usual backoff, --retries times, whatever the store asked.
  it.each([
    { what: 'the session request', rule: { method: 'POST', path: 'upload.*uploadType=resumable', fault: 'throttle', retryAfter: '120' } },
    { what: 'the streamed PUT', rule: { method: 'PUT', path: 'upload', fault: 'throttle', retryAfter: '120' } },
  ])('refused by $what with a 429 and Retry-After keeps the wait the store asked for', async ({ rule }) => {
    await faults([rule]);
    const store = await openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: 'throttled-up/' }, { gcs: { endpoint: url }, conditionalWrites: 'off', maxAttempts: 1, timeoutMs: 5000 });
    const err = await store.put('big.bin', big(), opts).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'THROTTLED', status: 429 });
    expect(retryAfterMs(err)).toBe(120_000);
    expect(Object.values((await stats()).faults)).toEqual([1]);
    await store.close();
  }, 60_000);
});

describe('a gs:// manifest prefix through the proxy', () => {
  it('whose manifest stalls mid-body fails its unit after --timeout, naming it, instead of holding the run', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-faults-gcs-'));
    const db = await duck();
    try {
      const local = path.join(dir, 'm.parquet');
      // Large enough that the proxy's stall (after half the body) cuts inside it.
      await db.run(`COPY (SELECT i::VARCHAR AS id, NULL::VARCHAR AS media_path, md5(i::VARCHAR) AS pad FROM range(20000) t(i)) TO '${local}' (FORMAT parquet)`);
      const direct = await openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: 'stalled-manifests/' }, { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
      await direct.put('m.parquet', await fs.readFile(local), { contentType: 'application/octet-stream', metadata: {}, ifAbsent: false });
      await faults([{ method: 'GET', path: 'm\\.parquet.*alt=media', fault: 'stall-body' }]);
      const run = await ferry([
        'compile', `gs://${GCS_TEST_BUCKET}/stalled-manifests`, '--dest', path.join(dir, 'dest'), '--out', path.join(dir, 'out'), '--work-dir', path.join(dir, 'work'),
        '--gcs-endpoint', url, '--allow-private-network', '--progress', 'none', '--timeout', '1000',
      ]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`unit m failed: read gs://${GCS_TEST_BUCKET}/stalled-manifests/m.parquet: no body bytes for 1000 ms`);
      expect((await stats()).faults).toEqual({ 'GET stall-body': 1 });
    } finally {
      db.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('a gs:// bucket that does not exist, behind a custom endpoint', () => {
  // The emulator makes a bucket on first write; GCS answers 404 notFound, here from the proxy.
  it.each(['--dest', '--out'])('as %s is refused before any work, in one line, exit 1 (not an internal error)', async (flag) => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-nobucket-'));
    const db = await duck();
    try {
      await fs.mkdir(path.join(dir, 'm'));
      await db.run(`COPY (SELECT 'a' AS id, 'gs://src/none.png' AS media_path) TO '${path.join(dir, 'm', 'u.parquet')}' (FORMAT parquet)`);
      await faults([{ path: '/b/no-such-bucket/', fault: 'status', status: 404, code: 'notFound' }]);
      const places = { '--dest': path.join(dir, 'dest'), '--out': path.join(dir, 'out'), [flag]: 'gs://no-such-bucket/x' };
      const run = await ferry([
        'compile', path.join(dir, 'm'), '--dest', places['--dest']!, '--out', places['--out']!, '--work-dir', path.join(dir, 'work'),
        '--gcs-endpoint', url, '--allow-private-network', '--progress', 'none',
      ]);
      expect(run.code).toBe(1);
      // The orchestrator's own check: it opens no store with the conditional-write probe.
      expect(run.stderr.trim()).toMatch(new RegExp(`^ferry: ${flag} gs://no-such-bucket/x/ is not writable: put gs://no-such-bucket/x/\\.ferry-write-check-\\w+-\\d+(?:-\\d+)?: HTTP 404$`));
    } finally {
      db.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('as the --dest of ferry worker is refused in one line, exit 1, before any task', async () => {
    await faults([{ path: '/b/no-such-bucket/', fault: 'status', status: 404, code: 'notFound' }]);
    const run = await ferry(['worker', '--tasks', '-', '--dest', 'gs://no-such-bucket/x', '--gcs-endpoint', url], { input: 'a\tgs://src/none.png\n' });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim()).toBe('ferry worker: --dest gs://no-such-bucket/x/ cannot be used: probe of conditional create on gs://no-such-bucket: HTTP 404');
  });
});

describe('a streamed upload to gs:// killed before its sha256 is recorded', () => {
  let origin: Origin;
  beforeAll(async () => {
    origin = await startOrigin();
  });
  afterAll(async () => {
    await origin?.close();
  });

  // A resumable upload's object appears when its last byte lands; its sha256 comes after,
  // by a metadata patch. A kill in between left this id's own object without its sha256,
  // which the next run refused as DEST_CONFLICT (permanent) when the source gives no ETag.
  it.each([
    { what: 'streamed again', threshold: '100KiB' },
    { what: 'buffered', threshold: '64MiB' },
  ])('is written again by the next run ($what), not refused as a conflict', async ({ threshold }) => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-unfinished-'));
    try {
      const id = `u-${threshold}`;
      const dest = `gs://${GCS_TEST_BUCKET}/unfinished-${threshold}`;
      // Chunked, no ETag: only the bytes can tell what the source is.
      await fs.writeFile(path.join(dir, 'tasks.tsv'), `${id}\t${origin.url}/big/unf-${threshold}?size=300000\n`);
      const args = (endpoint: string, t: string) => ['worker', '--tasks', path.join(dir, 'tasks.tsv'), '--dest', dest, '--gcs-endpoint', endpoint, '--allow-private-network', '--profile', 'any', '--multipart-threshold', t];
      await faults([{ method: 'PATCH', path: `unfinished-${threshold}`, fault: 'stall' }]);
      const child = ferrySpawn(args(url, '100KiB'));
      while (((await stats()).faults['PATCH stall'] ?? 0) < 1) await new Promise((r) => setTimeout(r, 50));
      process.kill(-child.pid!, 'SIGKILL');
      const store = await openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: `unfinished-${threshold}/` }, { gcs: { endpoint: gcs.endpoint } });
      const key = objectKey(id, 'bin');
      const left = await store.stat(key);
      expect(left?.metadata).toMatchObject({ 'ferry-id': id });
      expect(left?.metadata['ferry-sha256']).toBeUndefined();

      const run = await ferry(args(gcs.endpoint, threshold));
      expect(run.code).toBe(0);
      const sha256 = createHash('sha256').update(Buffer.alloc(300_000, 3)).digest('hex');
      expect(run.stdout.split('\n').filter((l) => /^(UP_OK|UP_ERR|DL_ERR)/.test(l))).toEqual([`UP_OK\t${id}\t${dest}/${key}\tbin\t300000\t${sha256}\t\t\t0`]);
      expect((await store.stat(key))?.metadata['ferry-sha256']).toBe(sha256);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('a gs:// --out behind a custom endpoint', () => {
  // The conditional-write probe writes and deletes a marker; a run killed between the two left
  // it under --out for good (only --dest is cleaned). The orchestrator writes nothing
  // conditionally, so it sends no probe: here a probe's write is refused with a 500.
  it('gets no conditional-write probe from the orchestrator', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-out-probe-'));
    await fs.mkdir(path.join(dir, 'www'));
    await fs.writeFile(path.join(dir, 'www', 'a.bin'), 'an object');
    const origin = await startOrigin(path.join(dir, 'www'));
    const db = await duck();
    try {
      await fs.mkdir(path.join(dir, 'm'));
      await db.run(`COPY (SELECT 'a' AS id, '${origin.url}/a.bin' AS media_path) TO '${path.join(dir, 'm', 'u.parquet')}' (FORMAT parquet)`);
      await faults([{ method: 'POST', path: 'ferry-probe-', fault: 'status', status: 500, code: 'backendError' }]);
      const run = await ferry([
        'compile', path.join(dir, 'm'), '--dest', path.join(dir, 'dest'), '--out', `gs://${GCS_TEST_BUCKET}/renewed-out`, '--work-dir', path.join(dir, 'work'),
        '--gcs-endpoint', url, '--allow-private-network', '--progress', 'none', '--profile', 'any',
      ]);
      expect(run.stderr).not.toContain('probe');
      expect(run.code).toBe(0);
      expect((await stats()).faults).toEqual({});
      const out = await openStore({ scheme: 'gs', bucket: GCS_TEST_BUCKET, prefix: 'renewed-out/' }, { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
      const keys: string[] = [];
      for await (const o of out.list('')) keys.push(o.key);
      expect(keys.sort()).toEqual(['u.ledger.tsv', 'u.manifest.json', 'u.parquet']);
    } finally {
      db.close();
      await origin.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
