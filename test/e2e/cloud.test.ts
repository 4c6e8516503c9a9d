/**
 * The spine on object stores: manifests on S3, sources on S3 and HTTP, objects and
 * outputs on S3 — a real S3-compatible server (fauxqs) in its own process on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { createS3Client } from '../../storage/s3.js';
import { objectKey } from '../../storage/layout.js';
import { type RunningGcs, startGcsEmulator } from '../helpers/backend-gcs.js';
import { fauxqsOptions, startS3Server, stopS3Server, useFakeAwsCredentials } from '../helpers/backend-s3.js';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, ferry, startOrigin } from '../helpers/run.js';
import { NO_AWS_CREDENTIALS } from '../helpers/aws-env.js';

let dir: string;
let origin: Origin;
let server: Awaited<ReturnType<typeof startS3Server>>;
let s3: S3Client;
let restoreEnv: () => void;
let db: Awaited<ReturnType<typeof duck>>;
const images: Record<string, Buffer> = {};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function get(bucket: string, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

const endpoint = () => `http://127.0.0.1:${server.port}`;
const compile = (...extra: string[]) =>
  ferry(['compile', 's3://meta/manifests', '--dest', 's3://objects/dest', '--out', 's3://meta/out', '--s3-endpoint', endpoint(), '--allow-private-network', '--work-dir', path.join(dir, 'work'), '--progress', 'none', '--retries', '3', ...extra]);

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-cloud-'));
  restoreEnv = useFakeAwsCredentials();
  process.env.AWS_REGION = 'us-east-1';
  server = await startS3Server();
  s3 = createS3Client(fauxqsOptions(server.port));
  for (const b of ['meta', 'objects', 'src']) await s3.send(new CreateBucketCommand({ Bucket: b }));
  await fs.mkdir(path.join(dir, 'origin'));
  const img = (fmt: 'jpeg' | 'png' | 'webp', w: number) => sharp({ create: { width: w, height: w, channels: 3, background: { r: w, g: 9, b: 9 } } }).toFormat(fmt).toBuffer();
  images['a.jpg'] = await img('jpeg', 60);
  images['b.png'] = await img('png', 50);
  images['c.webp'] = await img('webp', 40);
  images['tiny.png'] = await img('png', 8);
  for (const [name, body] of Object.entries(images)) {
    await fs.writeFile(path.join(dir, 'origin', name), body);
    await s3.send(new PutObjectCommand({ Bucket: 'src', Key: `img/${name}`, Body: body }));
  }
  origin = await startOrigin(path.join(dir, 'origin'));
  db = await duck();
  const rows = [
    ['http-a', `${origin.url}/file/ca/a.jpg`],
    ['s3 b', 's3://src/img/b.png'],
    ['s3/c', 's3://src/img/c.webp'],
    ['s3-tiny', 's3://src/img/tiny.png'],
    ['s3-missing', 's3://src/img/none.jpg'],
    ['flaky', `${origin.url}/file/cf/a.jpg?fail=4&status=503`],
  ];
  const values = rows.map(([id, url], i) => `(${lit(id!)}, ${lit(url!)}, ${i}, TIMESTAMP '2024-02-29 12:00:00.654321')`).join(',');
  const local = path.join(dir, 'u1.parquet');
  await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path, n, ts)) TO '${local}' (FORMAT parquet, ROW_GROUP_SIZE 2)`);
  await s3.send(new PutObjectCommand({ Bucket: 'meta', Key: 'manifests/u1.parquet', Body: await fs.readFile(local) }));
  await db.run(`COPY (SELECT 7::BIGINT AS id, ${lit(`${origin.url}/file/cu2/b.png`)} AS media_path) TO '${path.join(dir, 'u2.parquet')}' (FORMAT parquet)`);
  await s3.send(new PutObjectCommand({ Bucket: 'meta', Key: 'manifests/sub/u2.parquet', Body: await fs.readFile(path.join(dir, 'u2.parquet')) }));
  // A sibling prefix that must not be taken for the manifest folder.
  await s3.send(new PutObjectCommand({ Bucket: 'meta', Key: 'manifests2/other.parquet', Body: await fs.readFile(local) }));
}, 120_000);

afterAll(async () => {
  db?.close();
  await origin?.close();
  s3?.destroy();
  if (server) await stopS3Server(server.child);
  restoreEnv?.();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('compile with everything on S3', () => {
  let first: Awaited<ReturnType<typeof ferry>>;
  beforeAll(async () => {
    first = await compile();
  }, 120_000);

  it('compiles both units, and only the manifest folder', () => {
    expect(first.stderr).toContain('2 unit(s) compiled');
    expect(first.code, first.stderr).toBe(0);
  });

  it('writes renewed Parquet, ledger and manifest.json to S3', async () => {
    const local = path.join(dir, 'renewed-u1.parquet');
    await fs.writeFile(local, await get('meta', 'out/u1.parquet'));
    const rows = await db.rows(`SELECT id, updated_media_path AS p, bad_image AS bad, ts FROM '${local}'`);
    expect(rows.map((r) => [r.id, r.p === null ? null : String(r.p), r.bad])).toEqual([
      ['http-a', `s3://objects/dest/${objectKey('http-a', 'jpg', 'u1')}`, false],
      ['s3 b', `s3://objects/dest/${objectKey('s3 b', 'png', 'u1')}`, false],
      ['s3/c', `s3://objects/dest/${objectKey('s3/c', 'webp', 'u1')}`, false],
      ['s3-tiny', null, true],
      ['s3-missing', null, false],
      ['flaky', null, false],
    ]);
    expect(rows[0]!.ts).toBe('2024-02-29 12:00:00.654321');
    const ledger = parseLedger((await get('meta', 'out/u1.ledger.tsv')).toString());
    expect(ledger.map((r) => `${r.id}:${r.reason}`)).toEqual(['s3-tiny:TOO_FEW_PIXELS', 's3-missing:NOT_FOUND', 'flaky:HTTP_5XX']);
    const m = JSON.parse((await get('meta', 'out/sub/u2.manifest.json')).toString());
    expect(m).toMatchObject({ status: 'complete', unit: 'sub/u2', source: { uri: 's3://meta/manifests/sub/u2.parquet' } });
  });

  it('uploads the exact bytes with their type and ferry metadata', async () => {
    for (const [id, name, ext] of [['http-a', 'a.jpg', 'jpg'], ['s3 b', 'b.png', 'png'], ['s3/c', 'c.webp', 'webp']] as const) {
      const key = `dest/${objectKey(id, ext, 'u1')}`;
      expect(sha(await get('objects', key))).toBe(sha(images[name]!));
      const head = await s3.send(new HeadObjectCommand({ Bucket: 'objects', Key: key }));
      expect(head.ContentType).toBe(ext === 'jpg' ? 'image/jpeg' : `image/${ext}`);
      expect(head.Metadata?.['ferry-sha256']).toBe(sha(images[name]!));
    }
  });

  it('replays from a ledger URI', async () => {
    const r = await ferry(['replay', 's3://meta/out/u1.ledger.tsv', '--s3-endpoint', endpoint(), '--allow-private-network', '--work-dir', path.join(dir, 'work'), '--progress', 'none']);
    expect(r.stderr).toContain('1 of 1 repaired');
    expect(r.code, r.stderr).toBe(0);
    const ledger = parseLedger((await get('meta', 'out/u1.ledger.tsv')).toString());
    expect(ledger.map((x) => x.id)).toEqual(['s3-tiny', 's3-missing']);
  }, 120_000);

  it('a forced re-run against a destination holding every object rewrites nothing', async () => {
    const key = `dest/${objectKey('s3 b', 'png', 'u1')}`;
    const before = (await s3.send(new HeadObjectCommand({ Bucket: 'objects', Key: key }))).Metadata?.['ferry-run'];
    const r = await compile('--force');
    expect(r.code, r.stderr).toBe(0);
    const after = (await s3.send(new HeadObjectCommand({ Bucket: 'objects', Key: key }))).Metadata?.['ferry-run'];
    expect(after).toBe(before);
  }, 120_000);

  it('streams a large object to S3 in parts under --profile any', async () => {
    const big = Buffer.alloc(10 * 2 ** 20, 7); // fauxqs takes at most 11 MiB per request
    big.write('%PDF-1.7\n', 0);
    await s3.send(new PutObjectCommand({ Bucket: 'src', Key: 'big/doc.pdf', Body: big }));
    const tasks = 'doc\ts3://src/big/doc.pdf\n';
    const r = await ferry(['worker', '--tasks', '-', '--dest', 's3://objects/large', '--profile', 'any', '--multipart-threshold', '4MiB', '--part-size', '6MiB', '--s3-endpoint', endpoint()], { input: tasks });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^UP_OK\tdoc\ts3:\/\/objects\/large\/[0-9a-f]{2}\/doc\.pdf\tpdf\t10485760\t/m);
    expect(sha(await get('objects', `large/${objectKey('doc', 'pdf')}`))).toBe(sha(big));
  }, 120_000);

  it('a large object from a source without an ETag is, on a re-run, the same object (its sha256), not a conflict', async () => {
    const tasks = `noetag\t${origin.url}/big/noetag?size=${9 * 2 ** 20}\n`; // chunked: no length, no ETag
    const run = () => ferry(['worker', '--tasks', '-', '--dest', 's3://objects/large-noetag', '--profile', 'any', '--multipart-threshold', '4MiB', '--part-size', '6MiB', '--s3-endpoint', endpoint(), '--allow-private-network'], { input: tasks });
    const first = await run();
    expect(first.stdout).toMatch(/^UP_OK\tnoetag\t.*\t0$/m);
    const key = `large-noetag/${objectKey('noetag', 'bin')}`;
    const stamped = (await s3.send(new HeadObjectCommand({ Bucket: 'objects', Key: key }))).Metadata?.['ferry-run'];
    const again = await run();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^UP_OK\tnoetag\t.*\t[0-9a-f]{64}\t\t\t1$/m);
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'objects', Key: key }))).Metadata?.['ferry-run']).toBe(stamped); // not rewritten
  }, 120_000);

  it('a large object rewritten under its kept ferry metadata is, on a re-run, DEST_CONFLICT, not the same object', async () => {
    const big = Buffer.alloc(9 * 2 ** 20, 3);
    big.write('%PDF-1.7\n', 0);
    await s3.send(new PutObjectCommand({ Bucket: 'src', Key: 'kept/doc.pdf', Body: big }));
    // One source with an ETag (decided on ferry-source) and one without (decided on ferry-sha256 after streaming).
    const tasks = `tagged\ts3://src/kept/doc.pdf\nuntagged\t${origin.url}/big/kept?size=${9 * 2 ** 20}\n`;
    const run = () => ferry(['worker', '--tasks', '-', '--dest', 's3://objects/kept', '--profile', 'any', '--multipart-threshold', '4MiB', '--part-size', '6MiB', '--s3-endpoint', endpoint(), '--allow-private-network'], { input: tasks });
    const first = await run();
    expect(first.stdout.match(/^UP_OK\t.*\t0$/gm)).toHaveLength(2);
    for (const [id, ext] of [['tagged', 'pdf'], ['untagged', 'bin']] as const) {
      const Key = `kept/${objectKey(id, ext)}`;
      const { Metadata } = await s3.send(new HeadObjectCommand({ Bucket: 'objects', Key }));
      expect(Metadata?.['ferry-sha256']).toMatch(/^[0-9a-f]{64}$/);
      await s3.send(new PutObjectCommand({ Bucket: 'objects', Key, Body: Buffer.from('%PDF-1.7 edited by hand'), Metadata }));
    }
    const again = await run();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^UP_ERR\ttagged\tDEST_CONFLICT\t/m);
    expect(again.stdout).toMatch(/^UP_ERR\tuntagged\tDEST_CONFLICT\t/m);
  }, 120_000);
});

describe('manifest keys with an empty path segment, compiled to folders', () => {
  it('fails that unit, naming it, instead of letting it overwrite the outputs of its twin', async () => {
    const body = await fs.readFile(path.join(dir, 'u2.parquet'));
    for (const key of ['doubled/a/b.parquet', 'doubled/a//b.parquet']) await s3.send(new PutObjectCommand({ Bucket: 'meta', Key: key, Body: body }));
    const out = path.join(dir, 'doubled-out');
    const r = await ferry(['compile', 's3://meta/doubled', '--dest', path.join(dir, 'doubled-objects'), '--out', out, '--s3-endpoint', endpoint(), '--allow-private-network', '--work-dir', path.join(dir, 'work'), '--progress', 'none']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('1 unit(s) compiled');
    expect(r.stderr).toContain('unit a//b failed: s3://meta/doubled/a//b.parquet: its key has an empty path segment');
    const manifest = JSON.parse(await fs.readFile(path.join(out, 'a', 'b.manifest.json'), 'utf8')) as { unit: string; source: { uri: string } };
    expect(manifest.source.uri).toBe('s3://meta/doubled/a/b.parquet');
  }, 120_000);
});

describe('mixed: manifests on S3, objects to GCS, outputs to S3, sources from S3 and HTTP', () => {
  let gcs: RunningGcs;
  let first: Awaited<ReturnType<typeof ferry>>;
  const mixed = (...extra: string[]) =>
    ferry(['compile', 's3://meta/manifests', '--dest', 'gs://mixed-objects/dest', '--out', 's3://meta/mixed-out', '--s3-endpoint', endpoint(), '--gcs-endpoint', gcs.endpoint, '--allow-private-network', '--work-dir', path.join(dir, 'work'), '--progress', 'none', '--retries', '0', ...extra]);

  beforeAll(async () => {
    gcs = await startGcsEmulator();
    first = await mixed();
  }, 120_000);

  afterAll(async () => {
    await gcs?.stop();
  });

  it('compiles, with objects on GCS and outputs on S3', async () => {
    expect(first.code, first.stderr).toBe(0);
    const local = path.join(dir, 'mixed-u1.parquet');
    await fs.writeFile(local, await get('meta', 'mixed-out/u1.parquet'));
    const rows = await db.rows(`SELECT id, updated_media_path AS p FROM '${local}' WHERE p IS NOT NULL ORDER BY id`);
    expect(rows.map((r) => String(r.p))).toEqual(
      // flaky's origin path has recovered by now (its failures were spent by the S3 runs above)
      [['flaky', 'jpg'], ['http-a', 'jpg'], ['s3 b', 'png'], ['s3/c', 'webp']].map(([id, ext]) => `gs://mixed-objects/dest/${objectKey(id!, ext!, 'u1')}`),
    );
    const probe = await (await import('../../storage/gcs.js')).openGcsStore('mixed-objects', 'dest/', { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
    const got = await probe.read(objectKey('s3 b', 'png', 'u1'));
    const chunks: Buffer[] = [];
    for await (const c of got.body) chunks.push(c as Buffer);
    expect(sha(Buffer.concat(chunks))).toBe(sha(images['b.png']!));
    expect(got.info.metadata['ferry-sha256']).toBe(sha(images['b.png']!));
    await probe.close();
  });

  it('reads gs:// sources with the same gates and events', async () => {
    const src = await (await import('../../storage/gcs.js')).openGcsStore('mixed-src', '', { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
    await src.put('img/c.webp', images['c.webp']!, { contentType: 'text/plain', metadata: {}, ifAbsent: false });
    await src.put('img/tiny.png', images['tiny.png']!, { contentType: 'image/png', metadata: {}, ifAbsent: false });
    await src.close();
    const tasks = 'g1\tgs://mixed-src/img/c.webp\ng2\tgs://mixed-src/img/tiny.png\ng3\tgs://mixed-src/img/none.png\n';
    const r = await ferry(['worker', '--tasks', '-', '--dest', 's3://objects/from-gcs', '--gcs-endpoint', gcs.endpoint, '--s3-endpoint', endpoint()], { input: tasks });
    expect(r.code, r.stderr).toBe(0);
    const terminal = r.stdout.trim().split('\n').filter((l) => !l.startsWith('DL_OK')).map((l) => l.split('\t').slice(0, 3).join(' ')).sort();
    expect(terminal).toEqual(['BAD_IMAGE g2 TOO_FEW_PIXELS', 'DL_ERR g3 NOT_FOUND', `UP_OK g1 s3://objects/from-gcs/${objectKey('g1', 'webp')}`]);
    expect(sha(await get('objects', `from-gcs/${objectKey('g1', 'webp')}`))).toBe(sha(images['c.webp']!));
  }, 60_000);

  it('a forced re-run rewrites no object on GCS', async () => {
    const probe = await (await import('../../storage/gcs.js')).openGcsStore('mixed-objects', 'dest/', { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
    const key = objectKey('s3/c', 'webp', 'u1');
    const before = (await probe.stat(key))!.version;
    const r = await mixed('--force');
    expect(r.code, r.stderr).toBe(0);
    expect((await probe.stat(key))!.version).toBe(before);
    await probe.close();
  }, 120_000);
});

describe('s3:// sources when the run has no AWS credentials', () => {
  // Nothing the credential chain could find: no keys, no profile, no files, and no metadata
  // service asked (it would be a request off this machine).
  const none: NodeJS.ProcessEnv = NO_AWS_CREDENTIALS;

  let manifests: string;
  const run = (name: string, ...extra: string[]) =>
    ferry(['compile', manifests, '--dest', path.join(dir, `anon-${name}`, 'objects'), '--out', path.join(dir, `anon-${name}`, 'out'), '--s3-endpoint', endpoint(), '--allow-private-network', '--work-dir', path.join(dir, 'anon-work'), '--progress', 'none', ...extra], { env: none });

  beforeAll(async () => {
    manifests = path.join(dir, 'anon-manifests');
    await fs.mkdir(manifests);
    await db.run(`COPY (SELECT * FROM (VALUES ('p1', 's3://src/img/a.jpg'), ('p2', 's3://src/img/b.png'), ('p3', 's3://src/img/none.jpg')) t(id, media_path)) TO '${path.join(manifests, 'pub.parquet')}' (FORMAT parquet)`);
  });

  it('fail their unit in one line naming the cause and the flag, before any task, so a run with credentials compiles it', async () => {
    const r = await run('denied');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      'ferry: unit pub failed: its s3:// URLs cannot be fetched: no AWS credentials (CredentialsProviderError: Could not load credentials from any providers): give the run AWS credentials',
    );
    expect(r.stderr).toContain('or pass --s3-no-sign-request to read public buckets unsigned');
    // Not a unit completed with a ledger of FORBIDDEN rows, which a later run would skip.
    await expect(fs.readdir(path.join(dir, 'anon-denied', 'out'))).resolves.toEqual([]);
    const again = await ferry(['compile', manifests, '--dest', path.join(dir, 'anon-denied', 'objects'), '--out', path.join(dir, 'anon-denied', 'out'), '--s3-endpoint', endpoint(), '--allow-private-network', '--work-dir', path.join(dir, 'anon-work'), '--progress', 'none']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('1 unit(s) compiled');
  }, 60_000);

  it('are read unsigned, with no credentials at all, under --s3-no-sign-request', async () => {
    const r = await run('public', '--s3-no-sign-request');
    expect(r.code, r.stderr).toBe(0);
    const ledger = parseLedger(await fs.readFile(path.join(dir, 'anon-public', 'out', 'pub.ledger.tsv'), 'utf8'));
    expect(ledger.map((row) => [row.id, row.reason])).toEqual([['p3', 'NOT_FOUND']]);
    const written = await fs.readFile(path.join(dir, 'anon-public', 'objects', objectKey('p2', 'png', 'pub')));
    expect(sha(written)).toBe(sha(images['b.png']!));
    // A replay of its s3:// rows asks the same of the run's credentials.
    const replay = (...extra: string[]) =>
      ferry(['replay', path.join(dir, 'anon-public', 'out', 'pub.ledger.tsv'), '--reasons', 'all', '--s3-endpoint', endpoint(), '--allow-private-network', '--work-dir', path.join(dir, 'anon-work'), '--progress', 'none', ...extra], { env: none });
    const denied = await replay();
    expect(denied.code, denied.stderr).toBe(1);
    expect(denied.stderr).toContain('its s3:// URLs cannot be fetched: no AWS credentials');
    const unsigned = await replay('--s3-no-sign-request');
    expect(unsigned.code, unsigned.stderr).toBe(0);
  }, 60_000);
});
