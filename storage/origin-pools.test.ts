// The HTTP client's pools against many real origins on 127.0.0.1: one keep-alive socket
// per origin visited must not stay open for each of thousands of hosts.
import { type Server, createServer } from 'node:http';
import { type AddressInfo, type Socket, createServer as createNetServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpClient } from './http.js';
import { MAX_IDLE_ORIGINS, MAX_RESENDS } from './origin-pools.js';

const ORIGINS = MAX_IDLE_ORIGINS + 6;
type Origin = { url: string; connections: number; server: Server };
const origins: Origin[] = [];

beforeAll(async () => {
  for (let i = 0; i < ORIGINS; i++) {
    const server = createServer((_req, res) => res.end('x'));
    server.keepAliveTimeout = 60_000; // the client, not the server, decides when an idle socket goes
    const o: Origin = { url: '', connections: 0, server };
    server.on('connection', () => o.connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    o.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    origins.push(o);
  }
});

afterAll(async () => {
  for (const o of origins) o.server.closeAllConnections();
  await Promise.all(origins.map((o) => new Promise((resolve) => o.server.close(resolve))));
});

async function getText(client: ReturnType<typeof createHttpClient>, url: string): Promise<string> {
  const res = await client.get(url, { wholeUpTo: 1024 });
  if (res.body.kind !== 'whole') throw new Error(`unexpected body ${res.body.kind}`);
  const w = await res.body.read;
  if (!w.ok) throw w.error;
  // undici frees the socket for its next request just after the response's end: a request
  // sent in the same tick would open another connection, whatever the pools keep.
  await new Promise((resolve) => setImmediate(resolve));
  return w.bytes.toString();
}

describe('origin pools', () => {
  it(`keeps at most ${MAX_IDLE_ORIGINS} idle origins: the least recently used one's socket is closed`, async () => {
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    try {
      for (const o of origins) expect(await getText(client, o.url)).toBe('x');
      expect(origins.map((o) => o.connections)).toEqual(origins.map(() => 1));
      // The newest origin's socket is reused; the oldest's was closed, so it connects again.
      expect(await getText(client, origins[ORIGINS - 1]!.url)).toBe('x');
      expect(origins[ORIGINS - 1]!.connections).toBe(1);
      expect(await getText(client, origins[0]!.url)).toBe('x');
      expect(origins[0]!.connections).toBe(2);
    } finally {
      await client.close();
    }
  });

  it('never closes an origin with a request in flight, and keeps it once that ends', async () => {
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let connections = 0;
    const slow = createServer((_req, res) => void held.then(() => res.end('slow')));
    slow.on('connection', () => connections++);
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/`;
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    try {
      const pending = getText(client, url);
      for (const o of origins) expect(await getText(client, o.url)).toBe('x');
      release();
      expect(await pending).toBe('slow');
      expect(await getText(client, url)).toBe('slow');
      expect(connections).toBe(1);
    } finally {
      await client.close();
      slow.closeAllConnections();
      await new Promise((resolve) => slow.close(resolve));
    }
  });
});

/**
 * A raw origin whose sockets answer their first `answered` requests (keep-alive, with
 * Content-Length) and then `close` on the next one without a byte of answer.
 */
async function closingOrigin(answered: number, close: (s: Socket) => void) {
  const seen = { requests: 0, connections: 0 };
  const server = createNetServer((sock) => {
    seen.connections++;
    let served = 0;
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        buf = buf.slice(end + 4);
        seen.requests++;
        if (served++ < answered) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
        else close(sock);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return { url, seen, stop: () => new Promise((resolve) => server.close(resolve)) };
}

describe('a kept-alive connection the server closed as a request went out', () => {
  it.each<[string, (s: Socket) => void]>([
    ['closes it (FIN)', (s) => s.end()],
    ['destroys it', (s) => s.destroy()],
    ['resets it (RST)', (s) => s.resetAndDestroy()],
  ])('the request is sent again on a new connection when the server %s, not failed', async (_name, close) => {
    const origin = await closingOrigin(1, close);
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    try {
      for (let i = 0; i < 4; i++) expect(await getText(client, origin.url)).toBe('x');
      // Each connection answered one request and died under the next, which went again.
      expect(origin.seen).toEqual({ requests: 7, connections: 4 });
    } finally {
      await client.close();
      await origin.stop();
    }
  });

  // A fresh connection that fails carried no response before: the failure is the caller's.
  it.each([
    ['closed before any answer', (s: Socket) => s.destroy()],
    ['answered with a 100 Continue undici did not ask for, on an open connection', (s: Socket) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx')],
    ['cut short in its head', (s: Socket) => s.end('HTTP/1.1 200 OK\r\nContent-Le')],
  ] as const)('a new connection %s is not sent again', async (_, answer) => {
    const origin = await closingOrigin(0, answer);
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    try {
      await expect(getText(client, origin.url)).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
      expect(origin.seen).toEqual({ requests: 1, connections: 1 });
    } finally {
      await client.close();
      await origin.stop();
    }
  });

  it(`many kept-alive connections closed at once: requests in flight together still all succeed (at most ${MAX_RESENDS} re-sends each)`, async () => {
    const origin = await closingOrigin(1, (s) => s.end());
    const client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none' });
    try {
      for (let round = 0; round < 4; round++) {
        const texts = await Promise.all(Array.from({ length: 32 }, () => getText(client, origin.url)));
        expect(texts.every((t) => t === 'x')).toBe(true);
      }
    } finally {
      await client.close();
      await origin.stop();
    }
  });
});
