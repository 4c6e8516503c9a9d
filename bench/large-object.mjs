// One large object through the worker: HTTP origin → ferry worker (--profile any,
// streamed in --part-size parts) → a local S3-compatible server (fauxqs, its request limit
// raised for 64 MiB parts). Reports MB/s, CPU and peak RSS of the worker, measured as the
// bare loop beside it (large-bare.mjs) and every tool of the transfer scenarios are
// (measure.mjs: wall time of the process's life, CPU of its reaped tree, peak RSS sampled).
// `npm run build && node bench/large-object.mjs [bytes]` (default 2 GiB).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { runMeasured } from './lib/measure.mjs';

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
const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-large-'));
try {
  const endpoint = `http://127.0.0.1:${s3srv.port}`;
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1' });
  await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
  const tasks = join(dir, 'tasks.tsv');
  await writeFile(tasks, `big\thttp://127.0.0.1:${origin.port}/big/b1?size=${size}\n`);
  const m = await runMeasured(process.execPath, [here('../bin/ferry.js'), 'worker', '--tasks', tasks, '--dest', 's3://bench/large', '--profile', 'any', '--s3-endpoint', endpoint, '--allow-private-network', ...process.argv.slice(3)], { env: { ...process.env, ...env } });
  if (m.code !== 0 || !/^UP_OK\tbig\t/m.test(m.stdout)) throw new Error(`worker failed (exit ${m.code ?? m.signal}): ${m.stdout}\n${m.stderr}`);
  const key = m.stdout.split('\n').find((l) => l.startsWith('UP_OK'))?.split('\t')[2]?.replace('s3://bench/', '');
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'bench', Key: key }));
  if (head.ContentLength !== size) throw new Error(`stored ${head.ContentLength} bytes, expected ${size}`);
  s3.destroy();
  const result = { bytes: size, seconds: m.seconds, mbPerSecond: size / 1e6 / m.seconds, cpuSeconds: m.cpuSeconds, peakRssMB: Math.round(m.peakRssBytes / 2 ** 20) };
  process.stdout.write(`${(size / 2 ** 20).toFixed(0)} MiB in ${m.seconds.toFixed(1)} s: ${result.mbPerSecond.toFixed(0)} MB/s, worker CPU ${m.cpuSeconds.toFixed(1)} s, peak RSS ${result.peakRssMB} MB\n`);
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await rm(dir, { recursive: true, force: true });
  for (const s of [s3srv, origin]) {
    s.child.stdin.end();
    s.child.kill('SIGTERM');
    if (s.child.exitCode === null) await once(s.child, 'exit');
  }
}
