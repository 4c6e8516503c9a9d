// The bare Node loop: the machine's limit for Node, against which ferry is measured.
// `node bench/bare.mjs --base URL --list FILE --dest DIR|s3://bucket/prefix --concurrency C
//  [--s3-endpoint URL] [--retries N]`
// C loops over one undici keep-alive pool (C connections): GET → whole body → `fs.writeFile`
// (the list's relative path under DIR), or → SDK v3 `PutObject` (`requestChecksumCalculation:
// 'WHEN_REQUIRED'`, a keep-alive agent of C sockets). No validation, no journal, no events.
// A 429 or 503 is retried after a jittered backoff (100 ms × 2^n, at most --retries times,
// default 3). Prints one JSON line: { ok, failed, bytes, statuses, errors }, and exits 1 when
// an object failed, as rclone does: a run that did not move every object is no figure.
import { Buffer } from 'node:buffer';
import { Agent as HttpAgent } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';

const { values: opt } = parseArgs({
  options: {
    base: { type: 'string' },
    list: { type: 'string' },
    dest: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    's3-endpoint': { type: 'string' },
    retries: { type: 'string', default: '3' },
  },
});
const concurrency = Number(opt.concurrency);
const retries = Number(opt.retries);
const rels = (await readFile(opt.list, 'utf8')).split('\n').filter(Boolean);
const dispatcher = new Agent({ connections: concurrency, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
const types = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };

let put;
if (opt.dest.startsWith('s3://')) {
  const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const { NodeHttpHandler } = await import('@smithy/node-http-handler');
  const [bucket, ...rest] = opt.dest.slice(5).split('/');
  const prefix = rest.filter(Boolean).join('/');
  const s3 = new S3Client({
    endpoint: opt['s3-endpoint'],
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? 'us-east-1',
    requestChecksumCalculation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({ httpAgent: new HttpAgent({ keepAlive: true, maxSockets: concurrency }) }),
  });
  put = (rel, body) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: prefix ? `${prefix}/${rel}` : rel, Body: body, ContentType: types[rel.slice(rel.lastIndexOf('.') + 1)] }));
} else {
  await Promise.all([...new Set(rels.map((r) => dirname(r)))].map((d) => mkdir(join(opt.dest, d), { recursive: true })));
  put = (rel, body) => writeFile(join(opt.dest, rel), body);
}

const statuses = {};
const errors = {};
let ok = 0;
let failed = 0;
let bytes = 0;

async function fetchOne(url) {
  for (let attempt = 0; ; attempt++) {
    const { statusCode, body } = await request(url, { dispatcher });
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
    if (statusCode === 200) return Buffer.from(await body.arrayBuffer());
    await body.dump();
    if ((statusCode !== 429 && statusCode !== 503) || attempt >= retries) throw new Error(`HTTP ${statusCode}`);
    await sleep(100 * 2 ** attempt * (0.5 + Math.random()));
  }
}

let next = 0;
async function lane() {
  while (next < rels.length) {
    const rel = rels[next++];
    try {
      const body = await fetchOne(`${opt.base}/${rel}`);
      await put(rel, body);
      ok++;
      bytes += body.length;
    } catch (e) {
      failed++;
      const k = `${e.code ?? ''} ${e.message}`.trim().slice(0, 120);
      errors[k] = (errors[k] ?? 0) + 1;
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, lane));
await dispatcher.close();
process.stdout.write(JSON.stringify({ ok, failed, bytes, statuses, errors }) + '\n');
process.exit(failed ? 1 : 0);
