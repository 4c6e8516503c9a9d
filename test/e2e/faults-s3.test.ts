/**
 * A hostile destination, for real: compile to S3 through test/servers/fault-proxy.mjs, a
 * proxy process in front of the S3-compatible test server that resets, throttles, fails
 * and delays requests. Transient faults must recover within the bounded retries; a
 * destination that answers 503 to every PUT must end its rows as ledgered failures
 * without being hammered, and the unit must still complete.
 *
 * The counts asserted follow worker/upload.ts: the S3 client tries once per call
 * (maxAttempts 1), fauxqs does not enforce If-None-Match, so each upload try is one HEAD
 * (is it there already?) then one PUT, and at most 1 + --retries tries per object.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { createHttpClient } from '../../storage/http.js';
import { openStore } from '../../storage/index.js';
import { objectKey } from '../../storage/layout.js';
import { download } from '../../worker/download.js';
import { createS3Client } from '../../storage/s3.js';
import { fauxqsOptions, startS3Server, stopS3Server, useFakeAwsCredentials } from '../helpers/backend-s3.js';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, type Run, ferry, startOrigin } from '../helpers/run.js';

const PROXY = fileURLToPath(new URL('../servers/fault-proxy.mjs', import.meta.url));
const BUCKET = 'faults';
const ROWS = 6;
const RETRIES = 2;
const TRIES = 1 + RETRIES;

type ProxyProcess = ChildProcessByStdio<Writable, Readable, null>;
type ProxyStats = { total: number; methods: Record<string, number>; paths: Record<string, number>; faults: Record<string, number> };
type Rule = { method?: string | string[]; path?: string; fault: string; times?: number; perPath?: boolean; probability?: number; ms?: number; retryAfter?: string; status?: number; code?: string };

let dir: string;
let origin: Origin;
let server: Awaited<ReturnType<typeof startS3Server>>;
let proxy: { url: string; child: ProxyProcess };
let s3: S3Client;
let restoreEnv: () => void;
let db: Awaited<ReturnType<typeof duck>>;
const images: Buffer[] = [];
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

function startProxy(upstreamPort: number): Promise<{ url: string; child: ProxyProcess }> {
  const child = spawn(process.execPath, [PROXY, `http://127.0.0.1:${upstreamPort}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^PORT (\d+)$/m.exec(out);
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}`, child });
    });
    child.once('exit', (code) => reject(new Error(`fault-proxy exited (${code}) before listening`)));
  });
}

async function control(method: string, route: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`${proxy.url}${route}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (!r.ok) throw new Error(`fault-proxy ${method} ${route}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Installs the rules and zeroes the counters, so each case counts only its own requests. */
async function faults(rules: Rule[]): Promise<void> {
  await control('POST', '/__faults', { rules, seed: 7 });
  await control('DELETE', '/__stats');
}

const stats = () => control('GET', '/__stats') as Promise<ProxyStats>;
const requestLog = () => control('GET', '/__log') as Promise<{ t: number; method: string; path: string; fault: string | null }[]>;

const idOf = (scenario: string, i: number) => `${scenario}-${i}`;
/** The key a row's object gets: `<dest prefix>/<unit>/<shard>/<id>.png`. */
const keyOf = (scenario: string, i: number) => `${scenario}/${objectKey(idOf(scenario, i), 'png', 'm')}`;
/** Requests the proxy saw for one object key, by method. */
const countFor = (s: ProxyStats, method: string, key: string) => s.paths[`${method} /${BUCKET}/${key}`] ?? 0;

/** Writes the scenario's manifest (one row per image, served by the origin) and compiles it through the proxy. */
async function compile(scenario: string, dest = `s3://${BUCKET}/${scenario}`): Promise<{ run: Run; out: string }> {
  const root = path.join(dir, scenario);
  await fs.mkdir(path.join(root, 'manifests'), { recursive: true });
  const values = images.map((_, i) => `(${lit(idOf(scenario, i))}, ${lit(`${origin.url}/file/${scenario}-${i}/img${i}.png`)})`).join(',');
  await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path)) TO '${path.join(root, 'manifests', 'm.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 2)`);
  const out = path.join(root, 'out');
  const run = await ferry([
    'compile', path.join(root, 'manifests'),
    '--dest', dest,
    '--out', out,
    '--work-dir', path.join(root, 'work'),
    '--s3-endpoint', proxy.url,
    '--allow-private-network',
    '--timeout', '5000',
    '--retries', String(RETRIES),
    '--concurrency', '4',
    '--jobs', '1',
    '--progress', 'none',
  ]);
  return { run, out };
}

async function renewed(out: string): Promise<{ id: string; p: string | null; bad: boolean }[]> {
  const rows = await db.rows(`SELECT id, updated_media_path AS p, bad_image AS bad FROM '${path.join(out, 'm.parquet')}'`);
  return rows.map((r) => ({ id: String(r.id), p: r.p === null ? null : String(r.p), bad: r.bad === true }));
}

async function stored(key: string): Promise<string> {
  const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return sha(await r.Body!.transformToByteArray());
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-faults-s3-'));
  restoreEnv = useFakeAwsCredentials();
  process.env.AWS_REGION = 'us-east-1';
  await fs.mkdir(path.join(dir, 'origin'));
  for (let i = 0; i < ROWS; i++) {
    const img = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 10 * i, g: 80, b: 200 } } }).png().toBuffer();
    images.push(img);
    await fs.writeFile(path.join(dir, 'origin', `img${i}.png`), img);
  }
  origin = await startOrigin(path.join(dir, 'origin'));
  server = await startS3Server();
  s3 = createS3Client(fauxqsOptions(server.port));
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  proxy = await startProxy(server.port);
  db = await duck();
}, 120_000);

afterAll(async () => {
  db?.close();
  await origin?.close();
  proxy?.child.stdin.end();
  s3?.destroy();
  if (server) await stopS3Server(server.child);
  restoreEnv?.();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('transient destination faults recover within the bounded retries', () => {
  const scenario = 'transient';
  // One fault per object, keyed by its id, and a short 503 storm on the first HEAD of four
  // of them: every object needs at most 1 + retries tries.
  const only = (i: number) => `^/${BUCKET}/${scenario}/.*/${idOf(scenario, i)}\\.png(\\?|$)`;
  const storm = `^/${BUCKET}/${scenario}/.*/${scenario}-[0135]\\.png(\\?|$)`;
  const rules: Rule[] = [
    { method: 'HEAD', path: storm, fault: 'slowdown', perPath: true, times: 1 },
    { method: 'HEAD', path: only(4), fault: 'stall', ms: 500, perPath: true, times: 1 },
    { method: 'PUT', path: only(0), fault: 'reset-request', perPath: true, times: 1 },
    { method: 'PUT', path: only(1), fault: 'reset-response', perPath: true, times: 1 },
    { method: 'PUT', path: only(2), fault: 'slowdown', perPath: true, times: RETRIES },
    { method: 'PUT', path: only(3), fault: 'internal', perPath: true, times: 1 },
    { method: 'PUT', path: only(4), fault: 'delay', ms: 1500 },
    { method: 'PUT', path: only(5), fault: 'throttle', retryAfter: '1', perPath: true, times: 1 },
  ];
  let result: Awaited<ReturnType<typeof compile>>;
  let seen: ProxyStats;
  let log: Awaited<ReturnType<typeof requestLog>>;

  beforeAll(async () => {
    await faults(rules);
    result = await compile(scenario);
    seen = await stats();
    log = await requestLog();
  }, 120_000);

  it('completes the unit with every row UP_OK and no ledger row', async () => {
    expect(result.run.code, result.run.stderr).toBe(0);
    const rows = await renewed(result.out);
    expect(rows).toEqual(images.map((_, i) => ({ id: idOf(scenario, i), p: `s3://${BUCKET}/${keyOf(scenario, i)}`, bad: false })));
    expect(parseLedger(await fs.readFile(path.join(result.out, 'm.ledger.tsv'), 'utf8'))).toEqual([]);
    const manifest = JSON.parse(await fs.readFile(path.join(result.out, 'm.manifest.json'), 'utf8'));
    expect(manifest.status).toBe('complete');
  });

  it('stores the exact bytes of every object', async () => {
    for (let i = 0; i < ROWS; i++) expect(await stored(keyOf(scenario, i))).toBe(sha(images[i]!));
  });

  it('injected every fault, and tried each object exactly as often as its faults need', () => {
    expect(seen.faults).toEqual({
      'HEAD slowdown': 4,
      'HEAD stall': 1,
      'PUT reset-request': 1,
      'PUT reset-response': 1,
      'PUT slowdown': RETRIES,
      'PUT internal': 1,
      'PUT delay': 1,
      'PUT throttle': 1,
    });
    const counts = images.map((_, i) => [countFor(seen, 'HEAD', keyOf(scenario, i)), countFor(seen, 'PUT', keyOf(scenario, i))]);
    // [HEADs, PUTs] per object: one HEAD per try; a PUT whenever the HEAD got an answer.
    // A PUT cut after the write landed (1) is not written again: the next HEAD finds the same sha256.
    expect(counts).toEqual([
      [3, 2],
      [3, 1],
      [3, 3],
      [3, 2],
      [2, 1],
      [3, 2],
    ]);
    for (const [heads, puts] of counts) expect(Math.max(heads!, puts!)).toBeLessThanOrEqual(TRIES);
    console.log(`transient faults: proxy saw ${JSON.stringify(seen.methods)}, faults ${JSON.stringify(seen.faults)}`);
  });

  it('waits the Retry-After of a 429 before the next try', () => {
    const key = `/${BUCKET}/${keyOf(scenario, 5)}`;
    const refused = log.find((r) => r.path === key && r.fault === 'throttle');
    const next = log.find((r) => r.path === key && r.method === 'HEAD' && r.t > refused!.t);
    expect(refused).toBeDefined();
    // Retry-After: 1 (seconds); a few ms of timer slack at most.
    expect(next!.t - refused!.t).toBeGreaterThanOrEqual(990);
  });
});

describe('a destination failing every PUT is not hammered, and the unit still completes', () => {
  const cases = [
    { fault: 'slowdown', reason: 'THROTTLED' },
    { fault: 'internal', reason: 'UPLOAD_FAILED' },
    { fault: 'reset-request', reason: 'UPLOAD_FAILED' },
  ] as const;

  it.each(cases)('$fault on every PUT ends each row as UP_ERR $reason after at most 1 + retries tries', async ({ fault, reason }) => {
    const scenario = `always-${fault}`;
    // Every PUT, the conditional-write probe's included.
    await faults([{ method: 'PUT', fault }]);
    const { run, out } = await compile(scenario);
    const seen = await stats();
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(await fs.readFile(path.join(out, 'm.manifest.json'), 'utf8')).status).toBe('complete');
    expect(await renewed(out)).toEqual(images.map((_, i) => ({ id: idOf(scenario, i), p: null, bad: false })));
    const ledger = parseLedger(await fs.readFile(path.join(out, 'm.ledger.tsv'), 'utf8'));
    expect(ledger.map((r) => [r.id, r.reason, r.stage, r.attempts])).toEqual(images.map((_, i) => [idOf(scenario, i), reason, 'upload', TRIES]));
    let objectPuts = 0;
    for (let i = 0; i < ROWS; i++) {
      // Each try is a HEAD (nothing there) and a refused PUT: exactly 1 + retries of each.
      expect(countFor(seen, 'PUT', keyOf(scenario, i))).toBe(TRIES);
      expect(countFor(seen, 'HEAD', keyOf(scenario, i))).toBe(TRIES);
      objectPuts += countFor(seen, 'PUT', keyOf(scenario, i));
    }
    // Beyond the objects' PUTs, only the conditional-write probes of the orchestrator and its
    // worker, and the orchestrator's check that --dest takes a write (a refused one is no refusal).
    const probePuts = Object.entries(seen.paths).filter(([k]) => k.startsWith('PUT ') && k.includes('.ferry-probe-'));
    const checkPuts = Object.entries(seen.paths).filter(([k]) => k.startsWith('PUT ') && k.includes('.ferry-write-check-'));
    expect((seen.methods.PUT ?? 0) - objectPuts).toBe([...probePuts, ...checkPuts].reduce((n, [, v]) => n + v, 0));
    expect(probePuts.length).toBeLessThanOrEqual(2);
    expect(checkPuts.length).toBe(1);
    console.log(`${fault} on every PUT: proxy saw ${JSON.stringify(seen.methods)} (${objectPuts} object PUTs for ${ROWS} objects)`);
  }, 120_000);

  it('a Retry-After beyond the 60 s backoff bound ends each row as THROTTLED at once', async () => {
    const scenario = 'retry-after-long';
    await faults([{ method: 'PUT', path: `^/${BUCKET}/${scenario}/m/`, fault: 'throttle', retryAfter: '120' }]);
    const { run, out } = await compile(scenario);
    const seen = await stats();
    expect(run.code, run.stderr).toBe(0);
    const ledger = parseLedger(await fs.readFile(path.join(out, 'm.ledger.tsv'), 'utf8'));
    expect(ledger.map((r) => [r.id, r.reason, r.attempts])).toEqual(images.map((_, i) => [idOf(scenario, i), 'THROTTLED', 1]));
    expect(ledger[0]!.detail).toContain('Retry-After 120 s');
    for (let i = 0; i < ROWS; i++) expect(countFor(seen, 'PUT', keyOf(scenario, i))).toBe(1);
  }, 120_000);
});

describe('a streamed (multipart) upload through the proxy', () => {
  const MiB = 2 ** 20;
  const body = Buffer.alloc(7 * MiB, 5); // more than one 6 MiB part: multipart, then a CopyObject stamp
  const chunks = () => Readable.from(Array.from({ length: 7 }, (_, i) => body.subarray(i * MiB, (i + 1) * MiB)));
  const opts = { contentType: 'application/octet-stream', metadata: { 'ferry-id': 'big' }, ifAbsent: false, size: body.length };
  // The worker's store: one request per call, parts that fit fauxqs.
  const open = () => openStore({ scheme: 's3', bucket: BUCKET, prefix: 'stamp/' }, { ...fauxqsOptions(0, { maxAttempts: 1 }), s3: { endpoint: proxy.url, forcePathStyle: true, region: 'us-east-1' } });
  /** The SDK names its operation in the query (parts carry ?partNumber instead). */
  const copyOf = (name: string) => `^/${BUCKET}/stamp/${name}\\?x-id=CopyObject$`;
  const head = (name: string) => s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `stamp/${name}` }));

  it.each(['slowdown', 'internal'])('stamps the sha256 when CopyObject answers %s twice, on its third try', async (fault) => {
    const name = `retried-${fault}.bin`;
    await faults([{ method: 'PUT', path: copyOf(name), fault, times: 2 }]);
    const store = await open();
    expect((await store.put(name, chunks(), opts)).sha256).toBe(sha(body));
    expect((await stats()).faults).toEqual({ [`PUT ${fault}`]: 2 }); // then the third copy landed
    expect((await head(name)).Metadata).toMatchObject({ 'ferry-id': 'big', 'ferry-sha256': sha(body) });
    await store.close();
  }, 60_000);

  it('leaves the object whole, without its sha256, when every CopyObject fails: three tries, then the outputs carry it', async () => {
    const name = 'never-stamped.bin';
    await faults([{ method: 'PUT', path: copyOf(name), fault: 'slowdown' }]);
    const store = await open();
    expect((await store.put(name, chunks(), opts)).sha256).toBe(sha(body));
    expect((await stats()).faults).toEqual({ 'PUT slowdown': 3 });
    const info = await head(name);
    expect(info.ContentLength).toBe(body.length);
    expect(info.Metadata).toEqual({ 'ferry-id': 'big' });
    await store.close();
  }, 60_000);

  /** `ferry worker` streaming one task to `s3://faults/<dest>` through the proxy. */
  const streamTo = (dest: string, task: string) =>
    ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/${dest}`, '--s3-endpoint', proxy.url, '--allow-private-network', '--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--retries', String(RETRIES), '--progress-interval', '60000'], { input: task });
  const upOk = (run: Run) => {
    const line = run.stdout.split('\n').find((l) => l.startsWith('UP_'));
    expect(line, run.stdout + run.stderr).toMatch(/^UP_OK\t/);
    const f = line!.split('\t');
    return { sha256: f[5], existed: f[8] };
  };
  /** What a run killed between the last byte and the stamp leaves: the object whole, without ferry-sha256. */
  const unstamped = async (dest: string, task: string, bytes: Buffer) => {
    await faults([{ method: 'PUT', path: `^/${BUCKET}/${dest}/.*\\?x-id=CopyObject$`, fault: 'slowdown' }]);
    const first = await streamTo(dest, task);
    expect(upOk(first).sha256).toBe(sha(bytes));
    expect((await stats()).faults).toEqual({ 'PUT slowdown': 3 });
    const key = `${dest}/${objectKey('big', 'bin')}`;
    expect(Object.keys((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).Metadata ?? {})).not.toContain('ferry-sha256');
    await faults([]);
    return key;
  };

  it('an unstamped object from a source with an ETag: the next run hashes the download, UP_OK existed with its sha256, nothing written', async () => {
    await fs.writeFile(path.join(dir, 'origin', 'big.bin'), body);
    const task = `big\t${origin.url}/file/unstamped-etag/big.bin\n`;
    const key = await unstamped('unstamped-etag', task, body);
    const again = await streamTo('unstamped-etag', task);
    expect(upOk(again)).toEqual({ sha256: sha(body), existed: '1' });
    const seen = await stats();
    // Requests at the object's key (the conditional-write probe writes its own marker): one HEAD, no write.
    expect(Object.keys(seen.paths).filter((p) => p.split(' ')[1]!.startsWith(`/${BUCKET}/${key}`))).toEqual([`HEAD /${BUCKET}/${key}`]);
    expect(countFor(seen, 'HEAD', key)).toBe(1);
    expect((await origin.stats())['/file/unstamped-etag/big.bin']).toBe(2);
  }, 60_000);

  it('an unstamped object from a source without an ETag is no DEST_CONFLICT: the next run writes it again, stamped', async () => {
    const served = Buffer.alloc(body.length, 3); // what /big/ serves, chunked, no ETag
    const task = `big\t${origin.url}/big/unstamped-plain?size=${served.length}\n`;
    const key = await unstamped('unstamped-plain', task, served);
    const again = await streamTo('unstamped-plain', task);
    expect(upOk(again)).toEqual({ sha256: sha(served), existed: '0' });
    expect((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).Metadata).toMatchObject({ 'ferry-id': 'big', 'ferry-sha256': sha(served) });
  }, 60_000);

  it("sends the object again when its upload is aborted under it (NoSuchUpload: another run's cleanup of the unit)", async () => {
    await faults([{ method: 'PUT', path: `^/${BUCKET}/gone/.*partNumber=2`, fault: 'status', status: 404, code: 'NoSuchUpload', times: 1 }]);
    const served = Buffer.alloc(8 * MiB, 3); // what /big/ serves
    const run = await streamTo('gone', `big\t${origin.url}/big/gone?size=${served.length}\n`);
    expect(upOk(run)).toEqual({ sha256: sha(served), existed: '0' });
    expect((await stats()).faults).toEqual({ 'PUT status': 1 });
  }, 60_000);

  it('counts every streamed try of a refused upload in UP_ERR attempts', async () => {
    await faults([{ method: 'PUT', path: `^/${BUCKET}/att/.*partNumber=2`, fault: 'internal' }]);
    const task = `big\t${origin.url}/big/att?size=${8 * MiB}\n`;
    const run = await ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/att`, '--s3-endpoint', proxy.url, '--allow-private-network', '--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--retries', String(RETRIES), '--progress-interval', '60000'], { input: task });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n').filter((l) => l.startsWith('UP_ERR'))).toEqual([expect.stringMatching(new RegExp(`^UP_ERR\tbig\tUPLOAD_FAILED\t${TRIES}\t`))]);
    expect((await stats()).faults).toEqual({ 'PUT internal': TRIES });
  }, 60_000);

  it("honours a store's Retry-After between streamed tries, and ends the row THROTTLED at once past 60 s", async () => {
    const MiB8 = 8 * MiB;
    const worker = (dest: string, task: string) =>
      ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/${dest}`, '--s3-endpoint', proxy.url, '--allow-private-network', '--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--retries', String(RETRIES), '--progress-interval', '60000'], { input: task });
    // Retry-After: 1 on the first try's second part: the next try starts a second or more later.
    await faults([{ method: 'PUT', path: `^/${BUCKET}/ra-short/.*partNumber=2`, fault: 'throttle', retryAfter: '1', times: 1 }]);
    const short = await worker('ra-short', `big\t${origin.url}/big/ra-short?size=${MiB8}\n`);
    expect(short.code, short.stderr).toBe(0);
    expect(short.stdout).toMatch(/^UP_OK\tbig\t/m);
    const log = (await requestLog()).filter((r) => r.path.startsWith(`/${BUCKET}/ra-short/`));
    const refused = log.find((r) => r.fault === 'throttle');
    const tries = log.filter((r) => r.method === 'HEAD'); // each streamed try starts with one
    expect(tries).toHaveLength(2);
    expect(tries[1]!.t - refused!.t).toBeGreaterThanOrEqual(990);
    // Retry-After: 120, past the bound: one try, THROTTLED, the origin read once.
    await faults([{ method: 'PUT', path: `^/${BUCKET}/ra-long/.*partNumber=2`, fault: 'throttle', retryAfter: '120' }]);
    const long = await worker('ra-long', `big\t${origin.url}/big/ra-long?size=${MiB8}\n`);
    expect(long.code, long.stderr).toBe(0);
    expect(long.stdout.trim().split('\n').filter((l) => l.startsWith('UP_ERR'))).toEqual([expect.stringMatching(/^UP_ERR\tbig\tTHROTTLED\t1\t.*Retry-After 120 s$/)]);
    expect((await stats()).faults).toEqual({ 'PUT throttle': 1 });
    expect((await origin.stats())['/big/ra-long']).toBe(1);
  }, 60_000);

  it('a store error asking past the 60 s bound is THROTTLED on the last try too (--retries 0), buffered or streamed', async () => {
    // A 500 with Retry-After 120: with tries left it was THROTTLED, on the last one UPLOAD_FAILED without a word of the wait.
    await faults([{ method: 'PUT', path: `^/${BUCKET}/ra-last/`, fault: 'internal', retryAfter: '120' }]);
    const tasks = `small\t${origin.url}/big/ra-last-small?size=1000\nbig\t${origin.url}/big/ra-last-big?size=${8 * MiB}\n`;
    const run = await ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/ra-last`, '--s3-endpoint', proxy.url, '--allow-private-network', '--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--retries', '0', '--progress-interval', '60000'], { input: tasks });
    expect(run.code, run.stderr).toBe(0);
    const errors = run.stdout.trim().split('\n').filter((l) => l.startsWith('UP_ERR')).sort();
    expect(errors).toEqual([expect.stringMatching(/^UP_ERR\tbig\tTHROTTLED\t1\t.*Retry-After 120 s$/), expect.stringMatching(/^UP_ERR\tsmall\tTHROTTLED\t1\t.*Retry-After 120 s$/)]);
  }, 60_000);

  it('aborts the upload only once the parts in flight have their answers, when the source fails meanwhile', async () => {
    // S3 may store a part still uploading when its upload is aborted, where no listing
    // shows it (AbortMultipartUpload's documentation): the abort must come after the parts.
    const name = 'source-fails.bin';
    const boom = Object.assign(new Error('origin reset'), { code: 'ECONNRESET' });
    const failing = Readable.from(
      (async function* () {
        for (let i = 0; i < 7; i++) yield body.subarray(i * MiB, (i + 1) * MiB); // a whole part, and one MiB of the next
        await new Promise((resolve) => setTimeout(resolve, 100));
        throw boom;
      })(),
    );
    await faults([{ method: 'PUT', path: `^/${BUCKET}/stamp/${name}\\?.*partNumber=1`, fault: 'delay', ms: 2000 }]);
    const store = await open();
    await expect(store.put(name, failing, opts)).rejects.toBe(boom);
    const log = (await requestLog()).filter((r) => r.path === `/${BUCKET}/stamp/${name}`);
    const part = log.find((r) => r.method === 'PUT');
    const abort = log.find((r) => r.method === 'DELETE');
    expect(abort!.t - part!.t).toBeGreaterThanOrEqual(1900);
    await expect(head(name)).rejects.toMatchObject({ name: 'NotFound' });
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `stamp/${name}` }))).Uploads ?? []).toEqual([]);
    await store.close();
  }, 60_000);

  it('aborts the upload when a part is refused, leaving no object and no open upload', async () => {
    const name = 'part-refused.bin';
    await faults([{ method: 'PUT', path: `^/${BUCKET}/stamp/${name}\\?.*partNumber=2`, fault: 'slowdown' }]);
    const store = await open();
    await expect(store.put(name, chunks(), opts)).rejects.toMatchObject({ code: 'THROTTLED' });
    await expect(head(name)).rejects.toMatchObject({ name: 'NotFound' });
    const open_ = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `stamp/${name}` }));
    expect(open_.Uploads ?? []).toEqual([]);
    await store.close();
  }, 60_000);
});

describe('credentials that may not list the bucket (no s3:ListBucket: a HEAD of any key it cannot see is 403), on an endpoint that enforces If-None-Match', () => {
  const MiB = 2 ** 20;
  const served = Buffer.alloc(8 * MiB, 3); // what /big/ serves, chunked
  let enforcing: Awaited<ReturnType<typeof startS3Server>>;
  let front: { url: string; child: ProxyProcess };
  let admin: S3Client;

  beforeAll(async () => {
    enforcing = await startS3Server(['--enforce-conditional-writes']);
    admin = createS3Client(fauxqsOptions(enforcing.port));
    await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
    front = await startProxy(enforcing.port);
    // Every HEAD refused, as S3 refuses a missing key's (and these credentials may not read either).
    await fetch(`${front.url}/__faults`, { method: 'POST', body: JSON.stringify({ rules: [{ method: 'HEAD', fault: 'status', status: 403, code: 'AccessDenied' }] }) });
  }, 60_000);
  afterAll(async () => {
    front?.child.stdin.end();
    admin?.destroy();
    if (enforcing) await stopS3Server(enforcing.child);
  });

  const worker = (dest: string) =>
    ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/${dest}`, '--s3-endpoint', front.url, '--allow-private-network', '--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--retries', '1', '--progress-interval', '60000'], {
      input: `big\t${origin.url}/big/${dest}?size=${served.length}\n`,
    });
  const upLines = (run: Run) => run.stdout.split('\n').filter((l) => l.startsWith('UP_'));

  it('a large object is written by the conditional upload itself', async () => {
    const run = await worker('nolist-new');
    expect(upLines(run), run.stderr).toEqual([expect.stringMatching(new RegExp(`^UP_OK\tbig\t.*\t${sha(served)}\t`))]);
  }, 60_000);

  it('one already at the key is refused by the write and left as it was: FORBIDDEN, for nothing says what is there', async () => {
    const Key = `nolist-taken/${objectKey('big', 'bin')}`;
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'someone else' }));
    const run = await worker('nolist-taken');
    expect(upLines(run), run.stderr).toEqual([expect.stringMatching(/^UP_ERR\tbig\tFORBIDDEN\t1\tHEAD /)]);
    const r = await admin.send(new GetObjectCommand({ Bucket: BUCKET, Key }));
    expect(await r.Body!.transformToString()).toBe('someone else');
    expect((await admin.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'nolist-taken/' }))).Uploads ?? []).toEqual([]);
  }, 60_000);
});

describe('a conditional PutObject that meets a concurrent write of its key (409 ConditionalRequestConflict)', () => {
  it('is sent again, as AWS asks, not taken for an object already there', async () => {
    await faults([{ method: 'PUT', path: `^/${BUCKET}/conflict/.*\\.png`, fault: 'status', status: 409, code: 'ConditionalRequestConflict', times: 1 }]);
    const run = await ferry(
      ['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/conflict`, '--s3-endpoint', proxy.url, '--allow-private-network', '--conditional-writes', 'on', '--retries', '1', '--progress-interval', '60000'],
      { input: `c\t${origin.url}/file/conflict/img0.png\n` },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split('\n').filter((l) => l.startsWith('UP_'))).toEqual([expect.stringMatching(/^UP_OK\tc\t.*\t0$/)]);
    expect((await stats()).faults).toEqual({ 'PUT status': 1 });
  }, 60_000);
});

describe('a bucket with a default Object Lock retention (S3 refuses a PUT of an object or a part without Content-MD5 or a checksum)', () => {
  it('takes every write: the write check, small objects and the parts of a large one', async () => {
    await faults([{ fault: 'object-lock' }]);
    const big = 8 * 2 ** 20;
    const run = await ferry(
      ['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/locked`, '--s3-endpoint', proxy.url, '--allow-private-network', '--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--retries', '0', '--progress-interval', '60000'],
      { input: `small\t${origin.url}/file/locked/img0.png\nbig\t${origin.url}/big/locked?size=${big}\n` },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split('\n').filter((l) => l.startsWith('UP_')).sort()).toEqual([expect.stringMatching(/^UP_OK\tbig\t/), expect.stringMatching(/^UP_OK\tsmall\t/)]);
    expect(await stored(`locked/${objectKey('small', 'png')}`)).toBe(sha(images[0]!));
    expect(await stored(`locked/${objectKey('big', 'bin')}`)).toBe(sha(Buffer.alloc(big, 3)));
  }, 60_000);

  it("sends a part's Content-MD5 only once the store asked for one, then for every part after (an MD5 is ~3 CPU-s per 2 GiB)", async () => {
    await faults([{ fault: 'object-lock' }]);
    const big = 8 * 2 ** 20;
    const run = await ferry(
      ['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/locked-lazy`, '--s3-endpoint', proxy.url, '--allow-private-network', '--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--concurrency', '1', '--retries', '0', '--progress-interval', '60000'],
      { input: `one\t${origin.url}/big/lazy-1?size=${big}\ntwo\t${origin.url}/big/lazy-2?size=${big}\n` },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split('\n').filter((l) => l.startsWith('UP_')).sort()).toEqual([expect.stringMatching(/^UP_OK\tone\t/), expect.stringMatching(/^UP_OK\ttwo\t/)]);
    // The first object's first part (and its second, if already on its way) went without
    // one and was refused; the second object's parts were not.
    const puts = (id: string) => (log: { method: string; path: string }[]) => log.filter((r) => r.method === 'PUT' && r.path.endsWith(`/${objectKey(id, 'bin')}`)).length;
    const log = await requestLog();
    const again = puts('one')(log) - puts('two')(log);
    expect(again).toBeGreaterThanOrEqual(1);
    expect(again).toBeLessThanOrEqual(2);
    expect(await stored(`locked-lazy/${objectKey('two', 'bin')}`)).toBe(sha(Buffer.alloc(big, 3)));
  }, 60_000);
});

describe('--out on S3 that answers one write of each output 503 SlowDown or resets it', () => {
  it('compiles the unit: its outputs are sent again as the SDK sends any request again, not the unit failed', async () => {
    const root = path.join(dir, 'out-faults');
    await fs.mkdir(path.join(root, 'manifests'), { recursive: true });
    await db.run(`COPY (SELECT 'o' AS id, ${lit(`${origin.url}/file/out-faults/img0.png`)} AS media_path) TO '${path.join(root, 'manifests', 'm.parquet')}' (FORMAT parquet)`);
    await faults([
      { method: 'PUT', path: `^/${BUCKET}/out-faults-out/m\\.parquet`, fault: 'slowdown', times: 1 },
      { method: 'PUT', path: `^/${BUCKET}/out-faults-out/m\\.ledger\\.tsv`, fault: 'reset-request', times: 1 },
      { method: 'PUT', path: `^/${BUCKET}/out-faults-out/m\\.manifest\\.json`, fault: 'internal', times: 1 },
    ]);
    const run = await ferry([
      'compile', path.join(root, 'manifests'), '--dest', `s3://${BUCKET}/out-faults`, '--out', `s3://${BUCKET}/out-faults-out`,
      '--work-dir', path.join(root, 'work'), '--s3-endpoint', proxy.url, '--allow-private-network', '--jobs', '1', '--progress', 'none',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('1 unit(s) compiled');
    expect((await stats()).faults).toEqual({ 'PUT slowdown': 1, 'PUT reset-request': 1, 'PUT internal': 1 });
    const m = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'out-faults-out/m.manifest.json' }));
    expect(JSON.parse(await m.Body!.transformToString())).toMatchObject({ status: 'complete', counts: { migrated: 1 } });
  }, 120_000);
});

describe('a body S3 got damaged on the way (its digest or its length not the ones sent)', () => {
  it.each(['XAmzContentSHA256Mismatch', 'BadDigest', 'IncompleteBody'])('%s is sent again within the retries, not ledgered at once', async (code) => {
    await faults([{ method: 'PUT', path: `^/${BUCKET}/damaged-${code}/.*\\.png`, fault: 'status', status: 400, code, times: 1 }]);
    const run = await ferry(
      ['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/damaged-${code}`, '--s3-endpoint', proxy.url, '--allow-private-network', '--retries', '1', '--progress-interval', '60000'],
      { input: `d\t${origin.url}/file/damaged/img0.png\n` },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split('\n').filter((l) => l.startsWith('UP_'))).toEqual([expect.stringMatching(/^UP_OK\td\t/)]);
    expect((await stats()).faults).toEqual({ 'PUT status': 1 });
    expect(await stored(`damaged-${code}/${objectKey('d', 'png')}`)).toBe(sha(images[0]!));
  }, 60_000);
});

describe('a bucket ferry cannot use is one clear line before any download', () => {
  const oneLine = (stderr: string) => {
    expect(stderr).not.toMatch(/internal error|^\s+at /m);
    expect(stderr).not.toContain(process.env.AWS_SECRET_ACCESS_KEY!);
  };

  it('--dest on a bucket that does not exist: exit 1, naming it, nothing downloaded', async () => {
    await faults([]);
    const before = await origin.stats();
    const { run, out } = await compile('no-bucket', 's3://no-such-bucket/x');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/--dest s3:\/\/no-such-bucket\/x\/ is not writable: .*NoSuchBucket/);
    oneLine(run.stderr);
    expect(await origin.stats()).toEqual(before);
    await expect(fs.stat(path.join(out, 'm.ledger.tsv'))).rejects.toMatchObject({ code: 'ENOENT' });
  }, 60_000);

  it('--dest of ferry worker on a bucket that does not exist: exit 1 in one line, before any task', async () => {
    await faults([]);
    const before = await origin.stats();
    const run = await ferry(['worker', '--tasks', '-', '--dest', 's3://no-such-bucket/x', '--s3-endpoint', proxy.url, '--allow-private-network'], {
      input: `a\t${origin.url}/file/no-bucket-worker/img0.png\n`,
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    // (The SDK's own warning about Node 20 may come first: a library's line, not ferry's.)
    expect(run.stderr).toMatch(/^ferry worker: --dest s3:\/\/no-such-bucket\/x\/ cannot be used: probe of conditional create on s3:\/\/no-such-bucket: NoSuchBucket, HTTP 404$/m);
    oneLine(run.stderr);
    expect(await origin.stats()).toEqual(before);
  }, 60_000);

  it('--dest behind an endpoint no connection reaches (a wrong port): exit 1 in one line after a few tries, before any task', async () => {
    // A busy store passes the check; one that refuses every connection is more likely a typo.
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as net.AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const before = await origin.stats();
    const run = await ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/unreachable`, '--s3-endpoint', `http://127.0.0.1:${port}`, '--allow-private-network'], {
      input: `a\t${origin.url}/file/unreachable/img0.png\n`,
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(new RegExp(`^ferry worker: --dest s3://${BUCKET}/unreachable/ cannot be used: .*ECONNREFUSED \\(no connection in 3 tries: is the endpoint right\\?\\)$`, 'm'));
    oneLine(run.stderr);
    expect(await origin.stats()).toEqual(before);
  }, 60_000);

  it('--dest behind an endpoint that takes connections and never answers (another service on that port): exit 1 in one line after a few tries, before any task', async () => {
    const mute = net.createServer((socket) => socket.resume());
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const { port } = mute.address() as net.AddressInfo;
    try {
      const before = await origin.stats();
      const run = await ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/mute`, '--s3-endpoint', `http://127.0.0.1:${port}`, '--allow-private-network', '--timeout', '1000'], {
        input: `a\t${origin.url}/file/mute/img0.png\n`,
      });
      expect(run.code, run.stderr).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(new RegExp(`^ferry worker: --dest s3://${BUCKET}/mute/ cannot be used: .*\\(no answer in 3 tries: is the endpoint right\\?\\)$`, 'm'));
      oneLine(run.stderr);
      expect(await origin.stats()).toEqual(before);
    } finally {
      await new Promise((resolve) => mute.close(resolve));
    }
  }, 90_000);

  it('credentials the store refuses: exit 1 for --dest, naming it', async () => {
    await faults([{ fault: 'status', status: 403, code: 'InvalidAccessKeyId' }]);
    const { run } = await compile('bad-creds');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/--dest s3:\/\/faults\/bad-creds\/ is not writable: .*InvalidAccessKeyId, HTTP 403/);
    oneLine(run.stderr);
  }, 60_000);

  it('replay on an --out the store refuses: exit 1, one line', async () => {
    await faults([]);
    const root = path.join(dir, 'replay-refused');
    await fs.mkdir(path.join(root, 'manifests'), { recursive: true });
    await db.run(`COPY (SELECT 'gone' AS id, ${lit(`${origin.url}/status/404/gone.png`)} AS media_path) TO '${path.join(root, 'manifests', 'm.parquet')}' (FORMAT parquet)`);
    const common = ['--s3-endpoint', proxy.url, '--allow-private-network', '--progress', 'none', '--work-dir', path.join(root, 'work')];
    const first = await ferry(['compile', path.join(root, 'manifests'), '--dest', `s3://${BUCKET}/replay-refused`, '--out', `s3://${BUCKET}/replay-refused-out`, ...common]);
    expect(first.code, first.stderr).toBe(0);
    await faults([{ method: 'HEAD', path: `^/${BUCKET}/replay-refused-out/`, fault: 'status', status: 403, code: 'AccessDenied' }]);
    const r = await ferry(['replay', `s3://${BUCKET}/replay-refused-out/m.ledger.tsv`, '--reasons', 'all', ...common]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ferry: m: HEAD s3:\/\/faults\/replay-refused-out\/m\.parquet: .*HTTP 403$/m); // the unit's failure, named
    oneLine(r.stderr);
  }, 60_000);

  it('a manifest prefix in a bucket that does not exist is exit 2, one it may not list exit 1', async () => {
    const args = (prefix: string) => ['compile', prefix, '--dest', `s3://${BUCKET}/x`, '--out', path.join(dir, 'bad-prefix-out'), '--work-dir', path.join(dir, 'bad-prefix-work'), '--s3-endpoint', proxy.url, '--allow-private-network', '--progress', 'none'];
    await faults([]);
    const missing = await ferry(args('s3://no-such-bucket/manifests'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/manifest prefix s3:\/\/no-such-bucket\/manifests\/ does not exist: .*NoSuchBucket/);
    oneLine(missing.stderr);
    await faults([{ fault: 'status', status: 403, code: 'InvalidAccessKeyId' }]);
    const refused = await ferry(args(`s3://${BUCKET}/manifests`));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/manifest prefix s3:\/\/faults\/manifests\/ cannot be listed: .*InvalidAccessKeyId, HTTP 403/);
    oneLine(refused.stderr);
  }, 60_000);
});

describe('a manifest prefix on S3 through the proxy', () => {
  it('of more than 1,000 manifests is listed page by page, and only read', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'manifests' }));
    const manifest = path.join(dir, 'one-row.parquet');
    await db.run(`COPY (SELECT 'only' AS id, ${lit(`${origin.url}/file/many/img0.png`)} AS media_path) TO '${manifest}' (FORMAT parquet)`);
    const body = await fs.readFile(manifest);
    const names = Array.from({ length: 1001 }, (_, i) => String(i).padStart(4, '0'));
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(names.slice(i, i + 50).map((n) => s3.send(new PutObjectCommand({ Bucket: 'manifests', Key: `many/${n}.parquet`, Body: body }))));
    }
    await faults([]);
    const out = path.join(dir, 'many-out');
    // The last unit in key order is on the second page of the listing.
    const run = await ferry([
      'compile', 's3://manifests/many', '--only', '1000',
      '--dest', `s3://${BUCKET}/many`, '--out', out, '--work-dir', path.join(dir, 'many-work'),
      '--s3-endpoint', proxy.url, '--allow-private-network', '--progress', 'none',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(await fs.readFile(path.join(out, '1000.manifest.json'), 'utf8')).status).toBe('complete');
    const seen = await stats();
    const onManifests = Object.entries(seen.paths).filter(([k]) => k.split(' ')[1]!.startsWith('/manifests/'));
    expect(seen.paths['GET /manifests/']).toBe(2); // two pages of ListObjectsV2
    // No conditional-write probe (a PUT and a DELETE) in the manifests' bucket: it is a source.
    expect(onManifests.map(([k]) => k.split(' ')[0]).filter((m) => m !== 'GET' && m !== 'HEAD')).toEqual([]);
  }, 120_000);
});

describe('an s3:// source through the proxy', () => {
  it('whose key starts with a slash or holds two is read as written, never as the key without them', async () => {
    const bodies: Record<string, Buffer> = { '/lead.bin': Buffer.from('the key with a leading slash'), 'lead.bin': Buffer.from('another object'), 'a//b.bin': Buffer.from('double'), 'a/b.bin': Buffer.from('single') };
    for (const [Key, Body] of Object.entries(bodies)) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body }));
    await faults([]);
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    const stores = () => openStore({ scheme: 's3', bucket: BUCKET, prefix: '' }, { s3: { endpoint: proxy.url, forcePathStyle: true }, maxAttempts: 1, conditionalWrites: 'off' });
    try {
      for (const key of Object.keys(bodies)) {
        const r = await download(`s3://${BUCKET}/${key}`, { client, retries: 0, stores });
        expect(r.ok && r.kind === 'buffer' ? r.body.toString() : r, key).toBe(bodies[key]!.toString());
      }
    } finally {
      await client.close();
    }
  }, 60_000);

  it("that the store throttles waits its Retry-After, and past the 60 s bound ends THROTTLED at once, as an HTTP source does", async () => {
    const key = 'src/throttled.bin';
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'throttled' }));
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    const stores = () => openStore({ scheme: 's3', bucket: BUCKET, prefix: '' }, { s3: { endpoint: proxy.url, forcePathStyle: true }, maxAttempts: 1, conditionalWrites: 'off' });
    try {
      await faults([{ method: 'GET', path: `/${BUCKET}/src/throttled`, fault: 'throttle', retryAfter: '120' }]);
      const long = await download(`s3://${BUCKET}/${key}`, { client, retries: 2, backoffBaseMs: 5, stores });
      expect(long).toMatchObject({ ok: false, reason: 'THROTTLED', attempts: 1 });
      expect(long.ok || long.detail).toMatch(/Retry-After 120 s$/);
      await faults([{ method: 'GET', path: `/${BUCKET}/src/throttled`, fault: 'throttle', retryAfter: '1', times: 1 }]);
      const short = await download(`s3://${BUCKET}/${key}`, { client, retries: 1, backoffBaseMs: 5, stores });
      expect(short).toMatchObject({ ok: true, attempts: 2 });
      const log = (await requestLog()).filter((r) => r.path === `/${BUCKET}/${key}`);
      expect(log).toHaveLength(2);
      expect(log[1]!.t - log[0]!.t).toBeGreaterThanOrEqual(990);
    } finally {
      await client.close();
    }
  }, 60_000);

  it('whose store sends it chunked, without a Content-Length, is read whole, not refused as longer than its length', async () => {
    const bodies: Record<string, Buffer> = { 'src/chunked-small.bin': Buffer.alloc(50_000, 3), 'src/chunked-empty.bin': Buffer.alloc(0) };
    for (const [Key, Body] of Object.entries(bodies)) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body }));
    await faults([{ method: 'GET', path: `/${BUCKET}/src/chunked`, fault: 'chunked' }]);
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    const stores = () => openStore({ scheme: 's3', bucket: BUCKET, prefix: '' }, { s3: { endpoint: proxy.url, forcePathStyle: true }, maxAttempts: 1, conditionalWrites: 'off' });
    try {
      for (const [key, body] of Object.entries(bodies)) {
        const r = await download(`s3://${BUCKET}/${key}`, { client, retries: 0, stores });
        expect(r.ok && r.kind === 'buffer' ? sha(r.body) : r, key).toBe(sha(body));
      }
      expect((await stats()).faults).toEqual({ 'GET chunked': 2 });
    } finally {
      await client.close();
    }
  }, 60_000);

  it('whose body stalls is cut by the minimum rate and retried, never held for good', async () => {
    const key = 'src/stall.bin';
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.alloc(200_000, 1) }));
    await faults([{ method: 'GET', path: `/${BUCKET}/src/stall\\.bin`, fault: 'stall-body' }]);
    // The SDK's own socket timeout is long here: only the watch can end the body.
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none', minRate: 1024, minRateWindowMs: 1000 });
    const stores = () => openStore({ scheme: 's3', bucket: BUCKET, prefix: '' }, { s3: { endpoint: proxy.url, forcePathStyle: true }, maxAttempts: 1, timeoutMs: 120_000 });
    const started = Date.now();
    try {
      const r = await download(`s3://${BUCKET}/${key}`, { client, retries: 1, backoffBaseMs: 5, stores });
      expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 2 });
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await client.close();
    }
  }, 60_000);

  it('whose body stalls is cut after --timeout without a byte, as an HTTP body is, and retried', async () => {
    const key = 'src/stall-idle.bin';
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.alloc(200_000, 2) }));
    await faults([{ method: 'GET', path: `/${BUCKET}/src/stall-idle\\.bin`, fault: 'stall-body' }]);
    // No minimum rate, and the SDK's own socket timeout far off: only --timeout can end it.
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none', minRate: 0, timeoutMs: 1000 });
    const stores = () => openStore({ scheme: 's3', bucket: BUCKET, prefix: '' }, { s3: { endpoint: proxy.url, forcePathStyle: true }, maxAttempts: 1, timeoutMs: 120_000 });
    try {
      const r = await download(`s3://${BUCKET}/${key}`, { client, retries: 1, backoffBaseMs: 5, stores });
      expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 2 });
      expect(r.ok || r.detail).toContain('FERRY_IDLE_TIMEOUT');
      expect((await stats()).faults).toEqual({ 'GET stall-body': 2 });
    } finally {
      await client.close();
    }
  }, 60_000);
});

describe('credentials that may write objects but not list multipart uploads (s3:ListBucketMultipartUploads)', () => {
  /** Every ListMultipartUploads (GET /<bucket>/?uploads…) refused, as S3 refuses a role without that permission. */
  const refuseListing = () => faults([{ method: 'GET', path: '[?&]uploads', fault: 'status', status: 403, code: 'AccessDenied' }]);
  const note = /cleanup s3:\/\/faults\/.*: AccessDenied, HTTP 403: these credentials may not list or abort multipart uploads in s3:\/\/faults\/, so any that killed runs left open stay until a bucket lifecycle rule aborts them$/;

  it('compile completes its units, dest and out on S3, and says once per store what it could not clean', async () => {
    const root = path.join(dir, 'no-list');
    await fs.mkdir(path.join(root, 'manifests'), { recursive: true });
    for (const unit of ['a', 'b']) {
      await db.run(`COPY (SELECT ${lit(`no-list-${unit}`)} AS id, ${lit(`${origin.url}/file/no-list-${unit}/img0.png`)} AS media_path) TO '${path.join(root, 'manifests', `${unit}.parquet`)}' (FORMAT parquet)`);
    }
    await refuseListing();
    const args = [
      'compile', path.join(root, 'manifests'), '--dest', `s3://${BUCKET}/no-list`, '--out', `s3://${BUCKET}/no-list-out`,
      '--work-dir', path.join(root, 'work'), '--s3-endpoint', proxy.url, '--allow-private-network', '--jobs', '1', '--progress', 'plain',
    ];
    const run = await ferry(args);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('2 unit(s) compiled, 0 already complete, 0 failed');
    expect(run.stderr).not.toContain('FAILED');
    // The listing was refused (so the case tests something), and said once for --dest, once for --out.
    expect((await stats()).faults['GET status']).toBeGreaterThan(0);
    // (Its workers clean nothing at exit: the orchestrator cleans each unit, so none says it a third time.)
    expect(run.stderr.split('\n').filter((l) => note.test(l))).toHaveLength(2);
    for (const unit of ['a', 'b']) {
      const m = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `no-list-out/${unit}.manifest.json` }));
      expect(JSON.parse(await m.Body!.transformToString())).toMatchObject({ status: 'complete', counts: { migrated: 1 } });
    }
    const again = await ferry(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('0 unit(s) compiled, 2 already complete');
  }, 120_000);

  it('ferry worker ends its tasks and exits 0, with the note on stderr, not an internal error', async () => {
    await refuseListing();
    const run = await ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/no-list-worker`, '--s3-endpoint', proxy.url, '--allow-private-network'], {
      input: `w\t${origin.url}/file/no-list-w/img1.png\n`,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^UP_OK\tw\ts3:\/\/faults\/no-list-worker\//m);
    expect(run.stderr).not.toMatch(/internal error|^\s+at /m);
    expect(run.stderr.split('\n').filter((l) => l.startsWith('ferry worker: ') && note.test(l))).toHaveLength(1);
  }, 60_000);

  it('ferry worker whose last cleanup fails for another reason says so and still exits 0: every task has its event', async () => {
    await faults([{ method: 'GET', path: '[?&]uploads', fault: 'internal' }]);
    const run = await ferry(['worker', '--tasks', '-', '--dest', `s3://${BUCKET}/cleanup-500`, '--s3-endpoint', proxy.url, '--allow-private-network'], {
      input: `c\t${origin.url}/file/cleanup-500/img2.png\n`,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^UP_OK\tc\t/m);
    expect(run.stderr).toMatch(/^ferry worker: cleanup s3:\/\/faults\/cleanup-500\/: InternalError.*; left for a later run$/m);
    expect(run.stderr).not.toMatch(/internal error|^\s+at /m);
  }, 60_000);
});
