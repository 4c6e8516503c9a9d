import { describe, expect, it } from 'vitest';
import { bypassesProxy, parseNoProxy } from './no-proxy.js';

describe('NO_PROXY', () => {
  it.each<[string, string, boolean]>([
    // NO_PROXY, URL, fetched directly
    ['', 'http://example.com/', false],
    ['*', 'http://example.com/', true],
    ['example.com', 'http://example.com/', true],
    ['example.com', 'http://a.b.example.com/', true],
    ['example.com', 'http://notexample.com/', false],
    ['.example.com', 'http://a.example.com/', true],
    ['*.example.com', 'http://example.com/', true],
    ['Example.COM', 'http://example.com./', true],
    ['example.com.', 'http://a.example.com/', true],
    ['example.com:8080', 'http://example.com:8080/', true],
    ['example.com:8080', 'http://example.com/', false],
    ['example.com:443', 'https://example.com/', true],
    // IPv6, bare as curl, Go and Python take it, or in brackets, compared as addresses
    ['::1', 'http://[::1]:9000/', true],
    ['::1', 'http://[::2]/', false],
    ['[::1]', 'http://[::1]/', true],
    ['[::1]:9000', 'http://[::1]:9000/', true],
    ['[::1]:9000', 'http://[::1]:9001/', false],
    ['0:0::1', 'http://[::1]/', true],
    ['fd00:ec2::1', 'http://[fd00:ec2::1]/', true],
    // IPv4, with and without a port
    ['127.0.0.1', 'http://127.0.0.1:8080/', true],
    ['127.0.0.1:8080', 'http://127.0.0.1:8080/', true],
    ['127.0.0.1:8080', 'http://127.0.0.1:8081/', false],
    // CIDRs: IP literal hosts inside them (names are not resolved for this)
    ['10.0.0.0/8', 'http://10.20.30.40/', true],
    ['10.0.0.0/8', 'http://11.0.0.1/', false],
    ['10.0.0.0/8', 'http://ten.example/', false],
    ['fd00::/8', 'http://[fd12::1]/', true],
    ['[fd00::]/8', 'http://[fd12::1]/', true],
    ['10.0.0.0/99', 'http://10.0.0.1/', false],
    // lists, comma or space separated
    ['localhost, 10.0.0.0/8 .svc,::1', 'http://[::1]/', true],
    ['localhost, 10.0.0.0/8 .svc,::1', 'http://api.ns.svc/', true],
    ['localhost, 10.0.0.0/8 .svc,::1', 'http://example.org/', false],
  ])('NO_PROXY=%s, %s: direct %s', (noProxy, url, direct) => {
    expect(bypassesProxy(parseNoProxy(noProxy), new URL(url))).toBe(direct);
  });
});
