// One large object through the worker: HTTP origin → ferry worker (--profile any,
// streamed in --part-size parts) → a local S3-compatible server (fauxqs, its request limit
// raised for 64 MiB parts). Reports MB/s and the worker's peak RSS (one process: %M).
// `npm run build && node bench/large-object.mjs [bytes]` (default 2 GiB).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';

const size = Number(process.argv[2] ?? 2 * 2 ** 30);
const here = (f) => fileURLToPath(new URL(f, import.meta.url));

async function server(script, args = [], env = {}) {
  const child = spawn(process.execPath, [here(script), ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let buf = '';
  for await (const chunk of child.stdout) {
    buf += chunk;
    const m = /PORT (\d+)/.exec(buf);
    if (m) return { child, port: Number(m[1]) };
  }
  throw new Error(`${script} exited`);
}

const env = { AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench', AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
Object.assign(process.env, env);
const s3srv = await server('../test/servers/s3.mjs', ['--body-limit', String(200 * 2 ** 20)]);
const origin = await server('../test/servers/fault-origin.mjs');
try {
  const endpoint = `http://127.0.0.1:${s3srv.port}`;
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1' });
  await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
  const task = `big\thttp://127.0.0.1:${origin.port}/big/b1?size=${size}\n`;
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', process.execPath, here('../bin/ferry.js'), 'worker', '--tasks', '-', '--dest', 's3://bench/large', '--profile', 'any', '--s3-endpoint', endpoint, '--allow-private-network', ...process.argv.slice(3)], { input: task, encoding: 'utf8', env: { ...process.env, ...env } });
  const seconds = (performance.now() - t0) / 1000;
  const timeLine = r.stderr.trim().split('\n').pop() ?? '';
  const [, user, sys, maxKB] = timeLine.split(' ').map(Number);
  if (!/^UP_OK\tbig\t/m.test(r.stdout)) throw new Error(`worker failed: ${r.stdout}\n${r.stderr}`);
  const key = r.stdout.split('\n').find((l) => l.startsWith('UP_OK'))?.split('\t')[2]?.replace('s3://bench/', '');
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'bench', Key: key }));
  if (head.ContentLength !== size) throw new Error(`stored ${head.ContentLength} bytes, expected ${size}`);
  s3.destroy();
  process.stdout.write(`${(size / 2 ** 20).toFixed(0)} MiB in ${seconds.toFixed(1)} s: ${(size / 1e6 / seconds).toFixed(0)} MB/s, worker CPU ${(user + sys).toFixed(1)} s, peak RSS ${(maxKB / 1024).toFixed(0)} MB\n`);
  process.stdout.write(JSON.stringify({ bytes: size, seconds, mbPerSecond: size / 1e6 / seconds, cpuSeconds: user + sys, peakRssMB: Math.round(maxKB / 1024) }) + '\n');
} finally {
  for (const s of [s3srv, origin]) {
    s.child.stdin.end();
    s.child.kill('SIGTERM');
    if (s.child.exitCode === null) await once(s.child, 'exit');
  }
}
