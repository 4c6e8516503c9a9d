/**
 * S3 and GCS take object names of at most 1,024 bytes, prefix included. A key past that
 * can never be written, so it is a permanent ledger row (KEY_TOO_LONG), decided before any
 * write — not an UPLOAD_FAILED that every replay retries — and before any download when
 * the key is too long whatever the payload's extension. fauxqs and the GCS emulator
 * accept longer names, so a row they hold would prove ferry sent it.
 */
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { openGcsStore } from '../../storage/gcs.js';
import { createS3Client } from '../../storage/s3.js';
import { type RunningGcs, startGcsEmulator } from '../helpers/backend-gcs.js';
import { fauxqsOptions, startS3Server, stopS3Server, useFakeAwsCredentials } from '../helpers/backend-s3.js';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, ferry, startOrigin } from '../helpers/run.js';

// 850 bytes of prefix: `<prefix>/m/<shard>/short.png` fits, a 190-byte id's key does not
// whatever its extension; a 166-byte id's fits up to its dot (1,023 bytes), not with `png`.
const PREFIX = 'p'.repeat(850);
const LONG_ID = 'i'.repeat(190);
const EXT_ID = 'e'.repeat(166);
let dir: string;
let origin: Origin;
let s3server: Awaited<ReturnType<typeof startS3Server>>;
let s3: S3Client;
let gcs: RunningGcs;
let restoreEnv: () => void;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-keylen-'));
  restoreEnv = useFakeAwsCredentials();
  process.env.AWS_REGION = 'us-east-1';
  [s3server, gcs] = await Promise.all([startS3Server(), startGcsEmulator()]);
  s3 = createS3Client(fauxqsOptions(s3server.port));
  await s3.send(new CreateBucketCommand({ Bucket: 'objects' }));
  await fs.mkdir(path.join(dir, 'origin'));
  await fs.writeFile(path.join(dir, 'origin', 'a.png'), await sharp({ create: { width: 40, height: 40, channels: 3, background: 'red' } }).png().toBuffer());
  origin = await startOrigin(path.join(dir, 'origin'));
  await fs.mkdir(path.join(dir, 'manifests'));
  const db = await duck();
  await db.run(`COPY (SELECT * FROM (VALUES ('short', ${lit(`${origin.url}/file/k1/a.png`)}), (${lit(LONG_ID)}, ${lit(`${origin.url}/file/k2/a.png`)}), (${lit(EXT_ID)}, ${lit(`${origin.url}/file/k3/a.png`)})) t(id, media_path)) TO '${path.join(dir, 'manifests', 'm.parquet')}' (FORMAT parquet)`);
  db.close();
}, 120_000);

afterAll(async () => {
  await origin?.close();
  s3?.destroy();
  if (s3server) await stopS3Server(s3server.child);
  await gcs?.stop();
  restoreEnv?.();
  await fs.rm(dir, { recursive: true, force: true });
});

async function compile(dest: string, name: string) {
  const out = path.join(dir, `out-${name}`);
  const r = await ferry(['compile', path.join(dir, 'manifests'), '--dest', dest, '--out', out, '--work-dir', path.join(dir, 'work'), '--s3-endpoint', `http://127.0.0.1:${s3server.port}`, '--gcs-endpoint', gcs.endpoint, '--allow-private-network', '--progress', 'none', '--retries', '2']);
  expect(r.code, r.stderr).toBe(0);
  const text = await fs.readFile(path.join(out, 'm.ledger.tsv'), 'utf8');
  expect(text).toContain(`${LONG_ID}\tKEY_TOO_LONG\tpermanent\tupload\t0\t`);
  return parseLedger(text);
}

describe('a destination key past 1,024 bytes', () => {
  it.each([
    ['S3', () => `s3://objects/${PREFIX}`, async () => ((await s3.send(new ListObjectsV2Command({ Bucket: 'objects' }))).Contents ?? []).map((o) => o.Key!)],
    [
      'GCS',
      () => `gs://ferry-keylen/${PREFIX}`,
      async () => {
        const store = await openGcsStore('ferry-keylen', '', { gcs: { endpoint: gcs.endpoint }, conditionalWrites: 'off' });
        const keys: string[] = [];
        for await (const o of store.list('')) keys.push(o.key);
        await store.close();
        return keys;
      },
    ],
  ])('on %s is a permanent KEY_TOO_LONG row, never written, never downloaded when no extension fits; the others migrate', async (name, dest, keys) => {
    const rows = await compile(dest(), name);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ id: LONG_ID, reason: 'KEY_TOO_LONG', stage: 'upload', attempts: 0 });
    expect(rows[0]!.detail).toMatch(/^whatever its extension, an object name of 1047 bytes .*over the 1024 that S3 and GCS take/);
    // Only the payload's type says this one is too long: downloaded once, refused before any write.
    expect(rows[1]).toMatchObject({ id: EXT_ID, reason: 'KEY_TOO_LONG', stage: 'upload', attempts: 1 });
    expect(rows[1]!.detail).toMatch(/^an object name of 1026 bytes .*over the 1024 that S3 and GCS take/);
    const seen = await origin.stats();
    expect(seen['/file/k2/a.png']).toBeUndefined();
    expect(seen['/file/k3/a.png']).toBeGreaterThan(0);
    const written = (await keys()).filter((k) => !k.includes('.ferry-'));
    expect(written.map((k) => k.endsWith('/short.png'))).toEqual([true]);
    expect(written.every((k) => Buffer.byteLength(k) <= 1024)).toBe(true);
  }, 60_000);
});
