import { once } from 'node:events';
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
