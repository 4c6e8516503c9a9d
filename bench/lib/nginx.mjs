// The origin: Debian's nginx serving the corpus from disk with sendfile, on 127.0.0.1, with
// its own config, pid file and logs in a temp dir, started and stopped by the bench.
// - `latencyMs`: every response waits that long first (`echo_sleep`, then `echo_exec` to a
//   static location; libnginx-mod-http-echo).
// - `limitConn`: at most that many requests in flight; the others get 429 at once
//   (`limit_conn` + `limit_conn_status 429`): the knee scenario. Each response's end time,
//   status and duration is then logged (buffered): 429s, steady rate and requests in flight per run.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';

export const ECHO_MODULE = '/usr/lib/nginx/modules/ngx_http_echo_module.so';
const GUARD = fileURLToPath(new URL('./guard.mjs', import.meta.url));

export async function freePort() {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** The hard limit of open files: what nginx may raise its workers' limit to. */
function hardNofile() {
  const r = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1_048_576) : 16384;
}

function config({ dir, root, port, latencyMs, limitConn }) {
  const nofile = hardNofile();
  const delayed = latencyMs > 0;
  return `
${delayed ? `load_module ${ECHO_MODULE};` : ''}
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile ${nofile};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log error;
events { worker_connections 16384; multi_accept on; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path ${dir}/body;
  types { image/jpeg jpg; image/png png; image/webp webp; }
  default_type application/octet-stream;
  ${limitConn > 0 ? 'limit_conn_zone $server_port zone=knee:1m;' : ''}
  ${limitConn > 0 ? "log_format status '$msec $status $request_time';" : ''}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${root};
    ${limitConn > 0 ? `limit_conn knee ${limitConn}; limit_conn_status 429; limit_conn_log_level info; access_log ${dir}/status.log status buffer=64k flush=100ms;` : ''}
    ${delayed ? `location / { echo_sleep ${latencyMs / 1000}; echo_exec @static; }\n    location @static { }` : 'location / { }'}
  }
}
`;
}

/**
 * Starts nginx; resolves once `probePath` (a corpus file) answers 200, checked to take at
 * least `latencyMs`. Returns { url, port, stop(), statusCounts() }.
 */
export async function startNginx({ root, probePath, latencyMs = 0, limitConn = 0 }) {
  if (!existsSync('/usr/sbin/nginx')) throw new Error('nginx is not installed (apt-get install nginx-light)');
  if (latencyMs > 0 && !existsSync(ECHO_MODULE)) throw new Error(`${ECHO_MODULE} is missing (apt-get install libnginx-mod-http-echo)`);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-nginx-'));
  const port = await freePort();
  await writeFile(join(dir, 'nginx.conf'), config({ dir, root, port, latencyMs, limitConn }));
  const child = spawn(process.execPath, [GUARD, '/usr/sbin/nginx', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  const log = async () => (await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')) + stderr;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.stdin.end();
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${await log()}`);
      const t0 = performance.now();
      const r = await request(`${url}/${probePath}`).catch(() => undefined);
      if (r) {
        await r.body.dump();
        const ms = performance.now() - t0;
        if (r.statusCode === 403) throw new Error(`nginx answers 403 for ${probePath}: its workers drop root, so the corpus must be world-readable`);
        if (r.statusCode !== 200) throw new Error(`nginx answers ${r.statusCode} for ${probePath}: ${await log()}`);
        if (ms < latencyMs) throw new Error(`nginx answered in ${ms.toFixed(0)} ms, under the ${latencyMs} ms delay: echo_sleep is not in effect`);
        break;
      }
      if (i > 100) throw new Error(`nginx did not start: ${await log()}`);
      await sleep(50);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  let logOffset = 0;
  /**
   * The knee origin's log since the last call: { total, '200': n, '429': n, steadyRate, inFlight }.
   * Over the window between the 10th and 90th percentile of the 200s' end times (the tool's
   * start-up and tail left out): steadyRate = 200s per second, inFlight = the time they spent
   * inside nginx per second of window, i.e. the requests being served at once on average
   * (what limit_conn bounds).
   */
  const statusCounts = async () => {
    await sleep(400); // the log is flushed every 100 ms
    const text = await readFile(join(dir, 'status.log'), 'utf8').catch(() => '');
    const counts = { total: 0 };
    const served = [];
    for (const line of text.slice(logOffset).split('\n')) {
      if (!line) continue;
      const [t, status, took] = line.split(' ');
      counts.total++;
      counts[status] = (counts[status] ?? 0) + 1;
      if (status === '200') served.push([Number(t), Number(took)]);
    }
    logOffset = text.length;
    served.sort((a, b) => a[0] - b[0]);
    const lo = Math.floor(served.length * 0.1);
    const hi = Math.floor(served.length * 0.9);
    if (hi > lo && served[hi][0] > served[lo][0]) {
      const window = served[hi][0] - served[lo][0];
      counts.steadyRate = (hi - lo) / window;
      counts.inFlight = served.slice(lo + 1, hi + 1).reduce((a, [, took]) => a + took, 0) / window;
    }
    return counts;
  };
  return { url, port, stop, statusCounts, errorLog: log };
}
