// The bare Node loop for one large object, beside large-object.mjs (same origin, same
// fauxqs with its request limit raised): undici `request` → lib-storage `Upload` (64 MiB
// parts, its default queue of 4), the machine's limit for Node against which ferry's
// streamed upload is compared. Measured as a process (measure.mjs: wall time, CPU, peak RSS).
// `npm run build && node bench/large-bare.mjs [bytes]` (default 2 GiB); prints a JSON line.
// `--client URL BUCKET KEY ENDPOINT` is the measured process itself.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { runMeasured } from './lib/measure.mjs';
import { FAKE_AWS, startS3 } from './lib/s3.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
const PART = 64 * 2 ** 20;

if (process.argv[2] === '--client') {
  const [url, bucket, key, endpoint] = process.argv.slice(3);
  const { request } = await import('undici');
  const { Upload } = await import('@aws-sdk/lib-storage');
  const client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', requestChecksumCalculation: 'WHEN_REQUIRED' });
  const { statusCode, body } = await request(url);
  if (statusCode !== 200) throw new Error(`origin answered ${statusCode}`);
  await new Upload({ client, params: { Bucket: bucket, Key: key, Body: body }, partSize: PART, queueSize: 4 }).done();
  client.destroy();
  process.exit(0);
}

const size = Number(process.argv[2] ?? 2 * 2 ** 30);
Object.assign(process.env, FAKE_AWS);
const s3 = await startS3('bench', ['--body-limit', String(200 * 2 ** 20)]);
const origin = spawn(process.execPath, [here('../test/servers/fault-origin.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
try {
  let buf = '';
  let port;
  for await (const chunk of origin.stdout) {
    buf += chunk;
    port = /PORT (\d+)/.exec(buf)?.[1];
    if (port) break;
  }
  origin.stdout.resume();
  const url = `http://127.0.0.1:${port}/big/b1?size=${size}`;
  const m = await runMeasured(process.execPath, [here('./large-bare.mjs'), '--client', url, 'bench', 'large/bare', s3.endpoint], { env: { ...process.env, ...FAKE_AWS } });
  if (m.code !== 0) throw new Error(`bare client failed: ${m.stderr}`);
  const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
  const head = await client.send(new HeadObjectCommand({ Bucket: 'bench', Key: 'large/bare' }));
  client.destroy();
  if (head.ContentLength !== size) throw new Error(`stored ${head.ContentLength} bytes, expected ${size}`);
  const result = { bytes: size, seconds: m.seconds, mbPerSecond: size / 1e6 / m.seconds, cpuSeconds: m.cpuSeconds, peakRssMB: Math.round(m.peakRssBytes / 2 ** 20) };
  process.stdout.write(`bare loop: ${(size / 2 ** 20).toFixed(0)} MiB in ${m.seconds.toFixed(1)} s: ${result.mbPerSecond.toFixed(0)} MB/s, CPU ${m.cpuSeconds.toFixed(1)} s, peak RSS ${result.peakRssMB} MB\n`);
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  origin.stdin.end();
  origin.kill('SIGTERM');
  if (origin.exitCode === null) await once(origin, 'exit');
  await s3.stop();
}
