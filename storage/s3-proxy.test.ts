/**
 * S3 through HTTP_PROXY / HTTPS_PROXY (s3-proxy.ts): fauxqs on 127.0.0.1 behind a CONNECT
 * proxy on 127.0.0.1 that counts the tunnels it opens and carries them to their target.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fauxqsOptions, startS3Server, stopS3Server, useFakeAwsCredentials } from '../test/helpers/backend-s3.js';
import type { ServerProcess } from '../test/helpers/server.js';
import { createS3Client, openS3Store } from './s3.js';
import { connectTunnel, envProxyRoute, s3Agents } from './s3-proxy.js';

const BUCKET = 'ferry-proxy';
const MiB = 2 ** 20;
const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'];

let s3: ServerProcess;
let restoreCredentials: () => void;
let proxy: Server;
/** CONNECT targets the proxy was asked for, in order. */
const tunnels: string[] = [];
/** The proxy's answer to CONNECT: 200 carries the tunnel, anything else refuses it. */
let answer = 200;
const saved = Object.fromEntries(PROXY_VARS.map((v) => [v, process.env[v]]));

beforeAll(async () => {
  restoreCredentials = useFakeAwsCredentials();
  s3 = await startS3Server();
  const admin = createS3Client(fauxqsOptions(s3.port));
  await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
  admin.destroy();
  proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req, client: net.Socket) => {
    tunnels.push(String(req.url));
    if (answer !== 200) return void client.end(`HTTP/1.1 ${answer} Refused\r\n\r\n`);
    const [host, port] = [String(req.url).replace(/:\d+$/, '').replace(/^\[|\]$/g, ''), Number(/:(\d+)$/.exec(String(req.url))?.[1])];
    if (host !== '127.0.0.1') return void client.end('HTTP/1.1 403 Loopback only\r\n\r\n'); // never a request off this machine
    const upstream = net.connect({ host, port }, () => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
}, 60_000);

afterAll(async () => {
  proxy?.closeAllConnections();
  proxy?.close();
  if (s3) await stopS3Server(s3.child);
  restoreCredentials?.();
});

afterEach(() => {
  answer = 200;
  for (const v of PROXY_VARS) {
    if (saved[v] === undefined) delete process.env[v];
    else process.env[v] = saved[v];
  }
});

const proxyUrl = () => `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;

function useProxy(vars: Record<string, string>): void {
  for (const v of PROXY_VARS) delete process.env[v];
  Object.assign(process.env, vars);
}

const opts = (size?: number) => ({ contentType: 'application/octet-stream', metadata: {}, ifAbsent: false, ...(size === undefined ? {} : { size }) });

describe('an S3 store under HTTP_PROXY', () => {
  it('sends its PUTs (one request, and multipart through the SDK), stats and reads through the proxy', async () => {
    useProxy({ HTTP_PROXY: proxyUrl() });
    const before = tunnels.length;
    const store = await openS3Store(BUCKET, `p-${randomBytes(3).toString('hex')}/`, fauxqsOptions(s3.port, { conditionalWrites: 'off' }));
    try {
      const small = randomBytes(2048);
      await store.put('a/small.bin', small, opts());
      const big = randomBytes(7 * MiB);
      await store.put('a/big.bin', Readable.from([big.subarray(0, 3 * MiB), big.subarray(3 * MiB)]), opts(big.length));
      expect((await store.stat('a/small.bin'))?.size).toBe(small.length);
      expect((await store.stat('a/big.bin'))?.size).toBe(big.length);
    } finally {
      await store.close();
    }
    const ours = tunnels.slice(before);
    expect(ours.length).toBeGreaterThanOrEqual(2); // the lean PUT's own connection and the SDK's
    expect(new Set(ours)).toEqual(new Set([`127.0.0.1:${s3.port}`]));
  });

  it('goes direct to an endpoint NO_PROXY names', async () => {
    useProxy({ HTTP_PROXY: proxyUrl(), NO_PROXY: '127.0.0.0/8' });
    const before = tunnels.length;
    const store = await openS3Store(BUCKET, `p-${randomBytes(3).toString('hex')}/`, fauxqsOptions(s3.port, { conditionalWrites: 'off' }));
    try {
      const body = randomBytes(100);
      await store.put('direct.bin', body, opts());
      expect((await store.stat('direct.bin'))?.size).toBe(100);
    } finally {
      await store.close();
    }
    expect(tunnels.length).toBe(before);
  });

  it('fails a request the proxy refuses, naming the proxy and its answer', async () => {
    useProxy({ HTTP_PROXY: proxyUrl() });
    answer = 403;
    const store = await openS3Store(BUCKET, `p-${randomBytes(3).toString('hex')}/`, fauxqsOptions(s3.port, { conditionalWrites: 'off', maxAttempts: 1 }));
    try {
      const body = randomBytes(100);
      // The lean PUT's tunnel (undici's) is refused first.
      await expect(store.put('refused.bin', body, opts())).rejects.toThrow(/: the proxy refused the tunnel \(HTTP 403\)$/);
      // The SDK's own requests (here a HEAD) through ferry's tunnel: the proxy and its answer named.
      await expect(store.stat('refused.bin')).rejects.toThrow(/: proxy 127\.0\.0\.1:\d+ refused CONNECT 127\.0\.0\.1:\d+: HTTP\/1\.1 403 Refused$/);
    } finally {
      await store.close();
    }
  });
});

describe('the proxy route and tunnel', () => {
  it('takes HTTPS_PROXY for https, HTTP_PROXY for http (and for https when alone), and honours NO_PROXY', () => {
    const route = envProxyRoute({ httpProxy: 'http://p:1', httpsProxy: 'http://s:2', noProxy: 'minio.internal,10.0.0.0/8' })!;
    expect(route(new URL('https://s3.amazonaws.com/'))).toBe('http://s:2');
    expect(route(new URL('http://store.example:9000/'))).toBe('http://p:1');
    expect(route(new URL('http://minio.internal:9000/'))).toBeNull();
    expect(route(new URL('https://10.1.2.3/'))).toBeNull();
    expect(envProxyRoute({ httpProxy: 'http://p:1' })!(new URL('https://s3.amazonaws.com/'))).toBe('http://p:1');
    expect(envProxyRoute(null)).toBeNull();
  });

  it('carries TLS through the tunnel to an https endpoint, its certificate checked against the endpoint\'s name', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-proxy-tls-'));
    const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end('over TLS')).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { httpsAgent } = s3Agents({ keepAlive: true }, 5000, envProxyRoute({ httpsProxy: proxyUrl() }));
    const before = tunnels.length;
    try {
      const port = (server.address() as net.AddressInfo).port;
      const get = () =>
        new Promise<string>((resolve, reject) => {
          https.get({ host: '127.0.0.1', port, path: '/', agent: httpsAgent, ca: readFileSync(cert) }, (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d));
            res.on('end', () => resolve(text));
          }).on('error', reject);
        });
      expect(await get()).toBe('over TLS');
      expect(await get()).toBe('over TLS'); // kept alive: the same tunnel
      expect(tunnels.slice(before)).toEqual([`127.0.0.1:${port}`]);
    } finally {
      httpsAgent.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a proxy scheme it cannot speak, and times out a proxy that never answers', async () => {
    const tunnel = (uri: string, timeoutMs = 5000) => new Promise<Error | null>((resolve) => connectTunnel(uri, '127.0.0.1', 1, timeoutMs, (err, socket) => (socket?.destroy(), resolve(err))));
    expect((await tunnel('socks5://127.0.0.1:1'))?.message).toMatch(/socks5:\/\/ proxy cannot carry S3 requests/);
    const mute = net.createServer(() => {}); // accepts, never answers
    mute.listen(0, '127.0.0.1');
    await once(mute, 'listening');
    try {
      const err = await tunnel(`http://127.0.0.1:${(mute.address() as net.AddressInfo).port}`, 300);
      expect(err).toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      mute.close();
    }
  });
});
