// Unit tests of the pieces of http.ts that need no server; the client itself is exercised
// against a real origin process in worker/download.test.ts.
import { describe, expect, it } from 'vitest';
import { createHttpClient, headerValue, originHeadersFor, originKey, parseHttpUrl } from './http.js';

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

describe('--origin-header hosts', () => {
  it.each([
    ['img.example.com', 'img.example.com'],
    ['IMG.Example.COM', 'img.example.com'],
    ['img.example.com.', 'img.example.com'],
    ['img.example.com:8443', 'img.example.com:8443'],
    ['img.example.com.:0443', 'img.example.com:443'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['::1', '[::1]'],
    ['0:0::1', '[::1]'],
    ['[0:0::1]:8080', '[::1]:8080'],
    ['0x7f.1', '127.0.0.1'],
  ])('%s is looked up as %s', (given, key) => {
    expect(originKey(given)).toBe(key);
  });

  const headers = (keys: string[]) => new Map(keys.map((k, i) => [originKey(k), [[`X-${i}`, k] as const]]));
  it.each<[string[], string, string[]]>([
    // keys given, URL, the keys whose header the URL gets
    [['example.com'], 'https://example.com/a', ['example.com']],
    [['Example.COM.'], 'https://example.com./a', ['Example.COM.']],
    [['example.com:443'], 'https://example.com/a', ['example.com:443']],
    [['example.com:443'], 'https://example.com:443/a', ['example.com:443']],
    [['example.com:80'], 'http://example.com/a', ['example.com:80']],
    [['example.com:443'], 'http://example.com/a', []],
    [['example.com:8443'], 'https://example.com/a', []],
    [['::1', '[::1]:9000'], 'http://[0::1]:9000/a', ['::1', '[::1]:9000']],
    [['bücher.example'], 'https://BÜCHER.example/a', ['bücher.example']],
    [['a.example.com'], 'https://b.example.com/a', []],
  ])('%j, %s', (keys, url, sent) => {
    expect(Object.values(originHeadersFor(headers(keys), new URL(url)))).toEqual(sent);
  });
});
