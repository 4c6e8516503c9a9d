// A misbehaving HTTP origin for download tests, run as its own process so that stalls,
// resets and trickles are real sockets, not mocks. Listens on 127.0.0.1 (or argv[2]),
// port 0, and prints `PORT <n>` on stdout once listening. Every route takes a unique
// path key from the test, so per-path counters never mix between tests.
//
//   /ok/<k>                          200 image/png, Content-Length
//   /type/<k>                        200 PNG bytes served as text/html
//   /status/<code>/<k>               that status, small body
//   /flaky/<k>?fail=N&status=S[&retryAfter=V]  S (default 500, with Retry-After: V if given) N times, then 200
//   /throttle/<k>?after=V&fail=N     429 with Retry-After: V (seconds or date), N times (default forever)
//   /short/<k>?size=N                Content-Length N (default 1000), N/2 bytes, then FIN
//   /reset/<k>?size=N                Content-Length N (default 1000), N/2 bytes, then RST
//   /garbage/<k>                     bytes that are not an HTTP response, then FIN
//   /stall/<k>                       headers, then nothing
//   /stall-headers/<k>?ms=M          first byte after M ms
//   /trickle/<k>                     chunked, 1 byte every 50 ms, forever
//   /steady/<k>?chunks=C&size=B&every=M[&length=1][&cut=1]  C chunks of B bytes every M ms: chunked,
//                                    or with Content-Length C×B when length=1; cut=1 promises
//                                    twice that and closes the connection after the C chunks
//   /huge/<k>                        Content-Length 10 GiB, 1 KiB, then stalls
//   /big/<k>?size=N                  chunked (no Content-Length), N bytes
//   /redirect/<k>?n=N&to=URL         N redirects, then Location: URL (absolute or path)
//   /echo-headers/<k>                200 JSON of the request headers
//   /file/<k>/<name>?type=T&fail=N&status=S&delay=MS
//                                    the file <name> from $FERRY_ORIGIN_ROOT, as content-type T
//                                    (default: from the name), after MS ms; S (default 503) N times first
//   /knee/<k>/<i>?limit=L&delay=MS&after=V
//                                    a host with a knee: while fewer than L (default 8) requests of
//                                    <k> are in flight, the PNG after MS ms (default 20); past it,
//                                    429 with Retry-After: V (default 0) at once
//   /__knee/<k>                      JSON { requests, refused, peak } of /knee/<k>/ (not counted)
//   /__stats                         JSON { path: requests } (not counted)
//   /__sockets?prefix=P              JSON { sockets: distinct connections that served paths starting with P }
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createServer } from 'node:http';
import { URL, URLSearchParams } from 'node:url';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers';

const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201a3b1e1d40000000049454e44ae426082',
  'hex',
);

const counts = new Map();
const knees = new Map();
const socketOfPath = new Map();
const socketIds = new WeakMap();
let nextSocketId = 0;
const sockets = new Set();
const timers = new Set();

function later(ms, fn) {
  const t = setTimeout(() => {
    timers.delete(t);
    fn();
  }, ms);
  timers.add(t);
  return t;
}

function every(ms, fn) {
  const t = setInterval(fn, ms);
  timers.add(t);
  return () => {
    clearInterval(t);
    timers.delete(t);
  };
}

function png(res, type = 'image/png') {
  res.writeHead(200, { 'content-type': type, 'content-length': PNG.length, etag: '"png-1"' });
  res.end(PNG);
}

function partial(res, end, size = 1000) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
  res.write(Buffer.alloc(Math.floor(size / 2), 1), () => later(20, () => end(res.socket)));
}

function streamChunks(res, chunks, size, ms, announce = false, cut = false) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', ...(announce ? { 'content-length': String((cut ? 2 : 1) * chunks * size) } : {}) });
  let sent = 0;
  const stop = every(ms, () => {
    if (res.destroyed) return stop();
    if (sent++ >= chunks) {
      stop();
      if (cut) res.destroy();
      else res.end();
      return;
    }
    res.write(Buffer.alloc(size, 7));
  });
  res.on('close', stop);
}

const TYPES = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif' };

const routes = {
  file: (q, res, n, parts) => {
    const delay = Number(q.get('delay') ?? 0);
    if (delay > 0 && !q.has('delayed')) {
      q.set('delayed', '1');
      return later(delay, () => routes.file(q, res, n, parts));
    }
    if (n <= Number(q.get('fail') ?? 0)) {
      res.writeHead(Number(q.get('status') ?? 503), { 'content-type': 'text/plain' });
      return res.end('not now');
    }
    const name = basename(parts[3] ?? '');
    let body;
    try {
      body = readFileSync(join(process.env.FERRY_ORIGIN_ROOT ?? '.', name));
    } catch {
      res.writeHead(404);
      return res.end('no such file');
    }
    const type = q.get('type') ?? TYPES[name.split('.').pop() ?? ''] ?? 'application/octet-stream';
    res.writeHead(200, { 'content-type': type, 'content-length': body.length, etag: `"${name}-${body.length}"` });
    res.end(body);
  },
  ok: (_q, res) => png(res),
  type: (_q, res) => png(res, 'text/html'),
  status: (_q, res, _n, parts) => {
    res.writeHead(Number(parts[2]), { 'content-type': 'text/plain' });
    res.end('status body');
  },
  flaky: (q, res, n) => {
    if (n <= Number(q.get('fail') ?? 1)) {
      res.writeHead(Number(q.get('status') ?? 500), q.has('retryAfter') ? { 'retry-after': q.get('retryAfter') } : {});
      return res.end('not yet');
    }
    png(res);
  },
  throttle: (q, res, n) => {
    const fail = Number(q.get('fail') ?? Infinity);
    if (n > fail) return png(res);
    res.writeHead(429, { 'retry-after': q.get('after') ?? '1' });
    res.end('slow down');
  },
  short: (q, res) => partial(res, (s) => s.end(), Number(q.get('size') ?? 1000)),
  reset: (q, res) => partial(res, (s) => s.resetAndDestroy(), Number(q.get('size') ?? 1000)),
  garbage: (_q, res) => res.socket.end('HTTP/1.1 9x9 What\r\n\r\n'),
  stall: (_q, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': 1000 });
    res.flushHeaders();
  },
  'stall-headers': (q, res) => later(Number(q.get('ms') ?? 300), () => png(res)),
  trickle: (_q, res) => streamChunks(res, Infinity, 1, 50),
  steady: (q, res) => streamChunks(res, Number(q.get('chunks')), Number(q.get('size')), Number(q.get('every')), q.get('length') === '1', q.get('cut') === '1'),
  huge: (_q, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(10 * 2 ** 30) });
    res.write(Buffer.alloc(1024));
  },
  big: (q, res) => {
    let left = Number(q.get('size'));
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const pump = () => {
      while (left > 0 && !res.destroyed) {
        const n = Math.min(left, 16384);
        left -= n;
        if (!res.write(Buffer.alloc(n, 3))) return res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  },
  redirect: (q, res, _n, parts, port) => {
    const n = Number(q.get('n') ?? 0);
    const next = new URLSearchParams(q);
    next.set('n', String(n - 1));
    const location = n > 0 ? `/redirect/${parts[2]}?${next}` : (q.get('to') ?? `http://127.0.0.1:${port}/ok/r`);
    res.writeHead(302, { location });
    res.end();
  },
  knee: (q, res, _n, parts) => {
    const k = parts[2] ?? '';
    if (!knees.has(k)) knees.set(k, { requests: 0, refused: 0, inflight: 0, peak: 0 });
    const s = knees.get(k);
    s.requests++;
    if (s.inflight >= Number(q.get('limit') ?? 8)) {
      s.refused++;
      res.writeHead(429, { 'retry-after': q.get('after') ?? '0', 'content-type': 'text/plain' });
      return res.end('over the knee');
    }
    s.inflight++;
    s.peak = Math.max(s.peak, s.inflight);
    let left = false;
    const leave = () => {
      if (!left) s.inflight--;
      left = true;
    };
    res.on('close', leave);
    later(Number(q.get('delay') ?? 20), () => {
      leave();
      png(res);
    });
  },
  'echo-headers': (_q, res, _n, _p, _port, req) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.headers));
  },
};

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://origin');
  if (url.pathname === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(Object.fromEntries(counts)));
  }
  if (url.pathname.startsWith('/__knee/')) {
    const s = knees.get(url.pathname.slice('/__knee/'.length)) ?? { requests: 0, refused: 0, peak: 0 };
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ requests: s.requests, refused: s.refused, peak: s.peak }));
  }
  if (url.pathname === '/__sockets') {
    const prefix = url.searchParams.get('prefix') ?? '/';
    const ids = new Set([...socketOfPath].filter(([p]) => p.startsWith(prefix)).map(([, id]) => id));
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ sockets: ids.size }));
  }
  socketOfPath.set(url.pathname, socketIds.get(req.socket));
  const n = (counts.get(url.pathname) ?? 0) + 1;
  counts.set(url.pathname, n);
  const parts = url.pathname.split('/');
  const route = routes[parts[1] ?? ''];
  if (!route) {
    res.writeHead(404);
    return res.end('no route');
  }
  route(url.searchParams, res, n, parts, server.address().port, req);
});

server.on('connection', (s) => {
  socketIds.set(s, ++nextSocketId);
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});

function stop() {
  for (const t of timers) {
    clearTimeout(t);
    clearInterval(t);
  }
  for (const s of sockets) s.destroy();
  server.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// A test runner that dies must not leave the origin behind.
process.stdin.on('end', stop);
process.stdin.resume();

server.listen(0, process.argv[2] ?? '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
