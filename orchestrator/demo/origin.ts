/**
 * The demo's local origin: generated images, good and deliberately bad, served on
 * 127.0.0.1 with the failure modes a real migration meets (lying extensions and
 * content-types, truncation, HTML error pages, flaky and dead paths).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';

type Route = { status: number; type: string; body: Buffer; failFirst?: number };

async function image(format: 'jpeg' | 'png' | 'webp' | 'gif', w: number, h: number, hue: number): Promise<Buffer> {
  const img = sharp({ create: { width: w, height: h, channels: 3, background: { r: (hue * 53) % 256, g: (hue * 97) % 256, b: (hue * 31) % 256 } } });
  return img.toFormat(format).toBuffer();
}

export type DemoOrigin = { url: string; close(): Promise<void>; requests: () => number };

export async function startDemoOrigin(): Promise<DemoOrigin> {
  const routes = new Map<string, Route>();
  const formats = ['jpeg', 'png', 'webp', 'gif'] as const;
  for (let i = 0; i < 48; i++) {
    const f = formats[i % 4]!;
    routes.set(`/img/${i}.${f === 'jpeg' ? 'jpg' : f}`, { status: 200, type: `image/${f}`, body: await image(f, 64 + i, 48 + i, i) });
  }
  const png = await image('png', 80, 60, 7);
  const jpg = await image('jpeg', 120, 90, 9);
  // A PNG behind a .jpg name and a text/plain header: stored as .png, image/png.
  routes.set('/lying/photo.jpg', { status: 200, type: 'text/plain', body: png });
  routes.set('/bad/truncated.jpg', { status: 200, type: 'image/jpeg', body: jpg.subarray(0, Math.floor(jpg.length / 2)) });
  routes.set('/bad/error-page.jpg', { status: 200, type: 'image/jpeg', body: Buffer.from('<!doctype html><html><body>Sorry, this image is gone</body></html>') });
  routes.set('/bad/tiny.png', { status: 200, type: 'image/png', body: await image('png', 8, 8, 3) });
  routes.set('/bad/empty.jpg', { status: 200, type: 'image/jpeg', body: Buffer.alloc(0) });
  routes.set('/flaky/once.webp', { status: 200, type: 'image/webp', body: await image('webp', 100, 100, 5), failFirst: 1 });
  // Down for the whole compile (3 tries with --retries 2), back for the replay.
  routes.set('/down/then-back.jpg', { status: 200, type: 'image/jpeg', body: await image('jpeg', 90, 90, 11), failFirst: 3 });
  let requests = 0;
  const served = new Map<string, number>();
  const server = http.createServer((req, res) => {
    requests++;
    const path = (req.url ?? '/').split('?')[0]!;
    const route = routes.get(path);
    const n = (served.get(path) ?? 0) + 1;
    served.set(path, n);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (route.failFirst && n <= route.failFirst) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '0' }).end('busy');
      return;
    }
    res.writeHead(route.status, { 'content-type': route.type, 'content-length': route.body.length }).end(route.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
