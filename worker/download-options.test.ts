import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWorkerFlags } from '../protocol/index.js';
import { sourceStores } from './download-options.js';

// A GCS endpoint that is down: it accepts each connection and resets it at once, and counts.
describe('object-store sources whose endpoint fails to open', () => {
  let server: Server;
  let connections = 0;
  let endpoint = '';
  beforeAll(async () => {
    server = createServer((socket) => {
      connections++;
      socket.resetAndDestroy();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('are opened again on the next use, and closing the others does not throw', async () => {
    const sources = sourceStores(parseWorkerFlags({ 'gcs-endpoint': endpoint, timeout: '5000' }));
    const place = { scheme: 'gs', bucket: 'src', prefix: '' } as const;
    await expect(sources.get(place)).rejects.toMatchObject({ code: 'TRANSIENT' });
    const afterFirst = connections;
    expect(afterFirst).toBeGreaterThan(0);
    await expect(sources.get(place)).rejects.toMatchObject({ code: 'TRANSIENT' });
    expect(connections).toBeGreaterThan(afterFirst);
    await expect(sources.close()).resolves.toBeUndefined();
  });
});

// An S3 endpoint that answers every request NoSuchBucket, keeping connections alive, and
// counts the connections made to it.
describe('s3:// sources over many buckets', () => {
  let server: HttpServer;
  let connections = 0;
  let endpoint = '';
  beforeAll(async () => {
    server = createHttpServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/xml' }).end('<?xml version="1.0"?><Error><Code>NoSuchBucket</Code><Message>none</Message></Error>');
    });
    server.on('connection', () => connections++);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('share one socket pool: a pool per bucket held a socket for each until the worker ended', async () => {
    const sources = sourceStores(parseWorkerFlags({ 's3-endpoint': endpoint, 's3-path-style': true, 's3-no-sign-request': true }));
    for (let i = 0; i < 40; i++) {
      const store = await sources.get({ scheme: 's3', bucket: `bucket-${i}`, prefix: '' });
      await expect(store.read('k.png')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    }
    // One after another, so one kept-alive connection serves them all.
    expect(connections).toBe(1);
    await sources.close();
  });
});
