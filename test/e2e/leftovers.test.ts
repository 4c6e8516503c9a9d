/**
 * What ferry leaves in a destination, for real: runs killed at the moment they have
 * something half-done in an S3 bucket (test/servers/s3.mjs behind test/servers/fault-proxy.mjs,
 * which holds a request open), and two runs sharing a destination. The next run must leave
 * nothing of the killed one behind, and a run must never undo another live run's writes.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectKey } from '../../storage/layout.js';
import { createS3Client } from '../../storage/s3.js';
import { fauxqsOptions, startS3Server, useFakeAwsCredentials } from '../helpers/backend-s3.js';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, ferry, ferrySpawn, startOrigin, until } from '../helpers/run.js';
import { type ServerProcess, startServer } from '../helpers/server.js';

const PROXY = fileURLToPath(new URL('../servers/fault-proxy.mjs', import.meta.url));
const BUCKET = 'leftovers';
const ROWS = 4;

type Rule = { method?: string | string[]; path?: string; fault: string; times?: number; ms?: number };

let dir: string;
let origin: Origin;
let server: ServerProcess;
let proxy: ServerProcess;
let proxyUrl: string;
let s3: S3Client;
let restoreEnv: () => void;
let db: Awaited<ReturnType<typeof duck>>;

async function control(method: string, route: string, body?: unknown): Promise<unknown> {
  const r = await fetch(`${proxyUrl}${route}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (!r.ok) throw new Error(`fault-proxy ${method} ${route}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Installs the rules and clears the request log, so each case sees only its own requests. */
async function faults(rules: Rule[]): Promise<void> {
  await control('POST', '/__faults', { rules });
  await control('DELETE', '/__stats');
}
const requestLog = () => control('GET', '/__log') as Promise<{ method: string; path: string; fault: string | null }[]>;
const seen = async (method: string, part: string) => (await requestLog()).some((r) => r.method === method && r.path.includes(part));

/** The keys in the bucket under `prefix`. */
async function keys(prefix: string): Promise<string[]> {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

/** A manifest of ROWS images served by the origin, for scenario `name` (or of the files `names`). */
async function manifest(name: string, names = Array.from({ length: ROWS }, (_, i) => `img${i}.png`)): Promise<string> {
  const at = path.join(dir, name, 'manifests');
  await fs.mkdir(at, { recursive: true });
  const values = names.map((file, i) => `(${lit(`${name}-${i}`)}, ${lit(`${origin.url}/file/${name}-${i}/${file}`)})`).join(',');
  await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path)) TO '${path.join(at, 'm.parquet')}' (FORMAT parquet)`);
  return at;
}

function args(name: string, dest: string, endpoint = proxyUrl): string[] {
  const root = path.join(dir, name);
  return [
    'compile', path.join(root, 'manifests'),
    '--dest', dest,
    '--out', path.join(root, 'out'),
    '--work-dir', path.join(root, 'work'),
    '--s3-endpoint', endpoint,
    '--allow-private-network',
    '--timeout', '60000',
    '--progress', 'none',
  ];
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-leftovers-'));
  restoreEnv = useFakeAwsCredentials();
  process.env.AWS_REGION = 'us-east-1';
  await fs.mkdir(path.join(dir, 'origin'));
  await fs.writeFile(path.join(dir, 'origin', 'big.bin'), randomBytes(13 * 2 ** 20));
  for (let i = 0; i < ROWS; i++) {
    const img = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 30 * i, g: 90, b: 10 } } }).png().toBuffer();
    await fs.writeFile(path.join(dir, 'origin', `img${i}.png`), img);
  }
  origin = await startOrigin(path.join(dir, 'origin'));
  server = await startS3Server(['--enforce-conditional-writes']); // as AWS: the probe finds If-None-Match enforced
  s3 = createS3Client(fauxqsOptions(server.port));
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  proxy = await startServer(PROXY, [`http://127.0.0.1:${server.port}`]);
  proxyUrl = `http://127.0.0.1:${proxy.port}`;
  db = await duck();
}, 120_000);

afterAll(async () => {
  db?.close();
  await origin?.close();
  await proxy?.stop();
  s3?.destroy();
  await server?.stop();
  restoreEnv?.();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('the write check', () => {
  it("a run killed between its write check's PUT and DELETE leaves a marker in --dest, which the next run removes", async () => {
    const name = 'killed-check';
    const dest = `s3://${BUCKET}/${name}`;
    await manifest(name);
    await faults([{ method: 'DELETE', path: '\\.ferry-write-check-', fault: 'stall' }]);
    const child = ferrySpawn(args(name, dest));
    await until(() => seen('DELETE', `/${BUCKET}/${name}/.ferry-write-check-`));
    process.kill(-child.pid!, 'SIGKILL');
    await once(child, 'exit');
    expect((await keys(`${name}/`)).filter((k) => k.includes('.ferry-write-check-'))).toHaveLength(1);
    await faults([]);
    const run = await ferry(args(name, dest));
    expect(run.code, run.stderr).toBe(0);
    const left = await keys(`${name}/`);
    expect(left.filter((k) => k.includes('.ferry-write-check-'))).toEqual([]);
    expect(left).toHaveLength(ROWS);
  }, 60_000);
});

const uploads = async (prefix: string) => ((await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }))).Uploads ?? []).map((u) => u.Key);
const streamed = ['--profile', 'any', '--multipart-threshold', '6MiB', '--part-size', '6MiB', '--retries', '0'];
/** `ferry worker` reading its tasks from `tasks` (a file, or `-`), standalone. */
const worker = (dest: string, endpoint: string, more: string[] = [], tasks = '-') =>
  ['worker', '--tasks', tasks, '--dest', dest, '--s3-endpoint', endpoint, '--allow-private-network', '--progress-interval', '60000', ...more];

describe('two runs sharing a destination', () => {
  const direct = () => `http://127.0.0.1:${server.port}`;
  // Two migrations into one --dest whose units have the same name (m), so the same prefix:
  // `live` streams one large object while the other completes its own unit.
  it.each([
    ['a compile of another manifest prefix', 'compile'],
    ['a standalone ferry worker', 'worker'],
  ])("%s completing the unit leaves alone the multipart upload another migration's live run has open under its prefix", async (_what, other) => {
    const dest = `s3://${BUCKET}/shared-${other}`;
    const live = `live-${other}`;
    await manifest(live, ['big.bin']);
    await faults([{ method: 'PUT', path: 'partNumber=1&', fault: 'delay', ms: 6000, times: 1 }]);
    const child = ferrySpawn([...args(live, dest), ...streamed]);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await until(async () => (await requestLog()).some((r) => r.fault === 'delay')); // its first part, held
    expect(await uploads(`shared-${other}/`)).toHaveLength(1);
    if (other === 'compile') {
      await manifest(`other-${other}`);
      const run = await ferry(args(`other-${other}`, dest, direct()));
      expect(run.code, run.stderr).toBe(0);
    } else {
      const tasks = Array.from({ length: ROWS }, (_, i) => `w-${i}\t${origin.url}/file/w-${i}/img${i}.png\n`).join('');
      const run = await ferry(worker(dest, direct(), ['--unit', 'm']), { input: tasks });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout.split('\n').filter((l) => l.startsWith('UP_OK'))).toHaveLength(ROWS);
    }
    const [code] = (await once(child, 'exit')) as [number];
    expect(code, stderr).toBe(0);
    expect(await fs.readFile(path.join(dir, live, 'out', 'm.ledger.tsv'), 'utf8')).toBe('id\treason\tclass\tstage\tattempts\turl\tdetail\n');
    expect(await keys(`shared-${other}/m/`)).toHaveLength(ROWS + 1);
    expect(await uploads(`shared-${other}/`)).toEqual([]);
  }, 60_000);

  it('a standalone ferry worker run again after a kill mid-upload aborts the upload the killed one left, and writes the object', async () => {
    const dest = `s3://${BUCKET}/rerun`;
    const task = `big\t${origin.url}/file/rerun/big.bin\n`;
    await faults([{ method: 'PUT', path: 'partNumber=1&', fault: 'stall' }]);
    await fs.writeFile(path.join(dir, 'rerun.tsv'), task);
    const child = ferrySpawn(worker(dest, proxyUrl, streamed, path.join(dir, 'rerun.tsv')));
    await until(async () => (await requestLog()).some((r) => r.fault === 'stall'));
    process.kill(-child.pid!, 'SIGKILL');
    await once(child, 'exit');
    expect(await uploads('rerun/')).toHaveLength(1);
    await faults([]);
    const run = await ferry(worker(dest, direct(), streamed), { input: task });
    expect(run.stdout, run.stderr).toMatch(/^UP_OK\tbig\t/m);
    expect(await uploads('rerun/')).toEqual([]);
  }, 60_000);

  it("a run completing a unit leaves alone the conditional-write probe another live run has under way", async () => {
    const dest = `s3://${BUCKET}/probe`;
    const task = `p\t${origin.url}/file/probe/img0.png\n`;
    // The standalone worker's probe: its first PUT lands, its answer is held while the compile
    // completes a unit under the same prefix and cleans it up.
    await faults([{ method: 'PUT', path: '\\.ferry-probe-', fault: 'delay', ms: 4000, times: 1 }]);
    const run = ferry(worker(dest, proxyUrl), { input: task });
    await until(async () => (await requestLog()).some((r) => r.fault === 'delay'));
    await manifest('probe-other');
    const other = await ferry(args('probe-other', dest, direct()));
    expect(other.code, other.stderr).toBe(0);
    const done = await run;
    expect(done.stdout, done.stderr).toMatch(/^UP_OK\tp\t/m);
    // The marker was there for its second, conditional PUT: the endpoint was found to enforce
    // If-None-Match, so the object went in one conditional PUT, without a HEAD first.
    const key = `/${BUCKET}/probe/${objectKey('p', 'png')}`;
    expect((await requestLog()).filter((r) => r.path === key).map((r) => r.method)).toEqual(['PUT']);
    expect((await keys('probe/')).filter((k) => k.includes('.ferry-probe-'))).toEqual([]);
  }, 60_000);
});

describe('two migrations sharing --out', () => {
  it("a unit whose --out holds another manifest's outputs of the same name fails, naming both, and replaces nothing without --force", async () => {
    const out = path.join(dir, 'shared-out');
    const compile = (name: string, more: string[] = []) =>
      ferry([...args(name, `s3://${BUCKET}/out-${name}`, `http://127.0.0.1:${server.port}`).map((a) => (a === path.join(dir, name, 'out') ? out : a)), ...more]);
    await manifest('batch1');
    await manifest('batch2', ['img1.png']);
    const first = await compile('batch1');
    expect(first.code, first.stderr).toBe(0);
    const before = await fs.readFile(path.join(out, 'm.parquet'));
    const second = await compile('batch2');
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(path.join(dir, 'batch1', 'manifests'));
    expect(second.stderr).toContain(path.join(dir, 'batch2', 'manifests'));
    expect(await fs.readFile(path.join(out, 'm.parquet'))).toEqual(before);
    expect(JSON.parse(await fs.readFile(path.join(out, 'm.manifest.json'), 'utf8')).source.uri).toContain('batch1');
    const forced = await compile('batch2', ['--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(await fs.readFile(path.join(out, 'm.manifest.json'), 'utf8')).source.uri).toContain('batch2');
  }, 60_000);
});
