// Runs inside a fresh network namespace (`unshare -n`, only `lo` up): starts the fault
// origin there and downloads URLs that name cloud-metadata and private addresses, so the
// guard is exercised with real redirects while a guard failure could reach no host at all
// (the namespace has no route but loopback). Prints one JSON report on stdout.
//
//   node netns-probe.mjs <dir with worker/download.js and storage/http.js> <fault-origin.mjs>
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modulesDir = '', originScript = ''] = process.argv.slice(2);
const { download } = await import(pathToFileURL(join(modulesDir, 'worker/download.js')).href);
const { createHttpClient } = await import(pathToFileURL(join(modulesDir, 'storage/http.js')).href);

async function startOrigin() {
  const proc = spawn(process.execPath, [originScript], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of proc.stdout) {
    out += chunk.toString();
    const m = /PORT (\d+)/.exec(out);
    if (m) return { proc, base: `http://127.0.0.1:${m[1]}` };
  }
  throw new Error('origin exited before listening');
}

/** The error code a plain connect meets here: what a request would meet if the guard let it through. */
function rawConnect(host) {
  return new Promise((resolve) => {
    const s = connect({ host, port: 80, timeout: 2000 });
    s.on('connect', () => {
      s.destroy();
      resolve('CONNECTED');
    });
    s.on('timeout', () => {
      s.destroy();
      resolve('TIMEOUT');
    });
    s.on('error', (e) => resolve(e.code ?? String(e)));
  });
}

const origin = await startOrigin();
const common = { timeoutMs: 1000, proxy: 'none' };
const open = createHttpClient({ ...common, allowPrivateNetwork: true });
const pinned = createHttpClient({ ...common, allowPrivateNetwork: false, allowCidrs: ['127.0.0.1/32'] });
let n = 0;
const via = (to) => `${origin.base}/redirect/k${++n}?n=1&to=${encodeURIComponent(to)}`;

const cases = {
  'redirect to 169.254.169.254 (allowPrivateNetwork)': [open, via('http://169.254.169.254/latest/meta-data/')],
  '169.254.169.254 direct (allowPrivateNetwork)': [open, 'http://169.254.169.254/latest/meta-data/'],
  '169.254.169.254 as decimal 2852039166': [open, 'http://2852039166/latest/meta-data/'],
  'redirect to [fd00:ec2::254]': [open, via('http://[fd00:ec2::254]/latest/meta-data/')],
  'redirect to [::ffff:169.254.169.254]': [open, via('http://[::ffff:169.254.169.254]/latest/meta-data/')],
  'redirect to NAT64 [64:ff9b::a9fe:a9fe]': [open, via('http://[64:ff9b::a9fe:a9fe]/latest/meta-data/')],
  'redirect to local-use NAT64 /96 [64:ff9b:1::a9fe:a9fe] (allowPrivateNetwork)': [open, via('http://[64:ff9b:1::a9fe:a9fe]/latest/meta-data/')],
  'redirect to local-use NAT64 /48 [64:ff9b:1:a9fe:a9:fe00::] (allowPrivateNetwork)': [open, via('http://[64:ff9b:1:a9fe:a9:fe00::]/latest/meta-data/')],
  'redirect to 100.100.100.200': [open, via('http://100.100.100.200/latest/meta-data/')],
  'redirect to Tencent 169.254.0.23 (allowPrivateNetwork)': [open, via('http://169.254.0.23/latest/meta-data/')],
  'redirect to Scaleway 169.254.42.42 (allowPrivateNetwork)': [open, via('http://169.254.42.42/conf')],
  'redirect to OCI [fd00:c1::a9fe:a9fe] (allowPrivateNetwork)': [open, via('http://[fd00:c1::a9fe:a9fe]/opc/v2/instance/')],
  'redirect to 10.0.0.1 (private, not allowed)': [pinned, via('http://10.0.0.1/a.png')],
  'redirect to 192.168.1.1 (private, not allowed)': [pinned, via('http://0xc0.0xa8.1.1/a.png')],
};

const report = { rawConnect: {}, results: {}, originSaw: [] };
for (const host of ['169.254.169.254', 'fd00:ec2::254', '10.0.0.1', '169.254.42.42', 'fd00:c1::a9fe:a9fe', '64:ff9b:1::a9fe:a9fe']) {
  report.rawConnect[host] = await rawConnect(host);
}
for (const [name, [client, url]] of Object.entries(cases)) {
  report.results[name] = await download(url, { client, retries: 2, backoffBaseMs: 5 });
}
const stats = await download(`${origin.base}/__stats`, { client: open });
report.originSaw = stats.ok ? Object.keys(JSON.parse(stats.body.toString())) : [`stats failed: ${stats.detail}`];

await Promise.all([open.close(), pinned.close()]);
origin.proc.stdin.end();
origin.proc.kill('SIGTERM');
process.stdout.write(JSON.stringify(report) + '\n');
