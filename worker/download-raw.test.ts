/**
 * download() against responses written byte for byte (node:net on 127.0.0.1): the HTTP a
 * real origin sends that a well-behaved test server never would.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpClient, type HttpClient } from '../storage/http.js';
import { download, type DownloadResult } from './download.js';

const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201a3b1e1d40000000049454e44ae426082',
  'hex',
);

/** Routes by request path: each writes its raw response (bytes) on the socket. */
type Route = (sock: Socket, target: string) => void;
const routes = new Map<string, Route>();
const seen: string[] = [];

function head(status: string, headers: string[]): Buffer {
  return Buffer.from(`HTTP/1.1 ${status}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`, 'latin1');
}

let server: Server;
let base: string;
let client: HttpClient;

beforeAll(async () => {
  server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const target = buf.subarray(0, end).toString('latin1').split(' ')[1] ?? '';
        buf = buf.subarray(end + 4);
        seen.push(target);
        const route = routes.get(target.split('?')[0]!);
        if (route) route(sock, target);
        else sock.write(head('404 Not Found', ['Content-Length: 0']));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  client = createHttpClient({ allowPrivateNetwork: true, timeoutMs: 2000, proxy: 'none' });
});

afterAll(async () => {
  await client.close();
  await new Promise((resolve) => server.close(resolve));
});

const get = (path: string): Promise<DownloadResult> => download(`${base}${path}`, { client, retries: 1, backoffBaseMs: 1 });

function bytesOf(r: DownloadResult): Buffer {
  if (!r.ok || r.kind !== 'buffer') throw new Error(`not a buffered body: ${JSON.stringify(r)}`);
  return r.body;
}

describe('redirects', () => {
  it('reads a Location sent as raw UTF-8 bytes as UTF-8, as browsers and curl do', async () => {
    routes.set('/r/utf8', (sock) =>
      sock.write(Buffer.concat([head('302 Found', ['Content-Length: 0']).subarray(0, -2), Buffer.from('Location: /img/ümlaut é.png\r\n\r\n', 'utf8')])),
    );
    routes.set('/img/%C3%BCmlaut%20%C3%A9.png', (sock) => sock.write(Buffer.concat([head('200 OK', [`Content-Length: ${PNG.length}`]), PNG])));
    const r = await get('/r/utf8');
    expect(bytesOf(r)).toEqual(PNG);
    expect(seen).toContain('/img/%C3%BCmlaut%20%C3%A9.png');
  });

  it('keeps a Location that is not UTF-8 as latin1 characters', async () => {
    routes.set('/r/latin1', (sock) =>
      sock.write(Buffer.concat([head('302 Found', ['Content-Length: 0']).subarray(0, -2), Buffer.from('Location: /img/caf\xe9.png\r\n\r\n', 'latin1')])),
    );
    routes.set('/img/caf%C3%A9.png', (sock) => sock.write(Buffer.concat([head('200 OK', [`Content-Length: ${PNG.length}`]), PNG])));
    expect(bytesOf(await get('/r/latin1'))).toEqual(PNG);
  });
});

describe('redirects that lead nowhere ferry goes', () => {
  it.each([
    ['http://[::1', 'BAD_URL', 'not a URL: http://[::1'],
    ['s3://bucket/key.png', 'UNSUPPORTED_SCHEME', 'scheme s3: not fetched over HTTP: s3://bucket/key.png'],
    ['data:image/png;base64,AAAA', 'UNSUPPORTED_SCHEME', 'scheme data: not fetched over HTTP'],
  ])('Location %s is %s, and the detail says a redirect led there (the manifest URL was fine)', async (location, reason, message) => {
    const path = `/r/to/${encodeURIComponent(location)}`;
    routes.set(path, (sock) => sock.write(head('302 Found', [`Location: ${location}`, 'Content-Length: 0'])));
    const r = await get(`${path}?token=s3cret`);
    expect(r).toMatchObject({ ok: false, reason, attempts: 1 });
    expect(!r.ok && r.detail).toContain(`redirect from ${base}${path}?token=`);
    expect(!r.ok && r.detail).toContain(message);
    expect(!r.ok && r.detail).not.toContain('s3cret');
  });
});

describe('status codes a GET without Range or conditions should not get', () => {
  const partial = (range: string, body: Buffer): Route => (sock) =>
    sock.write(Buffer.concat([head('206 Partial Content', ['Content-Type: image/png', `Content-Range: ${range}`, `Content-Length: ${body.length}`]), body]));

  it('a 206 that is a part of the object is SHORT_BODY (retried), never the object', async () => {
    routes.set('/206/head', partial(`bytes 0-19/${PNG.length}`, PNG.subarray(0, 20)));
    routes.set('/206/tail', partial(`bytes 20-${PNG.length - 1}/${PNG.length}`, PNG.subarray(20)));
    routes.set('/206/unknown', partial('bytes 0-19/*', PNG.subarray(0, 20)));
    for (const path of ['/206/head', '/206/tail', '/206/unknown']) {
      const r = await get(path);
      expect(r).toMatchObject({ ok: false, reason: 'SHORT_BODY', attempts: 2 });
      expect(!r.ok && r.detail).toMatch(/^HTTP 206 Partial Content to a GET without Range: Content-Range bytes .*, not the whole object$/);
    }
  });

  it('a 206 whose Content-Range is the whole object is the object', async () => {
    routes.set('/206/all', partial(`bytes 0-${PNG.length - 1}/${PNG.length}`, PNG));
    expect(bytesOf(await get('/206/all'))).toEqual(PNG);
  });
});

describe('interim (1xx) responses', () => {
  const hint = head('103 Early Hints', ['Link: </style.css>; rel=preload']);

  it('103 Early Hints before the final response are passed over', async () => {
    routes.set('/1xx/hints', (sock) => sock.write(Buffer.concat([hint, hint, head('200 OK', [`Content-Length: ${PNG.length}`]), PNG])));
    expect(bytesOf(await get('/1xx/hints'))).toEqual(PNG);
  });

  it('an origin that sends interim responses forever is cut by the timeout (TIMEOUT), not waited on for ever', async () => {
    routes.set('/1xx/endless', (sock) => {
      const t = setInterval(() => sock.write(hint), 200);
      sock.on('close', () => clearInterval(t));
    });
    const r = await get('/1xx/endless');
    expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 2 });
    expect(!r.ok && r.detail).toMatch(/^UND_ERR_HEADERS_TIMEOUT: no final response 2000 ms after an interim \(1xx\) one/);
  }, 30_000);
});

describe('framing headers that do not parse', () => {
  it.each([
    ['two Content-Length', [`Content-Length: ${PNG.length}`, `Content-Length: ${PNG.length}`]],
    ['a Content-Length list', [`Content-Length: ${PNG.length}, ${PNG.length}`]],
    ['Content-Length beside chunked', [`Content-Length: ${PNG.length}`, 'Transfer-Encoding: chunked']],
  ])('%s is a malformed response (RESET, retried), not a SHORT_BODY that never had a body', async (name, headers) => {
    const path = `/framing/${encodeURIComponent(name)}`;
    routes.set(path, (sock) => sock.write(Buffer.concat([head('200 OK', ['Content-Type: image/png', ...headers]), PNG])));
    const r = await get(path);
    expect(r).toMatchObject({ ok: false, reason: 'RESET', attempts: 2 });
    expect(!r.ok && r.detail).toMatch(/^HPE_UNEXPECTED_CONTENT_LENGTH: a response head whose framing does not parse/);
  });
});

describe('Content-Encoding sent though ferry asked for identity', () => {
  const coded = (encoding: string, body: Buffer, extra: string[] = []): Route => (sock) =>
    sock.write(Buffer.concat([head('200 OK', ['Content-Type: image/png', `Content-Encoding: ${encoding}`, `Content-Length: ${body.length}`, ...extra]), body]));

  it.each([
    ['gzip', gzipSync(PNG)],
    ['x-gzip', gzipSync(PNG)],
    ['deflate', deflateSync(PNG)],
    ['br', brotliCompressSync(PNG)],
    ['gzip, br', brotliCompressSync(gzipSync(PNG))],
  ])('a body coded %s is decoded: the object, not its compressed form', async (encoding, body) => {
    const path = `/coded/${encodeURIComponent(encoding)}`;
    routes.set(path, coded(encoding, body));
    expect(bytesOf(await get(path))).toEqual(PNG);
  });

  it('a deflate body sent bare (no zlib header, as IIS does) is decoded, as browsers and curl do', async () => {
    routes.set('/coded/deflate-raw', coded('deflate', deflateRawSync(PNG)));
    expect(bytesOf(await get('/coded/deflate-raw'))).toEqual(PNG);
  });

  it('a body of no bytes is empty whatever its coding (EMPTY, not a broken gzip stream)', async () => {
    routes.set('/coded/empty-200', coded('gzip', Buffer.alloc(0)));
    routes.set('/coded/empty-204', (sock) => sock.write(head('204 No Content', ['Content-Encoding: gzip'])));
    routes.set('/coded/empty-chunked', (sock) => sock.write(Buffer.concat([head('200 OK', ['Content-Encoding: br', 'Transfer-Encoding: chunked']), Buffer.from('0\r\n\r\n')])));
    for (const path of ['/coded/empty-200', '/coded/empty-204', '/coded/empty-chunked']) {
      expect(bytesOf(await get(path))).toEqual(Buffer.alloc(0));
    }
  });

  it('a chunked coded body is decoded too', async () => {
    const z = gzipSync(PNG);
    routes.set('/coded/chunked', (sock) =>
      sock.write(Buffer.concat([head('200 OK', ['Content-Encoding: gzip', 'Transfer-Encoding: chunked']), Buffer.from(`${z.length.toString(16)}\r\n`), z, Buffer.from('\r\n0\r\n\r\n')])),
    );
    expect(bytesOf(await get('/coded/chunked'))).toEqual(PNG);
  });

  it('the size ceiling counts decoded bytes: a gzip bomb is TOO_LARGE', async () => {
    routes.set('/coded/bomb', coded('gzip', gzipSync(Buffer.alloc(8 * 2 ** 20))));
    const r = await download(`${base}/coded/bomb`, { client, retries: 1, maxBytes: 2 ** 20 });
    expect(r).toMatchObject({ ok: false, reason: 'TOO_LARGE', attempts: 1 });
  });

  it('a coded body that does not decode is RESET, retried, naming the coding', async () => {
    routes.set('/coded/broken', coded('gzip', gzipSync(PNG).subarray(0, 40)));
    const r = await get('/coded/broken');
    expect(r).toMatchObject({ ok: false, reason: 'RESET', attempts: 2 });
    expect(!r.ok && r.detail).toMatch(/^FERRY_BAD_ENCODING: Content-Encoding gzip: /);
  });

  it('keeps a gzip file labelled as one, and bytes under a coding Node cannot remove', async () => {
    const gz = gzipSync(PNG);
    routes.set('/coded/gzfile', (sock) =>
      sock.write(Buffer.concat([head('200 OK', ['Content-Type: application/gzip', 'Content-Encoding: gzip', `Content-Length: ${gz.length}`]), gz])),
    );
    routes.set('/coded/unknown', coded('utf-8', PNG));
    expect(bytesOf(await get('/coded/gzfile'))).toEqual(gz);
    expect(bytesOf(await get('/coded/unknown'))).toEqual(PNG);
  });
});

describe('response headers', () => {
  const withHeaders = (headers: string[]): Route => (sock) =>
    sock.write(Buffer.concat([head('200 OK', ['Content-Type: image/png', `Content-Length: ${PNG.length}`, ...headers]), PNG]));

  it('takes headers past Node\'s 16 KiB, as curl and browsers do: many cookies, one long header', async () => {
    routes.set('/headers/cookies', withHeaders(Array.from({ length: 500 }, (_, i) => `Set-Cookie: c${i}=${'v'.repeat(50)}; Path=/`)));
    routes.set('/headers/long', withHeaders([`X-Trace: ${'a'.repeat(100 * 1024)}`]));
    expect(bytesOf(await get('/headers/cookies'))).toEqual(PNG);
    expect(bytesOf(await get('/headers/long'))).toEqual(PNG);
  });

  it('refuses headers past 256 KiB (RESET, not retried), bounding what one response holds', async () => {
    routes.set('/headers/endless', withHeaders(Array.from({ length: 40 }, (_, i) => `X-Pad-${i}: ${'p'.repeat(8 * 1024)}`)));
    const r = await get('/headers/endless');
    expect(r).toMatchObject({ ok: false, reason: 'RESET', attempts: 1 });
    expect(!r.ok && r.detail).toMatch(/^UND_ERR_HEADERS_OVERFLOW/);
  });
});
