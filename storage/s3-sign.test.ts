/**
 * The lean PutObject (s3-put.ts) signs and routes exactly as the AWS SDK does. Neither
 * fauxqs nor s3rver checks signatures (FACTS.md), so this is proven here: AWS's published
 * SigV4 examples against the signer as the lean path configures it; the SDK's own request
 * and the lean one, side by side on the wire at a fixed clock with fixed credentials; and
 * the endpoint the lean path resolves against the one the SDK sends to.
 */
import { createHash } from 'node:crypto';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { useFakeAwsCredentials } from '../test/helpers/backend-s3.js';
import type { StoreOptions } from './adapter.js';
import { createS3Client, openS3Store } from './s3.js';
import { encodeKey, resolveRoute, signerFor } from './s3-put.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe("AWS's published SigV4 examples (S3 API reference, header-based auth)", () => {
  // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' } });
  const signer = signerFor(client.config, { signingRegion: 'us-east-1', signingName: 's3' });
  const host = 'examplebucket.s3.amazonaws.com';
  const get = (path: string, query: Record<string, string>, headers: Record<string, string>) => ({
    method: 'GET',
    protocol: 'https:',
    hostname: host,
    path,
    query,
    headers: { host, 'x-amz-content-sha256': sha(''), ...headers },
  });
  const at = { signingDate: new Date('2013-05-24T00:00:00Z') };
  afterAll(() => client.destroy());

  it.each([
    ['GET Object', get('/test.txt', {}, { range: 'bytes=0-9' }), 'host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'],
    ['GET Bucket (List Objects)', get('/', { 'max-keys': '2', prefix: 'J' }, {}), 'host;x-amz-content-sha256;x-amz-date', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'],
  ])('%s', async (_name, request, signedHeaders, signature) => {
    const signed = await signer.sign(request, at);
    expect(signed.headers.authorization).toBe(
      `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    );
    expect(signed.headers['x-amz-date']).toBe('20130524T000000Z');
  });

  it("encodes a key as the example's canonical request does ($ as %24)", () => {
    expect(`/${encodeKey('test$file.text')}`).toBe('/test%24file.text');
  });
});

// ---------------------------------------------------------------------------------------

type Seen = { method: string; url: string; headers: IncomingHttpHeaders };

/** A server on 127.0.0.1 that records each request and answers 200, without a Date header (the clock is faked). */
async function recorder(): Promise<{ server: Server; url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      res.sendDate = false;
      res.writeHead(200, { 'content-length': '0' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** The SDK's own headers about itself (its version, invocation id, attempt): signed by the SDK, never sent by the lean path. */
const SDK_TELEMETRY = ['x-amz-user-agent', 'amz-sdk-invocation-id', 'amz-sdk-request'];

/** A client as ferry's stores make it, minus the SDK's telemetry headers, so the two signatures cover the same headers. */
function referenceClient(options: StoreOptions): S3Client {
  const client = createS3Client(options);
  client.middlewareStack.addRelativeTo(
    <A extends object, R>(next: (args: A) => Promise<R>) =>
      async (args: A): Promise<R> => {
        const headers = (args as { request?: { headers: Record<string, string> } }).request!.headers;
        for (const h of SDK_TELEMETRY) delete headers[h];
        return next(args);
      },
    { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'dropTelemetry' },
  );
  return client;
}

const signedHeaderNames = (authorization: string | undefined): string[] => /SignedHeaders=([^,]+)/.exec(authorization ?? '')?.[1]?.split(';') ?? [];

describe('the lean PutObject and the SDK send the same signed request', () => {
  let rec: Awaited<ReturnType<typeof recorder>>;
  let restoreEnv: () => void;

  beforeAll(async () => {
    rec = await recorder();
  });
  afterAll(() => new Promise<void>((resolve) => rec.server.close(() => resolve())));
  beforeEach(() => {
    restoreEnv = useFakeAwsCredentials();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-04T05:06:07.890Z'));
    rec.seen.length = 0;
  });
  afterEach(() => {
    vi.useRealTimers();
    restoreEnv();
  });

  const body = Buffer.from('twenty kilobytes of image, give or take');
  const metadata = { 'ferry-id': 'a%2Fb', 'ferry-sha256': sha(body), 'ferry-source': '20000 "9f1c"', 'ferry-run': 'run-1' };

  it.each([
    ['a plain key, conditional', 'u/ab/one.jpg', true, undefined, 'us-east-1'],
    ['a key with spaces, percent signs and unicode', 'u/7f/a%2Fb c%25d é.png', false, undefined, 'us-east-1'],
    ["a key with every character JavaScript's encodeURIComponent leaves", "u/00/!'()*~-_.png", true, undefined, 'eu-west-3'],
    ['reserved characters in a key', 'u/00/a+b=c&d?e#f$g@h:i,j;k[l].png', false, undefined, 'us-east-1'],
    ['session credentials', 'u/ab/two.jpg', true, 'FwoGZXIvYXdzEJr//////////wEaDOz+token/with=chars', 'ap-southeast-2'],
  ])('%s', async (_name, key, ifAbsent, sessionToken, region) => {
    if (sessionToken) process.env.AWS_SESSION_TOKEN = sessionToken; // restored by afterEach
    const options: StoreOptions = { s3: { endpoint: rec.url, forcePathStyle: true, region }, conditionalWrites: ifAbsent ? 'on' : 'off', maxAttempts: 1 };
    const sdk = referenceClient(options);
    const store = await openS3Store('bucket-1', 'dest/', options);
    try {
      await sdk.send(
        new PutObjectCommand({
          Bucket: 'bucket-1',
          Key: `dest/${key}`,
          Body: body,
          ContentType: 'image/png',
          ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
          Metadata: metadata,
          ...(ifAbsent ? { IfNoneMatch: '*' } : {}),
        }),
      );
      await store.put(key, body, { contentType: 'image/png', metadata, ifAbsent, sha256: sha(body) });
    } finally {
      sdk.destroy();
      await store.close();
    }
    expect(rec.seen).toHaveLength(2);
    const [bySdk, byLean] = rec.seen as [Seen, Seen];
    expect(byLean.method).toBe('PUT');
    expect(byLean.url).toBe(bySdk.url);
    expect(byLean.headers.authorization).toBe(bySdk.headers.authorization);
    const names = signedHeaderNames(bySdk.headers.authorization);
    expect(names).toEqual(
      [
        'content-length',
        'content-type',
        'host',
        ...(ifAbsent ? ['if-none-match'] : []),
        'x-amz-checksum-sha256',
        'x-amz-content-sha256',
        'x-amz-date',
        'x-amz-meta-ferry-id',
        'x-amz-meta-ferry-run',
        'x-amz-meta-ferry-sha256',
        'x-amz-meta-ferry-source',
        ...(sessionToken ? ['x-amz-security-token'] : []),
      ].sort(),
    );
    for (const h of names) expect([h, byLean.headers[h]]).toEqual([h, bySdk.headers[h]]);
    expect(byLean.headers['x-amz-date']).toBe('20260304T050607Z');
    expect(byLean.headers['x-amz-content-sha256']).toBe(sha(body));
    expect(byLean.headers.authorization).toContain(`/${region}/s3/aws4_request`);
    // Content-MD5 is not needed: the signed sha256 is what S3 checks the body against.
    expect(byLean.headers['content-md5']).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------

describe('the lean PutObject goes where the SDK sends a PutObject', () => {
  let restoreEnv: () => void;
  beforeAll(() => {
    restoreEnv = useFakeAwsCredentials();
  });
  afterAll(() => restoreEnv());

  /** The URL of the PutObject the SDK would send (its request handler records it and answers 200). */
  async function sdkUrl(config: S3ClientConfig, bucket: string, key: string): Promise<string> {
    let url = '';
    const client = new S3Client({
      ...config,
      requestHandler: {
        handle: async (req: { protocol: string; hostname: string; port?: number; path: string; query: Record<string, string>; headers: Record<string, string> }) => {
          url = `${req.protocol}//${req.headers.host}${req.path}?${new URLSearchParams(req.query).toString()}`;
          return { response: { statusCode: 200, headers: {}, body: Buffer.alloc(0) } };
        },
      },
    });
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from('x') }));
    client.destroy();
    return url;
  }

  const key = "u/7f/a b!'()*é.png";

  it.each<[string, S3ClientConfig, string, string]>([
    ['AWS, virtual-hosted', { region: 'eu-west-3' }, 'bkt', 'https://bkt.s3.eu-west-3.amazonaws.com/'],
    ['AWS, a dotted bucket (path style, TLS cannot cover it)', { region: 'eu-west-3' }, 'my.dotted.bkt', 'https://s3.eu-west-3.amazonaws.com/my.dotted.bkt/'],
    ['AWS, path style forced', { region: 'us-west-2', forcePathStyle: true }, 'bkt', 'https://s3.us-west-2.amazonaws.com/bkt/'],
    ['AWS, FIPS and dual-stack', { region: 'us-east-2', useFipsEndpoint: true, useDualstackEndpoint: true }, 'bkt', 'https://bkt.s3-fips.dualstack.us-east-2.amazonaws.com/'],
    ['a custom endpoint with a base path', { region: 'us-east-1', endpoint: 'https://minio.example:9000/base' }, 'bkt', 'https://bkt.minio.example:9000/base/'],
    ['a custom IP endpoint (path style by itself)', { region: 'us-east-1', endpoint: 'http://10.1.2.3:9000' }, 'bkt', 'http://10.1.2.3:9000/bkt/'],
  ])('%s', async (_name, config, bucket, base) => {
    const client = new S3Client(config);
    const route = await resolveRoute(client, bucket);
    client.destroy();
    expect(route).not.toBeNull();
    const lean = `${route!.protocol}//${route!.host}${route!.basePath}${encodeKey(key)}?x-id=PutObject`;
    expect(lean).toBe(`${base}${encodeKey(key)}?x-id=PutObject`);
    expect(lean).toBe(await sdkUrl(config, bucket, key));
    expect(route!.signingRegion).toBe(config.region);
  });

  it.each([
    ['an S3 Express directory bucket (session auth)', 'mybucket--use1-az4--x-s3'],
    ['a multi-region access point (SigV4a)', 'arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap'],
  ])('leaves %s to the SDK', async (_name, bucket) => {
    const client = new S3Client({ region: 'us-east-1' });
    expect(await resolveRoute(client, bucket)).toBeNull();
    client.destroy();
  });
});
