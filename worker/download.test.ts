import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../storage/adapter.js';
import { createHttpClient, type HttpClient, type HttpClientOptions } from '../storage/http.js';
import {
  backoffMs,
  classifyError,
  download,
  parseRetryAfter,
  reasonForStatus,
  type AttemptOutcome,
  type DownloadOptions,
} from './download.js';
import { retryWaitMs } from './backoff.js';
import { FairSlots } from './limit.js';

const ORIGIN = fileURLToPath(new URL('../test/servers/fault-origin.mjs', import.meta.url));
const PNG_MAGIC = Buffer.from('89504e470d0a1a0a', 'hex');

type Origin = { proc: ChildProcess; port: number; base: string };

async function startOrigin(): Promise<Origin> {
  const proc = spawn(process.execPath, [ORIGIN], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of proc.stdout as AsyncIterable<Buffer>) {
    out += chunk.toString();
    const m = /PORT (\d+)/.exec(out);
    if (m) return { proc, port: Number(m[1]), base: `http://127.0.0.1:${m[1]}` };
  }
  throw new Error('origin exited before listening');
}

let origin: Origin;
const clients: HttpClient[] = [];
let seq = 0;
/** A path key no other test uses, so per-path counts are this test's alone. */
const key = (name: string) => `${name}-${++seq}`;

function client(extra: HttpClientOptions = {}): HttpClient {
  const c = createHttpClient({
    allowPrivateNetwork: true,
    timeoutMs: 500,
    minRate: 1024,
    minRateWindowMs: 1000,
    proxy: 'none',
    ...extra,
  });
  clients.push(c);
  return c;
}

async function stats(): Promise<Record<string, number>> {
  const res = await fetch(`${origin.base}/__stats`);
  return (await res.json()) as Record<string, number>;
}

async function hits(path: string): Promise<number> {
  return (await stats())[path] ?? 0;
}

let fast: HttpClient;
const opts = (extra: Partial<DownloadOptions> = {}): DownloadOptions => ({
  client: fast,
  retries: 2,
  backoffBaseMs: 5,
  ...extra,
});

beforeAll(async () => {
  origin = await startOrigin();
  fast = client();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  origin.proc.stdin?.end();
  origin.proc.kill('SIGTERM');
});

describe('download against a fault origin (separate process, loopback)', () => {
  it('fetches bytes, content type and ETag in one attempt', async () => {
    const path = `/ok/${key('ok')}`;
    const r = await download(origin.base + path, opts());
    expect(r).toMatchObject({ ok: true, attempts: 1, contentType: 'image/png', etag: '"png-1"' });
    if (r.ok && r.kind === 'buffer') expect(r.body.subarray(0, 8)).toEqual(PNG_MAGIC);
    expect(await hits(path)).toBe(1);
  });

  it('returns a payload served with a wrong content type as is (gates decide later)', async () => {
    const r = await download(`${origin.base}/type/${key('type')}`, opts());
    expect(r).toMatchObject({ ok: true, attempts: 1, contentType: 'text/html' });
  });

  it.each([
    [404, 'NOT_FOUND'],
    [410, 'NOT_FOUND'],
    [401, 'FORBIDDEN'],
    [403, 'FORBIDDEN'],
    [400, 'HTTP_4XX'],
    [418, 'HTTP_4XX'],
  ])('HTTP %i is %s, never retried', async (status, reason) => {
    const path = `/status/${status}/${key('st')}`;
    const r = await download(origin.base + path, opts({ retries: 3 }));
    expect(r).toMatchObject({ ok: false, reason, attempts: 1, invalid: false, detail: `HTTP ${status}` });
    expect(await hits(path)).toBe(1);
  });

  it('retries 500 until it succeeds, reporting each attempt', async () => {
    const path = `/flaky/${key('flaky')}`;
    const seen: Array<[string, AttemptOutcome]> = [];
    const r = await download(`${origin.base}${path}?fail=2`, opts({ retries: 3, onAttempt: (h, o) => seen.push([h, o]) }));
    expect(r).toMatchObject({ ok: true, attempts: 3 });
    expect(await hits(path)).toBe(3);
    expect(seen.map(([h, o]) => [h, o.attempt, o.status, o.reason])).toEqual([
      [`127.0.0.1:${origin.port}`, 1, 500, 'HTTP_5XX'],
      [`127.0.0.1:${origin.port}`, 2, 500, 'HTTP_5XX'],
      [`127.0.0.1:${origin.port}`, 3, 200, null],
    ]);
  });

  it('an onAttempt hook that throws changes nothing', async () => {
    const hook = () => {
      throw new Error('observer bug');
    };
    const r = await download(`${origin.base}/flaky/${key('hook')}?fail=1`, opts({ onAttempt: hook }));
    expect(r).toMatchObject({ ok: true, attempts: 2 });
  });

  it('stops after 1 + retries on an always-503 origin', async () => {
    const path = `/status/503/${key('s503')}`;
    const r = await download(origin.base + path, opts({ retries: 3 }));
    expect(r).toMatchObject({ ok: false, reason: 'HTTP_5XX', attempts: 4 });
    expect(await hits(path)).toBe(4);
  });

  it('honours Retry-After on 429 and then succeeds', async () => {
    const path = `/throttle/${key('thr')}`;
    const t0 = Date.now();
    const r = await download(`${origin.base}${path}?after=1&fail=1`, opts({ retries: 2 }));
    expect(r).toMatchObject({ ok: true, attempts: 2 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(await hits(path)).toBe(2);
  });

  it('tasks refused together with the same Retry-After do not all come back together', async () => {
    // Twelve tasks throttled at once, each told Retry-After: 1. Each second try is reported
    // as it ends; a wait of exactly 1 s would bring them back within a few ms of each other.
    const back: number[] = [];
    const onAttempt = (_host: string, o: AttemptOutcome) => {
      if (o.attempt === 2) back.push(Date.now());
    };
    const paths = Array.from({ length: 12 }, () => `/throttle/${key('herd')}`);
    const rs = await Promise.all(paths.map((p) => download(`${origin.base}${p}?after=1&fail=1`, opts({ retries: 1, backoffBaseMs: 1000, onAttempt }))));
    expect(rs.every((r) => r.ok && r.attempts === 2)).toBe(true);
    for (const p of paths) expect(await hits(p)).toBe(2);
    expect(back).toHaveLength(12);
    expect(Math.max(...back) - Math.min(...back)).toBeGreaterThan(100); // ~850 ms expected
  });

  it('a try holds a request slot while it talks to its host, not through its backoff; a body keeps it until released', async () => {
    const slots = new FairSlots(1);
    const order: string[] = [];
    let firstTry = () => {};
    const refused = new Promise<void>((r) => (firstTry = r));
    const onAttempt = (_host: string, o: AttemptOutcome) => {
      if (o.attempt === 1 && o.status === 429) firstTry();
    };
    const throttled = download(`${origin.base}/throttle/${key('slot-thr')}?after=1&fail=1`, opts({ retries: 1, slots, onAttempt })).then((r) => {
      order.push('throttled');
      return r;
    });
    await refused;
    // The one slot is free while the throttled task sleeps: another task's download runs now.
    const other = await download(`${origin.base}/ok/${key('slot-ok')}`, opts({ slots }));
    order.push('other');
    expect(other).toMatchObject({ ok: true, kind: 'buffer' });
    expect(slots.inflight).toBe(1); // its body in hand
    if (other.ok) {
      other.release();
      other.release(); // once only
    }
    expect(slots.inflight).toBe(0);
    const r = await throttled;
    expect(r).toMatchObject({ ok: true, attempts: 2 });
    expect(order).toEqual(['other', 'throttled']);
    expect(slots.inflight).toBe(1);
    if (r.ok) r.release();
    expect(slots.inflight).toBe(0);
  });

  it('gives up at once as THROTTLED when Retry-After exceeds the bound', async () => {
    const path = `/throttle/${key('thr-long')}`;
    const t0 = Date.now();
    const r = await download(`${origin.base}${path}?after=120`, opts({ retries: 3 }));
    expect(r).toMatchObject({ ok: false, reason: 'THROTTLED', attempts: 1 });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await hits(path)).toBe(1);
  });

  it('gives up at once when an HTTP-date Retry-After is too far', async () => {
    const path = `/throttle/${key('thr-date')}`;
    const when = encodeURIComponent(new Date(Date.now() + 30_000).toUTCString());
    const r = await download(`${origin.base}${path}?after=${when}`, opts({ retries: 3, maxRetryAfterMs: 5000 }));
    expect(r).toMatchObject({ ok: false, reason: 'THROTTLED', attempts: 1 });
  });


  it('a 503 asking for a wait past the bound is THROTTLED on its last try too (--retries 0), as on an earlier one', async () => {
    const wait = `fail=9&status=503&retryAfter=3600`;
    const last = await download(`${origin.base}/flaky/${key('thr-last')}?${wait}`, opts({ retries: 0 }));
    const early = await download(`${origin.base}/flaky/${key('thr-early')}?${wait}`, opts({ retries: 3 }));
    for (const r of [last, early]) expect(r).toMatchObject({ ok: false, reason: 'THROTTLED', attempts: 1, detail: 'HTTP 503, Retry-After 3600 s' });
  });

  it('THROTTLED after 1 + retries of 429', async () => {
    const path = `/throttle/${key('thr-all')}`;
    const r = await download(`${origin.base}${path}?after=0`, opts({ retries: 2 }));
    expect(r).toMatchObject({ ok: false, reason: 'THROTTLED', attempts: 3 });
    expect(await hits(path)).toBe(3);
  });

  it('a body shorter than Content-Length is SHORT_BODY, retried', async () => {
    const path = `/short/${key('short')}`;
    const r = await download(origin.base + path, opts({ retries: 1 }));
    expect(r).toMatchObject({ ok: false, reason: 'SHORT_BODY', attempts: 2, invalid: false });
    expect(await hits(path)).toBe(2);
  });

  it('a reset mid-body is RESET, retried', async () => {
    const path = `/reset/${key('reset')}`;
    const r = await download(origin.base + path, opts({ retries: 1 }));
    expect(r).toMatchObject({ ok: false, reason: 'RESET', attempts: 2 });
    expect(await hits(path)).toBe(2);
  });

  it('a stalled body is cut by the idle timeout (TIMEOUT)', async () => {
    const path = `/stall/${key('stall')}`;
    const t0 = Date.now();
    const r = await download(origin.base + path, opts({ retries: 1 }));
    expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 2 });
    expect(r.ok || r.detail).toMatch(/UND_ERR_BODY_TIMEOUT: .* \(no body bytes within --timeout\)$/);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await hits(path)).toBe(2);
  });

  it('an endless trickle is cut by the minimum rate (TIMEOUT)', async () => {
    const path = `/trickle/${key('trickle')}`;
    const t0 = Date.now();
    const r = await download(origin.base + path, opts({ retries: 0 }));
    expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 1 });
    expect(r.ok || r.detail).toMatch(/FERRY_MIN_RATE/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a slow transfer that keeps moving is not cut, though it outlasts the timeout', async () => {
    const path = `/steady/${key('steady')}`;
    const t0 = Date.now();
    const r = await download(`${origin.base}${path}?chunks=8&size=4096&every=150`, opts({ retries: 0 }));
    expect(r).toMatchObject({ ok: true, attempts: 1 });
    if (r.ok && r.kind === 'buffer') expect(r.body.length).toBe(8 * 4096);
    expect(Date.now() - t0).toBeGreaterThan(1000);
  });

  // A small body with a Content-Length is read whole by the client (no stream): the same
  // cuts apply to it, and its chunks come back as one body.
  it('a small announced body is read whole across chunks, and cut by the minimum rate when too slow', async () => {
    const whole = await download(`${origin.base}/steady/${key('whole')}?chunks=8&size=4096&every=150&length=1`, opts({ retries: 0 }));
    expect(whole).toMatchObject({ ok: true, kind: 'buffer', attempts: 1 });
    if (whole.ok && whole.kind === 'buffer') expect(whole.body.equals(Buffer.alloc(8 * 4096, 7))).toBe(true);
    const t0 = Date.now();
    const slow = await download(`${origin.base}/steady/${key('whole-slow')}?chunks=200&size=1&every=50&length=1`, opts({ retries: 0 }));
    expect(slow).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 1 });
    expect(slow.ok || slow.detail).toMatch(/FERRY_MIN_RATE/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('the client reads a 2xx body whole up to wholeUpTo, after redirects; others come as streams', async () => {
    const k = key('modes');
    const whole = await fast.get(`${origin.base}/redirect/${k}?n=2&to=/ok/${k}`, { wholeUpTo: 1000 });
    expect(whole).toMatchObject({ status: 200, redirects: 3, body: { kind: 'whole' } });
    if (whole.body.kind === 'whole') expect(await whole.body.read).toMatchObject({ ok: true, bytes: expect.any(Buffer) });
    const small = await fast.get(`${origin.base}/ok/${k}`, { wholeUpTo: 10 });
    expect(small.body.kind).toBe('stream');
    if (small.body.kind === 'stream') small.body.stream.destroy();
    const notFound = await fast.get(`${origin.base}/status/404/${k}`, { wholeUpTo: 1000 });
    expect(notFound).toMatchObject({ status: 404, body: { kind: 'stream' } });
    if (notFound.body.kind === 'stream') notFound.body.stream.destroy();
  });

  it('an abort stops a body being read whole at once', async () => {
    const ctl = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ctl.abort(), 100);
    const r = await download(`${origin.base}/stall/${key('abort-whole')}`, opts({ retries: 0, client: client({ timeoutMs: 5000 }) }), ctl.signal);
    expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', detail: 'aborted' });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a slow first byte within the timeout is fine; beyond it is TIMEOUT', async () => {
    const slow = await download(`${origin.base}/stall-headers/${key('sfb')}?ms=200`, opts({ retries: 0 }));
    expect(slow).toMatchObject({ ok: true, attempts: 1 });
    const late = await download(`${origin.base}/stall-headers/${key('sfb')}?ms=1500`, opts({ retries: 0 }));
    expect(late).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 1 });
    expect(late.ok || late.detail).toMatch(/UND_ERR_HEADERS_TIMEOUT: .* \(no response headers within --timeout\)$/);
  });

  it('large bodies wait for a slot and release it: bounded buffers, no deadlock', async () => {
    let held = 0;
    let most = 0;
    const waits: (() => void)[] = [];
    const slots = {
      acquire: async () => {
        if (held >= 1) await new Promise<void>((r) => waits.push(r));
        else held++;
        most = Math.max(most, held);
      },
      release: () => {
        const next = waits.shift();
        if (next) next();
        else held--;
      },
    };
    const large = { threshold: 10_000, slots };
    // Each caller drops its body (and its slot) when done with it, as the worker's tasks do.
    const sizes = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const r = await download(`${origin.base}/big/${key('large')}?size=${50_000 + i}`, opts({ largeBodies: large }));
        if (!r.ok || r.kind !== 'buffer') return r.ok ? r.kind : r.reason;
        r.release();
        return r.body.length;
      }),
    );
    expect(sizes).toEqual([50_001, 50_002, 50_003]);
    expect(most).toBe(1);
    expect(held).toBe(0);
    const small = await download(`${origin.base}/ok/${key('small')}`, opts({ largeBodies: large }));
    expect(small.ok).toBe(true);
    expect(held).toBe(0);
  });

  it('a body waiting for a large-body slot past the min-rate window is not cut: ferry held it, the origin was not slow', async () => {
    let free = () => {};
    const gate = new Promise<void>((r) => (free = r));
    const slots = { acquire: () => gate, release: () => {} };
    const timer = setTimeout(free, 2_500); // the test client's window is 1 s
    try {
      const r = await download(`${origin.base}/big/${key('slot-wait')}?size=200000`, opts({ retries: 0, largeBodies: { threshold: 10_000, slots } }));
      expect(r).toMatchObject({ ok: true, kind: 'buffer', attempts: 1 });
      expect(r.ok && r.kind === 'buffer' && r.body.length).toBe(200_000);
    } finally {
      clearTimeout(timer);
    }
  });

  it('a response that is not HTTP is a retried RESET that names the parse error, not a bug', async () => {
    const k = key('garbage');
    const r = await download(`${origin.base}/garbage/${k}`, opts());
    expect(r).toMatchObject({ ok: false, reason: 'RESET', attempts: 3 });
    expect(!r.ok && r.detail).toMatch(/^HPE_INVALID_RESPONSE: .*HTTP\/1\.1 protocol/);
    expect(await hits(`/garbage/${k}`)).toBe(3);
  });

  it('follows a redirect chain as one attempt', async () => {
    const k = key('redir');
    const r = await download(`${origin.base}/redirect/${k}?n=3&to=/ok/${k}`, opts());
    expect(r).toMatchObject({ ok: true, attempts: 1 });
    const s = await stats();
    expect([s[`/redirect/${k}`], s[`/ok/${k}`]]).toEqual([4, 1]);
  });

  it('too many redirects is TOO_MANY_REDIRECTS after maxRedirects hops, not retried', async () => {
    const k = key('redir-many');
    const r = await download(`${origin.base}/redirect/${k}?n=50`, opts({ retries: 3 }));
    expect(r).toMatchObject({ ok: false, reason: 'TOO_MANY_REDIRECTS', attempts: 1 });
    expect(await hits(`/redirect/${k}`)).toBe(1 + 5);
  });

  it('a redirect to file:// is UNSUPPORTED_SCHEME', async () => {
    const r = await download(`${origin.base}/redirect/${key('redir-file')}?n=1&to=file:///etc/passwd`, opts());
    expect(r).toMatchObject({ ok: false, reason: 'UNSUPPORTED_SCHEME', attempts: 1 });
  });

  it('a redirect to another loopback address outside the allowed CIDR is BLOCKED_ADDRESS', async () => {
    const k = key('redir-127-0-0-2');
    const only = client({ allowPrivateNetwork: false, allowCidrs: ['127.0.0.1/32'] });
    const to = `http://127.0.0.2:${origin.port}/ok/${k}`;
    const r = await download(`${origin.base}/redirect/${k}?n=1&to=${encodeURIComponent(to)}`, opts({ client: only }));
    expect(r).toMatchObject({ ok: false, reason: 'BLOCKED_ADDRESS', attempts: 1 });
    expect(r.ok || r.detail).toMatch(/loopback address 127\.0\.0\.2/);
    expect(await hits(`/redirect/${k}`)).toBe(2);
  });

  it('refuses a Content-Length over maxBytes before reading (TOO_LARGE, invalid)', async () => {
    const t0 = Date.now();
    const r = await download(`${origin.base}/huge/${key('huge')}`, opts({ maxBytes: 1 << 20 }));
    expect(r).toMatchObject({ ok: false, reason: 'TOO_LARGE', attempts: 1, invalid: true });
    expect(Date.now() - t0).toBeLessThan(400);
  });

  it('stops reading a chunked body once it passes maxBytes (TOO_LARGE, invalid)', async () => {
    const path = `/big/${key('big')}`;
    const r = await download(`${origin.base}${path}?size=${4 << 20}`, opts({ maxBytes: 1 << 20 }));
    expect(r).toMatchObject({ ok: false, reason: 'TOO_LARGE', attempts: 1, invalid: true });
    const ok = await download(`${origin.base}/big/${key('big-ok')}?size=${1 << 20}`, opts({ maxBytes: 1 << 20 }));
    expect(ok.ok && ok.kind === 'buffer' && ok.body.length).toBe(1 << 20);
  });

  it('without allowPrivateNetwork a loopback origin sees zero requests (BLOCKED_ADDRESS)', async () => {
    const strict = client({ allowPrivateNetwork: false });
    const before = await stats();
    const paths = [`http://127.0.0.1:${origin.port}/ok/${key('blk')}`, `http://localhost:${origin.port}/ok/${key('blk')}`];
    paths.push(`http://[::ffff:127.0.0.1]:${origin.port}/ok/${key('blk')}`, `http://2130706433:${origin.port}/ok/${key('blk')}`);
    for (const url of paths) {
      const r = await download(url, opts({ client: strict, retries: 3 }));
      expect(r, url).toMatchObject({ ok: false, reason: 'BLOCKED_ADDRESS', attempts: 1 });
    }
    expect(await stats()).toEqual(before);
  });

  it('sends per-origin headers and URL userinfo as Basic auth, and redacts secrets in details', async () => {
    const withHeaders = client({
      originHeaders: new Map([
        [`127.0.0.1:${origin.port}`, [['X-Origin-Token', 'abc']]],
        ['127.0.0.1', [['X-Host-Wide', 'h'], ['X-Origin-Token', 'loses to host:port']]],
      ]),
    });
    const r = await download(`http://u:p%40ss@127.0.0.1:${origin.port}/echo-headers/${key('eh')}`, opts({ client: withHeaders }));
    expect(r.ok).toBe(true);
    const seen = r.ok && r.kind === 'buffer' ? (JSON.parse(r.body.toString()) as Record<string, string>) : {};
    expect(seen['x-origin-token']).toBe('abc');
    expect(seen['x-host-wide']).toBe('h');
    expect(seen.authorization).toBe(`Basic ${Buffer.from('u:p@ss').toString('base64')}`);
    const bad = await download(`http://user:hunter2@127.0.0.1:${origin.port}/redirect/${key('rs')}?n=9&X-Amz-Signature=s3cr3t`, opts());
    expect(bad).toMatchObject({ ok: false, reason: 'TOO_MANY_REDIRECTS' });
    expect(bad.ok || bad.detail).not.toMatch(/hunter2|s3cr3t|[\t\r\n]/);
    expect(bad.ok || bad.detail).toMatch(/\*\*\*@127\.0\.0\.1.*X-Amz-Signature=REDACTED/);
  });

  it('keeps at most connectionsPerHost connections to one origin, and reuses them', async () => {
    const capped = client({ connectionsPerHost: 2 });
    const prefix = `/stall-headers/${key('cap')}`;
    const urls = Array.from({ length: 6 }, (_, i) => `${origin.base}${prefix}-${i}?ms=100`);
    const results = await Promise.all(urls.map((u) => download(u, opts({ client: capped }))));
    expect(results.every((r) => r.ok)).toBe(true);
    const res = await fetch(`${origin.base}/__sockets?prefix=${prefix}`);
    expect(((await res.json()) as { sockets: number }).sockets).toBe(2);
  });

  it('sends an origin header only to its own host, not to a redirect target elsewhere', async () => {
    const withHeaders = client({ originHeaders: new Map([[`127.0.0.1:${origin.port}`, [['X-Origin-Token', 'abc']]]]) });
    const to = `http://localhost:${origin.port}/echo-headers/${key('eh-other')}`;
    const r = await download(`${origin.base}/redirect/${key('eh-r')}?n=1&to=${encodeURIComponent(to)}`, opts({ client: withHeaders }));
    expect(r.ok).toBe(true);
    const seen = r.ok && r.kind === 'buffer' ? (JSON.parse(r.body.toString()) as Record<string, string>) : {};
    expect(seen.host).toBe(`localhost:${origin.port}`);
    expect(seen['x-origin-token']).toBeUndefined();
  });

  it.each([
    ['not a url', 'BAD_URL'],
    ['http://', 'BAD_URL'],
    ['ftp://example.com/a.png', 'UNSUPPORTED_SCHEME'],
    ['s3://bucket/key.png', 'UNSUPPORTED_SCHEME'],
    ['file:///etc/passwd', 'UNSUPPORTED_SCHEME'],
  ])('%s is %s with 0 attempts', async (url, reason) => {
    expect(await download(url, opts())).toMatchObject({ ok: false, reason, attempts: 0 });
  });

  it('decides the kind of source after leading blanks, as the URL parser reads http URLs: a file URL is read, an s3 URL goes to its store', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-blank-url-'));
    try {
      writeFileSync(join(root, 'a.bin'), 'hello');
      const local = await download(`  ${pathToFileURL(join(root, 'a.bin')).href}`, opts({ localSourceRoot: root }));
      expect(local).toMatchObject({ ok: true, kind: 'buffer' });
      if (local.ok && local.kind === 'buffer') expect(local.body.toString()).toBe('hello');
      const asked: unknown[] = [];
      const stores = async (place: unknown) => {
        asked.push(place);
        throw new StorageError('NOT_FOUND', 'no such key');
      };
      const object = await download(' \u0001s3://bucket/dir/k.png', opts({ stores }));
      expect(object).toMatchObject({ ok: false, reason: 'NOT_FOUND' });
      expect(asked).toEqual([{ scheme: 's3', bucket: 'bucket', prefix: '' }]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a connection refused is RESET and retried', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as { port: number }).port;
    closed.close();
    const r = await download(`http://127.0.0.1:${port}/x`, opts({ retries: 1 }));
    expect(r).toMatchObject({ ok: false, reason: 'RESET', attempts: 2 });
  });

  it('an aborted download resolves (TIMEOUT, "aborted") instead of throwing', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const r = await download(`${origin.base}/stall-headers/${key('ab')}?ms=400`, opts({ retries: 3 }), ac.signal);
    expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 1 });
  });

  it('no path was requested more than 1 + retries times (retries ≤ 3 in this file)', async () => {
    const s = await stats();
    const redirectHops = Object.keys(s).filter((p) => p.startsWith('/redirect/'));
    for (const [path, n] of Object.entries(s)) {
      if (!redirectHops.includes(path)) expect(n, path).toBeLessThanOrEqual(4);
    }
  });
});

describe('through a proxy (HTTP_PROXY-style config)', () => {
  let proxy: Server;
  let tunnels = 0;
  beforeAll(async () => {
    proxy = createServer((_req, res) => res.writeHead(502).end());
    proxy.on('connect', (req, client) => {
      tunnels++;
      const [host = '', port = ''] = (req.url ?? '').split(':');
      const upstream = netConnect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.pipe(client).pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
  });
  afterAll(() => {
    proxy.closeAllConnections();
    proxy.close();
  });

  const proxyUrl = () => `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

  it('goes through the proxy, and the guard still refuses the target before the proxy is asked', async () => {
    const open = client({ proxy: { httpProxy: proxyUrl() } });
    const ok = await download(`${origin.base}/ok/${key('px')}`, opts({ client: open }));
    expect(ok).toMatchObject({ ok: true, attempts: 1 });
    expect(tunnels).toBe(1);
    const strict = client({ proxy: { httpProxy: proxyUrl() }, allowPrivateNetwork: false });
    const path = `/ok/${key('px-blocked')}`;
    const r = await download(origin.base + path, opts({ client: strict }));
    expect(r).toMatchObject({ ok: false, reason: 'BLOCKED_ADDRESS', attempts: 1 });
    expect(tunnels).toBe(1);
    expect(await hits(path)).toBe(0);
  });

  it('sends what NO_PROXY names (a CIDR, an address with its port) straight to the origin, the guard still deciding', async () => {
    const before = tunnels;
    const port = new URL(origin.base).port;
    for (const noProxy of ['127.0.0.0/8', `127.0.0.1:${port}`, 'fd00::/8, 127.0.0.1']) {
      const direct = client({ proxy: { httpProxy: proxyUrl(), noProxy } });
      expect(await download(`${origin.base}/ok/${key('px-direct')}`, opts({ client: direct })), noProxy).toMatchObject({ ok: true, attempts: 1 });
    }
    expect(tunnels).toBe(before);
    // Another port is not named: through the proxy.
    const other = client({ proxy: { httpProxy: proxyUrl(), noProxy: '127.0.0.1:1' } });
    expect(await download(`${origin.base}/ok/${key('px-other')}`, opts({ client: other }))).toMatchObject({ ok: true });
    expect(tunnels).toBe(before + 1);
    const strict = client({ proxy: { httpProxy: proxyUrl(), noProxy: '127.0.0.0/8' }, allowPrivateNetwork: false });
    const path = `/ok/${key('px-direct-blocked')}`;
    expect(await download(origin.base + path, opts({ client: strict }))).toMatchObject({ ok: false, reason: 'BLOCKED_ADDRESS', attempts: 1 });
    expect(await hits(path)).toBe(0);
  });

  it('a proxy that accepts the tunnel request and never answers is a TIMEOUT after --timeout', async () => {
    const mute = createNetServer((socket) => socket.on('error', () => {}));
    mute.listen(0, '127.0.0.1');
    await once(mute, 'listening');
    try {
      const silent = client({ proxy: { httpProxy: `http://127.0.0.1:${(mute.address() as { port: number }).port}` } }); // timeoutMs 500
      const started = Date.now();
      const r = await download(`${origin.base}/ok/${key('px-mute')}`, opts({ client: silent, retries: 1 }));
      expect(r).toMatchObject({ ok: false, reason: 'TIMEOUT', attempts: 2 });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      mute.close();
    }
  });
});

describe('pure helpers', () => {
  it.each([
    [200, null],
    [206, null],
    [404, 'NOT_FOUND'],
    [410, 'NOT_FOUND'],
    [401, 'FORBIDDEN'],
    [403, 'FORBIDDEN'],
    [429, 'THROTTLED'],
    [400, 'HTTP_4XX'],
    [451, 'HTTP_4XX'],
    [300, 'HTTP_4XX'],
    [500, 'HTTP_5XX'],
    [503, 'HTTP_5XX'],
    [599, 'HTTP_5XX'],
  ])('status %i → %s', (status, reason) => {
    expect(reasonForStatus(status)).toBe(reason);
  });

  const coded = (code: string) => Object.assign(new Error('whatever the message says'), { code });
  it.each([
    ['UND_ERR_CONNECT_TIMEOUT', 'TIMEOUT', true],
    ['UND_ERR_HEADERS_TIMEOUT', 'TIMEOUT', true],
    ['UND_ERR_BODY_TIMEOUT', 'TIMEOUT', true],
    ['FERRY_MIN_RATE', 'TIMEOUT', true],
    ['ENOTFOUND', 'DNS', true],
    ['EAI_AGAIN', 'DNS', true],
    ['ECONNRESET', 'RESET', true],
    ['ECONNREFUSED', 'RESET', true],
    ['EPIPE', 'RESET', true],
    ['UND_ERR_SOCKET', 'RESET', true],
    ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'SHORT_BODY', true],
    ['EMFILE', 'RESET', true],
    ['ENFILE', 'RESET', true],
    ['FERRY_BLOCKED_ADDRESS', 'BLOCKED_ADDRESS', false],
    ['FERRY_TOO_MANY_REDIRECTS', 'TOO_MANY_REDIRECTS', false],
    ['FERRY_UNSUPPORTED_SCHEME', 'UNSUPPORTED_SCHEME', false],
    ['FERRY_BAD_URL', 'BAD_URL', false],
    ['HPE_INVALID_CONSTANT', 'RESET', true],
    ['CERT_HAS_EXPIRED', 'RESET', false],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'RESET', false],
    ['SOMETHING_NEW', 'RESET', false],
  ])('error code %s → %s (retried: %s)', (code, reason, retriable) => {
    expect(classifyError(coded(code))).toEqual({ reason, code, retriable });
  });

  it('classifies on a cause or an AggregateError member, never on the message', () => {
    expect(classifyError(new Error('ECONNRESET timeout', { cause: coded('ENOTFOUND') })).reason).toBe('DNS');
    expect(classifyError(new AggregateError([coded('ECONNREFUSED')])).reason).toBe('RESET');
    expect(classifyError(new TypeError('ETIMEDOUT'))).toEqual({ reason: 'RESET', code: null, retriable: false });
    // A store source failing mid-body, and the AWS SDK's socket timeout: transient, retried.
    expect(classifyError(new StorageError('TRANSIENT', 'read gs://b/k: HTTP 500'))).toEqual({ reason: 'RESET', code: 'TRANSIENT', retriable: true });
    expect(classifyError(Object.assign(new Error('socket timed out after 2000 ms'), { name: 'TimeoutError' }))).toEqual({ reason: 'TIMEOUT', code: 'ETIMEDOUT', retriable: true });
    // undici 7 builds HTTPParserError without its code: a malformed response, retried.
    const parser = Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Invalid status code)'), { name: 'HTTPParserError', code: undefined });
    expect(classifyError(new TypeError('fetch failed', { cause: parser }))).toEqual({ reason: 'RESET', code: 'HPE_INVALID_RESPONSE', retriable: true });
  });

  it('a connect refused at every address of a name says so in its detail (an AggregateError has no message of its own)', async () => {
    const closed = createNetServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    // A real connect to a name with two addresses (Happy Eyeballs), both refusing.
    const twoAddresses = () =>
      new Promise<never>((_, reject) => {
        const s = netConnect({
          host: 'two.test',
          port,
          autoSelectFamily: true,
          lookup: (_h, _o, cb) => (cb as (e: null, a: { address: string; family: number }[]) => void)(null, [
            { address: '127.0.0.1', family: 4 },
            { address: '::1', family: 6 },
          ]),
        });
        s.on('error', reject);
      });
    const client = { get: twoAddresses } as unknown as HttpClient;
    const r = await download(`http://two.test:${port}/x`, { client, retries: 0 });
    expect(r).toMatchObject({ ok: false, reason: 'RESET', attempts: 1 });
    expect(r.ok || r.detail).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  });

  it.each([
    ['1', 1000],
    [' 30 ', 30_000],
    ['Thu, 01 Jan 1970 00:00:10 GMT', 5_000],
    ['Thu, 01 Jan 1970 00:00:01 GMT', 0],
    ['Thursday, 01-Jan-70 00:00:10 GMT', 5_000],
    ['Thu Jan  1 00:00:10 1970', 5_000], // asctime: GMT, whatever the machine's zone
    ['soon', null],
    [null, null],
    // Not delta-seconds nor an HTTP-date, though Date.parse reads each as a day of 2001.
    ['-5', null],
    ['+5', null],
    ['1.5', null],
    ['120, 5', null],
    ['1e3', null],
  ])('Retry-After %s → %s ms', (value, ms) => {
    expect(parseRetryAfter(value, 5_000)).toBe(ms);
  });

  it('a Retry-After is a floor under the same jitter, within the cap', () => {
    expect(retryWaitMs(1, null, 250, 60_000, () => 0.5)).toBe(125);
    expect(retryWaitMs(1, 1000, 250, 60_000, () => 0.5)).toBe(1125);
    expect(retryWaitMs(3, 0, 250, 60_000, () => 0.999)).toBe(999);
    expect(retryWaitMs(1, 59_900, 250, 60_000, () => 0.999)).toBe(60_000);
    expect(retryWaitMs(1, 90_000, 250, 60_000, () => 0)).toBe(90_000); // the caller gives up before such a wait
  });

  it('backoff is full jitter, exponential and capped', () => {
    expect(backoffMs(1, 250, 60_000, () => 0.999)).toBe(249);
    expect(backoffMs(3, 250, 60_000, () => 0.5)).toBe(500);
    expect(backoffMs(20, 250, 60_000, () => 0.999)).toBe(59_940);
    expect(backoffMs(4, 250, 60_000, () => 0)).toBe(0);
  });
});

/** Why the namespace test cannot run here (unshare missing, or EPERM), or null when it can. */
function netnsUnavailable(): string | null {
  const r = spawnSync('unshare', ['-n', 'true'], { encoding: 'utf8' });
  if (r.error) return `unshare unavailable: ${r.error.message}`;
  if (r.status !== 0 && /Operation not permitted/i.test(r.stderr)) return `unshare -n: ${r.stderr.trim()}`;
  return null; // any other failure is not a reason to skip: the test will fail and show it
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROBE = join(ROOT, 'test/servers/netns-probe.mjs');

/** Our modules as plain ESM (TypeScript transpiled, no type check) for a bare `node` child. */
async function transpileForChild(): Promise<string> {
  const ts = (await import('typescript')).default;
  const dir = mkdtempSync(join(tmpdir(), 'ferry-netns-'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  const sources = (dir: string) => readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => `${dir}/${f}`);
  const files = [...sources('protocol'), ...sources('storage'), 'worker/backoff.ts', 'worker/download.ts'];
  for (const rel of files) {
    const js = ts.transpileModule(readFileSync(join(ROOT, rel), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    }).outputText;
    const out = join(dir, rel.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, js);
  }
  return dir;
}

type NetnsReport = {
  rawConnect: Record<string, string>;
  results: Record<string, { ok: boolean; reason?: string; attempts: number; detail?: string }>;
  originSaw: string[];
};

async function runInNetns(): Promise<NetnsReport> {
  const dir = await transpileForChild();
  try {
    const child = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, PROBE, dir, ORIGIN], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`netns probe exited ${code}: ${out}`);
    return JSON.parse(out.trim().split('\n').pop() ?? '{}') as NetnsReport;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const skipNetns = netnsUnavailable();
if (skipNetns) console.warn(`skipping the network-namespace test: ${skipNetns}`);

describe('cloud metadata and private targets, inside a network namespace', () => {
  it.skipIf(skipNetns !== null)('are BLOCKED_ADDRESS; a failed guard would only meet ENETUNREACH', async () => {
    const report = await runInNetns();
    expect(report.rawConnect).toEqual({
      '169.254.169.254': 'ENETUNREACH',
      'fd00:ec2::254': 'ENETUNREACH',
      '10.0.0.1': 'ENETUNREACH',
      '169.254.42.42': 'ENETUNREACH',
      'fd00:c1::a9fe:a9fe': 'ENETUNREACH',
      '64:ff9b:1::a9fe:a9fe': 'ENETUNREACH',
    });
    expect(Object.keys(report.results).length).toBe(14);
    for (const [name, r] of Object.entries(report.results)) {
      expect(r, name).toMatchObject({ ok: false, reason: 'BLOCKED_ADDRESS', attempts: 1 });
    }
    // The origin saw the redirects and nothing else.
    expect(report.originSaw.length).toBeGreaterThan(0);
    expect(report.originSaw.every((p) => p.startsWith('/redirect/'))).toBe(true);
  });
});
