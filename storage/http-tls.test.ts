/**
 * `--origin-header` values and https: a real TLS origin on 127.0.0.1 (a certificate made
 * by openssl for this run) that redirects to a plain-http one on the same host. Its own
 * file: it turns certificate checks off for this process (the certificate is self-signed).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpClient, createHttpClient } from './http.js';

let dir: string;
let plain: http.Server;
let tls: https.Server;
let client: HttpClient;
const port = (s: http.Server) => (s.address() as AddressInfo).port;

const echo = (req: http.IncomingMessage, res: http.ServerResponse) => {
  if (req.url === '/down') {
    res.writeHead(302, { location: `http://127.0.0.1:${port(plain)}/echo` });
    return res.end();
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(req.headers));
};

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ferry-tls-'));
  const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  plain = http.createServer(echo).listen(0, '127.0.0.1');
  tls = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, echo).listen(0, '127.0.0.1');
  await Promise.all([new Promise((r) => plain.once('listening', r)), new Promise((r) => tls.once('listening', r))]);
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  client = createHttpClient({ allowPrivateNetwork: true, proxy: 'none', originHeaders: new Map([['127.0.0.1', [['X-Token', 'secret']]]]) });
});

afterAll(async () => {
  await client?.close();
  plain?.close();
  tls?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function headersSeen(url: string): Promise<Record<string, string>> {
  const res = await client.get(url);
  if (res.body.kind !== 'stream') throw new Error(`unexpected ${res.body.kind} body`);
  const chunks: Buffer[] = [];
  for await (const c of res.body.stream) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string>;
}

describe('--origin-header and https', () => {
  it('sends the header over https, and over http when the manifest says http', async () => {
    expect((await headersSeen(`https://127.0.0.1:${port(tls)}/echo`))['x-token']).toBe('secret');
    expect((await headersSeen(`http://127.0.0.1:${port(plain)}/echo`))['x-token']).toBe('secret');
  });

  it('does not send it in clear text after a redirect from https to http on the same host', async () => {
    const seen = await headersSeen(`https://127.0.0.1:${port(tls)}/down`);
    expect(seen['user-agent']).toBe('ferry');
    expect(seen['x-token']).toBeUndefined();
  });
});
