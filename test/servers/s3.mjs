// A local S3 server for tests: fauxqs (in-memory S3, real multipart ETags), run as its own
// process so the client under test pays for real sockets. Listens on 127.0.0.1 only,
// port 0, and prints `PORT <n>` on stdout once listening; exits when its stdin ends or on
// SIGTERM, so a test that dies never leaves it running.
//
// Why not fauxqs's `startFauxqs()`: in 1.9 it always listens on 0.0.0.0 (its `host`
// option only names queue URLs), so we build its app with `buildApp` and listen ourselves.
//
// fauxqs 1.9 has no ListMultipartUploads (GET /<bucket>?uploads answers as a ListObjects),
// so this file adds it, read from fauxqs's own store: the multipart cleanup tests would
// otherwise pass without proving anything. It takes prefix, max-uploads, key-marker and
// upload-id-marker, and orders uploads by key, then upload id.
//
// With `--enforce-conditional-writes` it also refuses `If-None-Match: *` on an existing key
// with 412 PreconditionFailed, on PutObject and CompleteMultipartUpload, as AWS does:
// fauxqs accepts the header and overwrites, so this is how tests reach the code paths of an
// endpoint that enforces it.
import process from 'node:process';
import { buildApp } from 'fauxqs';

// fauxqs exports only its app; its store class sits beside it in the same package.
const { S3Store } = await import(new URL('./s3/s3Store.js', import.meta.resolve('fauxqs')).href);

const xml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function listMultipartUploads(store, bucket, params) {
  const prefix = params.get('prefix') ?? '';
  const keyMarker = params.get('key-marker') ?? '';
  const idMarker = params.get('upload-id-marker') ?? '';
  const max = Math.max(1, Math.min(1000, Number(params.get('max-uploads') ?? 1000) || 1000));
  const all = [...(store.multipartUploadsByBucket.get(bucket) ?? [])]
    .map((id) => store.multipartUploads.get(id))
    .filter((u) => u && u.key.startsWith(prefix))
    .filter((u) => u.key > keyMarker || (u.key === keyMarker && idMarker !== '' && u.uploadId > idMarker))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.uploadId < b.uploadId ? -1 : 1));
  const page = all.slice(0, max);
  const truncated = all.length > page.length;
  const last = page[page.length - 1];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
    `<Bucket>${xml(bucket)}</Bucket><KeyMarker>${xml(keyMarker)}</KeyMarker><UploadIdMarker>${xml(idMarker)}</UploadIdMarker>`,
    truncated && last ? `<NextKeyMarker>${xml(last.key)}</NextKeyMarker><NextUploadIdMarker>${xml(last.uploadId)}</NextUploadIdMarker>` : '',
    `<Prefix>${xml(prefix)}</Prefix><MaxUploads>${max}</MaxUploads><IsTruncated>${truncated}</IsTruncated>`,
    ...page.map(
      (u) =>
        `<Upload><Key>${xml(u.key)}</Key><UploadId>${xml(u.uploadId)}</UploadId>` +
        `<Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
    ),
    '</ListMultipartUploadsResult>',
  ].join('');
}

const enforceConditionalWrites = process.argv.includes('--enforce-conditional-writes');
const store = new S3Store();
const app = buildApp({ logger: false, stores: { s3Store: store } });

// `--body-limit BYTES`: fauxqs takes at most 11 MiB per request, too little for ferry's
// default 64 MiB parts; the benchmark of large objects raises it.
const limitAt = process.argv.indexOf('--body-limit');
if (limitAt > 0) {
  const bodyLimit = Number(process.argv[limitAt + 1]);
  app.removeContentTypeParser('*');
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
}

const errorXml = (code, message) => `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${xml(message)}</Message></Error>`;

/** The key an If-None-Match: * request would create, when the request is a PutObject or a CompleteMultipartUpload. */
function conditionalTarget(request, url) {
  if (request.headers['if-none-match'] !== '*') return undefined;
  const m = /^\/([^/]+)\/(.+)$/.exec(url.pathname);
  if (!m) return undefined;
  const bucket = decodeURIComponent(m[1]);
  const uploadId = url.searchParams.get('uploadId');
  if (request.method === 'PUT' && !uploadId && !request.headers['x-amz-copy-source']) return { bucket, key: decodeURIComponent(m[2]) };
  if (request.method === 'POST' && uploadId) {
    const upload = store.multipartUploads.get(uploadId);
    return upload ? { bucket: upload.bucket, key: upload.key } : undefined;
  }
  return undefined;
}

if (enforceConditionalWrites) {
  app.addHook('onRequest', async (request, reply) => {
    const target = conditionalTarget(request, new URL(request.url, 'http://local'));
    if (!target || !store.buckets.get(target.bucket)?.has(target.key)) return;
    reply.header('content-type', 'application/xml');
    return reply.status(412).send(errorXml('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'));
  });
}

app.addHook('onRequest', async (request, reply) => {
  if (request.method !== 'GET') return;
  const url = new URL(request.url, 'http://local');
  const bucket = /^\/([^/]+)\/?$/.exec(url.pathname)?.[1];
  if (!bucket || !url.searchParams.has('uploads')) return;
  const name = decodeURIComponent(bucket);
  reply.header('content-type', 'application/xml');
  if (!store.hasBucket(name)) {
    return reply.status(404).send(errorXml('NoSuchBucket', 'The specified bucket does not exist'));
  }
  return reply.status(200).send(listMultipartUploads(store, name, url.searchParams));
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await app.close().catch(() => {});
  process.exit(0);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();

await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(`PORT ${typeof address === 'object' && address ? address.port : 0}\n`);
