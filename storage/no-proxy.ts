/**
 * `NO_PROXY`: which URLs go straight to their origin although a proxy is set. undici's own
 * matching knows host names and bracketed IPv6 only: a bare IPv6 address (`::1`, as curl,
 * Go and Python take it) was read as the host `:` on port 1, and a CIDR (`10.0.0.0/8`, the
 * usual way to keep a cluster's own network off the proxy) as a name no host has, so those
 * fetches went to the proxy. The entries, comma or space separated, case-insensitive:
 * - `*`: no URL is proxied;
 * - an IP address, IPv6 bare or in brackets, IPv4 or bracketed IPv6 with an optional
 *   `:port`: that address (compared as addresses, so `::0:1` is `::1`);
 * - a CIDR (`10.0.0.0/8`, `fd00::/8`): IP literal hosts inside it (names are not resolved
 *   for this, as in curl and Go);
 * - a name with an optional `:port`, a leading `.` or `*.` ignored: that name and every
 *   name under it (`example.com` takes `a.example.com`), a final `.` on either side ignored.
 */
import { type Cidr, inCidr, parseCidr, parseIp } from './netguard.js';
import type { ProxyConfig } from './proxy-env.js';

type Entry =
  | { kind: 'all' }
  | { kind: 'ip'; bytes: Uint8Array; port: number }
  | { kind: 'cidr'; cidr: Cidr }
  | { kind: 'name'; name: string; port: number };

export type NoProxy = readonly Entry[];

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

function parseEntry(raw: string): Entry | null {
  const e = raw.trim().toLowerCase();
  if (e === '') return null;
  if (e === '*') return { kind: 'all' };
  if (e.includes('/')) {
    try {
      return { kind: 'cidr', cidr: parseCidr(e.replace(/^\[(.*)\](\/\d+)$/, '$1$2')) };
    } catch {
      return null; // not a CIDR: no host could match it anyway
    }
  }
  const bare = parseIp(e);
  if (bare) return { kind: 'ip', bytes: bare, port: 0 };
  const m = /^(.*):(\d+)$/.exec(e);
  const host = m ? m[1]! : e;
  const port = m ? Number(m[2]) : 0;
  const ip = parseIp(host);
  if (ip) return { kind: 'ip', bytes: ip, port };
  const name = host.replace(/^\*?\./, '').replace(/\.$/, '');
  return name === '' ? null : { kind: 'name', name, port };
}

export function parseNoProxy(value: string | undefined): NoProxy {
  return (value ?? '').split(/[,\s]+/).flatMap((raw) => parseEntry(raw) ?? []);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** True when `url` is to be fetched directly, not through the proxy. */
export function bypassesProxy(entries: NoProxy, url: URL): boolean {
  if (entries.length === 0) return false;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
  const port = Number(url.port) || DEFAULT_PORTS[url.protocol] || 0;
  const ip = parseIp(host);
  return entries.some((e) => {
    switch (e.kind) {
      case 'all':
        return true;
      case 'ip':
        return ip !== null && sameBytes(ip, e.bytes) && (e.port === 0 || e.port === port);
      case 'cidr':
        return ip !== null && inCidr(ip, e.cidr);
      case 'name':
        return (e.port === 0 || e.port === port) && (host === e.name || host.endsWith(`.${e.name}`));
    }
  });
}

/** The proxy a request to a URL goes through, or null: direct. */
export type ProxyRoute = (url: URL) => string | null;

/**
 * The route of a proxy configuration, or null when none is set: a URL goes through the proxy
 * set for its scheme (HTTPS_PROXY, else HTTP_PROXY, for https: URLs; HTTP_PROXY for http:, as
 * undici chooses) unless NO_PROXY names it.
 */
export function proxyRoute(config: ProxyConfig | null): ProxyRoute | null {
  if (!config) return null;
  const noProxy = parseNoProxy(config.noProxy);
  return (url) => {
    const proxy = url.protocol === 'https:' ? (config.httpsProxy ?? config.httpProxy) : config.httpProxy;
    return proxy && !bypassesProxy(noProxy, url) ? proxy : null;
  };
}
