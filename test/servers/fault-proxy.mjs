// A fault-injecting HTTP proxy in front of an S3-compatible test server (test/servers/s3.mjs),
// run as its own process so that resets and stalls happen on real sockets the SDK under
// test owns. Listens on 127.0.0.1, port 0, prints `PORT <n>` on stdout once listening, and
// forwards every request unchanged (Host header included, so signatures stay valid) to
//
//   node test/servers/fault-proxy.mjs <upstream> [--rules JSON] [--seed N]
//
// where <upstream> is `http://127.0.0.1:<port>` or a bare port; only loopback upstreams are
// accepted, so tests never send traffic elsewhere. Exits when its stdin ends or on SIGTERM.
//
// Faults are rules, tried in order; the first that matches a request and fires decides it:
//   { "method": "PUT" | ["PUT", "HEAD"],   any method when absent
//     "path": "<regex>",                   tested against path + query; any when absent
//     "fault": <below>,
//     "times": N,                          fire at most N times (default: no limit)
//     "perPath": true,                     count `times` per path instead of for the whole rule
//     "probability": P,                    fire with probability P (seeded, see --seed)
//     "ms": M, "status": S, "code": "C", "retryAfter": "V" }   fault parameters
// Faults:
//   reset-request   read part of the request body, then RST; upstream never sees it
//   reset-response  forward; send the first half of upstream's raw response, then RST
//                   (the write happened upstream: the client cannot know)
//   slowdown        503 <Error><Code>SlowDown</Code>… (S3's throttling answer)
//   internal        500 <Error><Code>InternalError</Code>…
//   throttle        429 TooManyRequests with Retry-After: retryAfter (default 1)
//   status          status S with code C
//   delay           forward; hold upstream's answer M ms (slow first byte)
//   stall           read the request, never answer; RST after M ms when M is given
//   stall-body      forward; send the head and half the body, then stall as above
//   chunked         forward; send upstream's answer chunked, without its Content-Length (a
//                   gateway or S3-compatible store that streams what it serves)
//   object-lock     forward a PUT that carries Content-MD5 or an x-amz-checksum-* header, or copies;
//                   refuse any other with 400 InvalidRequest, as S3 refuses an object or part
//                   written to a bucket with a default Object Lock retention
//   clock           forward a request whose X-Amz-Date is within M ms (default 15 min) of the
//                   proxy's clock; refuse any other with 403 RequestTimeTooSkewed, as S3 does
//                   (the answer's Date header gives the proxy's time)
// The error faults also take `retryAfter`.
//
// Control routes (never counted, never faulted; `__` cannot start an S3 bucket name):
//   GET /__stats      JSON { total, methods: {PUT: n}, paths: {"PUT /b/k": n}, faults: {"PUT slowdown": n},
//                     stalled: sockets a stall holds that their client has not closed }
//   DELETE /__stats   zeroes the counters and the log
//   GET /__log        JSON [{ t, method, path, fault }]: each request in order of arrival, t in ms
//                     since the proxy started (the last 100 000), to check waits between tries
//   GET /__faults     the rules and how often each fired
//   POST /__faults    JSON { rules: [...], seed?, maxFaultsPerPath?, objectKey? } replaces the rules;
//                     with maxFaultsPerPath no path gets more faults than that, whichever rules
//                     match, so random faults stay recoverable within a client's retries.
//                     `objectKey` (a regex over path + query) names what that bound counts
//                     per: its first group, e.g. a GCS object's name, which its upload carries
//                     in the query (`?name=`) and its metadata GET in the path (`/o/<name>`);
//                     a request it does not match counts by its path
//   DELETE /__faults  removes every rule
import { Buffer } from 'node:buffer';
import http from 'node:http';
import process from 'node:process';
import { URL } from 'node:url';
import { clearTimeout, setTimeout } from 'node:timers';
import { seeded } from '../helpers/seeded.mjs';

const FAULTS = new Set(['reset-request', 'reset-response', 'slowdown', 'internal', 'throttle', 'status', 'delay', 'stall', 'stall-body', 'chunked', 'object-lock', 'clock']);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

// ---------------------------------------------------------------------------------------
// Arguments

function argValue(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function upstreamOf(arg) {
  if (!arg) throw new Error('usage: fault-proxy.mjs <upstream http://127.0.0.1:PORT | PORT> [--rules JSON] [--seed N]');
  const url = new URL(/^\d+$/.test(arg) ? `http://127.0.0.1:${arg}` : arg);
  if (url.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error(`upstream must be http on loopback, not ${arg}`);
  }
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
}

// ---------------------------------------------------------------------------------------
// Rules and counters

let rules = [];
let maxFaultsPerPath = Infinity;
/** What maxFaultsPerPath counts per: a capture of path + query, or the path. */
let objectKey = null;
const faultsByPath = new Map();
let random = seeded(Number(argValue('--seed') ?? 1));
const stats = { total: 0, methods: {}, paths: {}, faults: {} };
const MAX_LOG = 100_000;
let log = [];
const started = Date.now();

function bump(table, key) {
  table[key] = (table[key] ?? 0) + 1;
}

function compileRule(r) {
  if (!r || !FAULTS.has(r.fault)) throw new Error(`unknown fault ${JSON.stringify(r?.fault)}; one of ${[...FAULTS].join(', ')}`);
  const methods = r.method === undefined ? null : new Set([r.method].flat().map((m) => String(m).toUpperCase()));
  return { ...r, methods, re: r.path === undefined ? null : new RegExp(r.path), seen: 0, seenByPath: new Map(), fired: 0 };
}

function setRules(body) {
  const list = Array.isArray(body) ? body : (body?.rules ?? []);
  const compiled = list.map(compileRule);
  rules = compiled;
  maxFaultsPerPath = body?.maxFaultsPerPath ?? Infinity;
  objectKey = body?.objectKey === undefined ? null : new RegExp(body.objectKey);
  faultsByPath.clear();
  if (body?.seed !== undefined) random = seeded(Number(body.seed));
}

/** The rule that decides this request, if any. A rule's `times` counts the requests it matched. */
function pickRule(method, target, pathname) {
  const object = objectKey?.exec(target)?.[1] ?? pathname;
  if ((faultsByPath.get(object) ?? 0) >= maxFaultsPerPath) return null;
  for (const r of rules) {
    if (r.methods && !r.methods.has(method)) continue;
    if (r.re && !r.re.test(target)) continue;
    const n = r.perPath ? (r.seenByPath.get(pathname) ?? 0) + 1 : r.seen + 1;
    if (r.times !== undefined && n > r.times) continue;
    if (r.probability !== undefined && random() >= r.probability) continue;
    if (r.perPath) r.seenByPath.set(pathname, n);
    else r.seen = n;
    r.fired++;
    faultsByPath.set(object, (faultsByPath.get(object) ?? 0) + 1);
    return r;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Sockets and timers, so that stop() leaves nothing behind

const sockets = new Set();
const timers = new Set();
/** Sockets held by a stall whose client has not closed them (a client that gave up must close its socket). */
const stalled = new Set();

function later(ms, fn) {
  const t = setTimeout(() => {
    timers.delete(t);
    fn();
  }, ms);
  timers.add(t);
}

function reset(socket) {
  if (!socket.destroyed) socket.resetAndDestroy();
}

// ---------------------------------------------------------------------------------------
// Forwarding

const upstream = upstreamOf(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function forwardHeaders(headers) {
  // The proxy already answered any `Expect: 100-continue` itself; the body follows at once.
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP_BY_HOP.has(k) && k !== 'expect'));
}

/** Sends the request upstream; resolves with its response, head and body buffered when `buffer`. */
function forward(req, buffer) {
  return new Promise((resolve, reject) => {
    const up = http.request(
      { host: upstream.host, port: upstream.port, method: req.method, path: req.url, headers: forwardHeaders(req.headers), agent },
      (res) => {
        if (!buffer) return resolve({ res });
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    up.on('error', reject);
    // A client that gives up (or is killed) mid-request must not leave upstream waiting for the rest.
    req.on('close', () => {
      if (!req.complete) up.destroy();
    });
    req.pipe(up);
  });
}

function responseHeaders(res) {
  return Object.fromEntries(Object.entries(res.headers).filter(([k]) => !HOP_BY_HOP.has(k)));
}

/** The response as bytes on the wire (Content-Length framing), for faults that cut it. */
function rawResponse(res, body, method) {
  const headers = { ...responseHeaders(res), 'content-length': String(method === 'HEAD' ? (res.headers['content-length'] ?? 0) : body.length) };
  const head = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), method === 'HEAD' ? Buffer.alloc(0) : body]);
}

async function passThrough(req, res) {
  const { res: up } = await forward(req, false);
  res.writeHead(up.statusCode ?? 502, up.statusMessage, responseHeaders(up));
  res.on('close', () => {
    if (!up.complete) up.destroy();
  });
  up.pipe(res);
}

// ---------------------------------------------------------------------------------------
// Faults

const xml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function s3Error(req, res, status, code, message, retryAfter) {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xml(code)}</Code><Message>${xml(message)}</Message><Resource>${xml(req.url)}</Resource><RequestId>faultproxy</RequestId></Error>`;
  const headers = { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': 'faultproxy' };
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  // Read the whole request first, as a real server does, so the client sees an answer, not EPIPE.
  req.resume();
  req.on('end', () => {
    res.writeHead(status, headers);
    res.end(body);
  });
}

/** Holds a socket without answering; resets it after `ms` when given. Counted in `stalled` while the client keeps it open. */
function stall(socket, ms) {
  stalled.add(socket);
  socket.once('close', () => stalled.delete(socket));
  if (ms !== undefined) later(Number(ms), () => reset(socket));
}

const inject = {
  'reset-request': (req) => {
    const expected = Number(req.headers['content-length'] ?? 0);
    let got = 0;
    const cut = () => reset(req.socket);
    if (expected === 0) return cut();
    req.on('data', (c) => {
      got += c.length;
      if (got * 2 >= expected) cut();
    });
    req.on('end', cut);
  },
  'reset-response': async (req) => {
    const { res, body } = await forward(req, true);
    const raw = rawResponse(res, body, req.method);
    req.socket.write(raw.subarray(0, Math.max(1, Math.floor(raw.length / 2))), () => later(10, () => reset(req.socket)));
  },
  slowdown: (req, res, r) => s3Error(req, res, 503, 'SlowDown', 'Please reduce your request rate.', r.retryAfter),
  internal: (req, res, r) => s3Error(req, res, 500, 'InternalError', 'We encountered an internal error. Please try again.', r.retryAfter),
  throttle: (req, res, r) => s3Error(req, res, 429, 'TooManyRequests', 'Too many requests.', r.retryAfter ?? '1'),
  status: (req, res, r) => s3Error(req, res, Number(r.status ?? 500), r.code ?? 'InjectedError', 'Injected by fault-proxy.', r.retryAfter),
  delay: async (req, res, r) => {
    const { res: up, body } = await forward(req, true);
    later(Number(r.ms ?? 1000), () => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, responseHeaders(up));
      res.end(body);
    });
  },
  stall: (req, _res, r) => {
    req.resume();
    stall(req.socket, r.ms);
  },
  chunked: async (req, res) => {
    const { res: up } = await forward(req, false);
    const { 'content-length': _length, ...headers } = responseHeaders(up);
    res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
    up.pipe(res);
  },
  'object-lock': (req, res) => {
    const h = req.headers;
    if (req.method !== 'PUT' || h['x-amz-copy-source'] || h['content-md5'] || Object.keys(h).some((k) => k.startsWith('x-amz-checksum-'))) return passThrough(req, res);
    return s3Error(req, res, 400, 'InvalidRequest', 'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters');
  },
  clock: (req, res, r) => {
    const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(String(req.headers['x-amz-date'] ?? ''));
    const at = m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
    if (Math.abs(at - Date.now()) <= Number(r.ms ?? 900_000)) return passThrough(req, res);
    return s3Error(req, res, 403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  },
  'stall-body': async (req, _res, r) => {
    const { res, body } = await forward(req, true);
    const raw = rawResponse(res, body, req.method);
    const headLength = raw.length - (req.method === 'HEAD' ? 0 : body.length);
    req.socket.write(raw.subarray(0, headLength + Math.floor((raw.length - headLength) / 2)));
    stall(req.socket, r.ms);
  },
};

// ---------------------------------------------------------------------------------------
// Control routes

function json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      try {
        resolve(text.trim() === '' ? {} : JSON.parse(text));
      } catch (e) {
        reject(e);
      }
    });
  });
}

async function control(req, res, pathname) {
  if (pathname === '/__stats' && req.method === 'GET') return json(res, 200, { ...stats, stalled: stalled.size });
  if (pathname === '/__stats' && req.method === 'DELETE') {
    Object.assign(stats, { total: 0, methods: {}, paths: {}, faults: {} });
    log = [];
    return json(res, 200, stats);
  }
  if (pathname === '/__log' && req.method === 'GET') return json(res, 200, log);
  if (pathname === '/__faults' && req.method === 'GET') {
    return json(res, 200, rules.map(({ methods: _m, re: _re, seenByPath: _s, ...r }) => r));
  }
  if (pathname === '/__faults' && req.method === 'DELETE') {
    setRules({ rules: [] });
    return json(res, 200, { rules: 0 });
  }
  if (pathname === '/__faults' && req.method === 'POST') {
    try {
      setRules(await readJson(req));
    } catch (e) {
      return json(res, 400, { error: e.message });
    }
    return json(res, 200, { rules: rules.length });
  }
  return json(res, 404, { error: `no control route ${req.method} ${pathname}` });
}

// ---------------------------------------------------------------------------------------
// The server

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url ?? '/', 'http://proxy');
  if (pathname.startsWith('/__')) return void control(req, res, pathname);
  const method = req.method ?? 'GET';
  stats.total++;
  bump(stats.methods, method);
  bump(stats.paths, `${method} ${pathname}`);
  const rule = pickRule(method, req.url ?? '/', pathname);
  if (rule) bump(stats.faults, `${method} ${rule.fault}`);
  if (log.length >= MAX_LOG) log.shift();
  log.push({ t: Date.now() - started, method, path: pathname, fault: rule?.fault ?? null });
  const handle = rule ? inject[rule.fault](req, res, rule) : passThrough(req, res);
  Promise.resolve(handle).catch((e) => {
    // Upstream unreachable or gone: answer as a gateway would, when still possible.
    if (res.headersSent || req.socket.destroyed) return reset(req.socket);
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`fault-proxy: upstream ${e.code ?? e.message}`);
  });
});

// Clients may send bodies for long; the defaults (5 min request timeout) would cut stalls of our own making.
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.keepAliveTimeout = 5_000;

server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  for (const t of timers) clearTimeout(t);
  for (const s of sockets) s.destroy();
  agent.destroy();
  server.close(() => process.exit(0));
  // A socket that refuses to close must not keep the process alive.
  setTimeout(() => process.exit(0), 2_000).unref();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();

try {
  if (argValue('--rules') !== undefined) setRules(JSON.parse(argValue('--rules')));
} catch (e) {
  process.stderr.write(`fault-proxy: --rules: ${e.message}\n`);
  process.exit(2);
}

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
