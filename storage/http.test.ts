// Unit tests of the pieces of http.ts that need no server; the client itself is exercised
// against a real origin process in worker/download.test.ts.
import { describe, expect, it } from 'vitest';
import { createHttpClient, headerValue, parseHttpUrl } from './http.js';

describe('parseHttpUrl', () => {
  it.each([
    ['http://example.com/a.png', 'http://example.com/a.png'],
    ['HTTPS://EXAMPLE.com:443/a', 'https://example.com/a'],
    ['http://2130706433/', 'http://127.0.0.1/'],
    ['http://0x7f.1/', 'http://127.0.0.1/'],
    ['http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/'],
  ])('%s → %s', (input, href) => {
    expect(parseHttpUrl(input).href).toBe(href);
  });

  it.each([
    ['no scheme', 'FERRY_BAD_URL'],
    ['http://', 'FERRY_BAD_URL'],
    ['http://exa mple.com/', 'FERRY_BAD_URL'],
    ['file:///etc/passwd', 'FERRY_UNSUPPORTED_SCHEME'],
    ['gopher://x/', 'FERRY_UNSUPPORTED_SCHEME'],
    ['data:image/png;base64,AAAA', 'FERRY_UNSUPPORTED_SCHEME'],
  ])('%s → %s', (input, code) => {
    expect(() => parseHttpUrl(input)).toThrow(expect.objectContaining({ code }));
  });

  it('resolves a relative redirect against the current URL and redacts in messages', () => {
    expect(parseHttpUrl('../b.png?x=1', new URL('http://h/a/c/d.png')).href).toBe('http://h/a/b.png?x=1');
    expect(() => parseHttpUrl('ftp://u:secret@h/x?sig=abc')).toThrow(/ftp:\/\/\*\*\*@h\/x\?sig=REDACTED/);
  });
});

describe('headerValue', () => {
  it('takes the first of repeated headers, null when absent', () => {
    expect(headerValue({ etag: ['"a"', '"b"'] }, 'ETag')).toBe('"a"');
    expect(headerValue({ 'content-type': 'image/png' }, 'content-type')).toBe('image/png');
    expect(headerValue({}, 'etag')).toBeNull();
  });
});

describe('createHttpClient', () => {
  it('resolves defaults from DESIGN.md', async () => {
    const c = createHttpClient({ proxy: 'none' });
    expect(c.options).toMatchObject({
      timeoutMs: 30_000,
      minRate: 1024,
      minRateWindowMs: 60_000,
      maxRedirects: 5,
      allowPrivateNetwork: false,
      connectionsPerHost: 64,
      proxy: null,
    });
    await c.close();
  });

  it('reads proxies from the environment only when asked (default)', async () => {
    const saved = { ...process.env };
    try {
      process.env.HTTPS_PROXY = 'http://127.0.0.1:9';
      process.env.NO_PROXY = 'internal.example';
      delete process.env.https_proxy;
      delete process.env.no_proxy;
      delete process.env.HTTP_PROXY;
      delete process.env.http_proxy;
      const c = createHttpClient();
      expect(c.options.proxy).toEqual({ httpsProxy: 'http://127.0.0.1:9', noProxy: 'internal.example' });
      const n = createHttpClient({ proxy: 'none' });
      expect(n.options.proxy).toBeNull();
      await Promise.all([c.close(), n.close()]);
    } finally {
      process.env = saved;
    }
  });
});
