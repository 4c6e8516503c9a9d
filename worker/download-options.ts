/** The download stage's options, built once per worker from its flags. */
import { type WorkerFlags, maxBytesOf } from '../protocol/index.js';
import { createHttpClient } from '../storage/http.js';
import type { DownloadOptions } from './download.js';

/** `--origin-header HOST=Name: value` (repeatable) as the client's per-host header map. */
export function originHeaders(list: readonly string[]): Map<string, [string, string][]> {
  const map = new Map<string, [string, string][]>();
  for (const item of list) {
    const eq = item.indexOf('=');
    const colon = item.indexOf(':', eq);
    const host = item.slice(0, eq).toLowerCase();
    const entry: [string, string] = [item.slice(eq + 1, colon).trim(), item.slice(colon + 1).trim()];
    map.set(host, [...(map.get(host) ?? []), entry]);
  }
  return map;
}

export function downloadOptions(f: WorkerFlags): DownloadOptions {
  const client = createHttpClient({
    timeoutMs: f.timeout,
    minRate: f.minRate,
    maxRedirects: f.maxRedirects,
    allowPrivateNetwork: f.allowPrivateNetwork,
    connectionsPerHost: Math.min(f.concurrency, 256),
    originHeaders: originHeaders(f.originHeader),
  });
  return { client, retries: f.retries, maxBytes: maxBytesOf(f) };
}
