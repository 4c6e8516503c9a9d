import { describe, expect, it } from 'vitest';
import { isSecretParam, redactText, redactUrl } from './redact.js';

describe('redactUrl', () => {
  it.each([
    // untouched
    ['https://example.com/a/b.jpg', 'https://example.com/a/b.jpg'],
    ['https://example.com/a.jpg?w=100&h=50#top', 'https://example.com/a.jpg?w=100&h=50#top'],
    ['https://example.com/@user/a.png', 'https://example.com/@user/a.png'],
    ['https://example.com/a.jpg?Expires=1700000000&X-Amz-Date=20240101T000000Z', 'https://example.com/a.jpg?Expires=1700000000&X-Amz-Date=20240101T000000Z'],
    ['https://example.com/a.jpg?q=a%20b+c&keyword=x', 'https://example.com/a.jpg?q=a%20b+c&keyword=x'],
    // session ids, in the query and in the path (servlet URL rewriting)
    ['https://example.com/a.jpg?JSESSIONID=abc&w=1', 'https://example.com/a.jpg?JSESSIONID=REDACTED&w=1'],
    ['https://example.com/shop/a.jpg;jsessionid=ABC123?w=1', 'https://example.com/shop/a.jpg;jsessionid=REDACTED?w=1'],
    ['https://example.com/x;jsessionid=ABC/a.jpg', 'https://example.com/x;jsessionid=REDACTED/a.jpg'],
    ['https://example.com/a;v=2/b.jpg', 'https://example.com/a;v=2/b.jpg'],
    // userinfo
    ['https://user:pass@example.com/a.jpg', 'https://***@example.com/a.jpg'],
    ['https://user@example.com/a.jpg', 'https://***@example.com/a.jpg'],
    ['https://us%40er:p%3Ass@example.com/', 'https://***@example.com/'],
    ['http://a:b@c@example.com/x', 'http://***@example.com/x'],
    // signing and secret parameters, any case, values only
    [
      'https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101&X-Amz-Signature=abcdef&X-Amz-Security-Token=tok',
      'https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED',
    ],
    ['https://x/k?x-amz-signature=abc', 'https://x/k?x-amz-signature=REDACTED'],
    ['https://x/k?X%2DAmz%2DSignature=abc', 'https://x/k?X%2DAmz%2DSignature=REDACTED'],
    ['https://cdn.example/a.jpg?Expires=1&Signature=s&Key-Pair-Id=K1', 'https://cdn.example/a.jpg?Expires=1&Signature=REDACTED&Key-Pair-Id=K1'],
    ['https://storage.googleapis.com/b/o?GoogleAccessId=sa@p.iam&Expires=1&Signature=s', 'https://storage.googleapis.com/b/o?GoogleAccessId=REDACTED&Expires=1&Signature=REDACTED'],
    ['https://storage.googleapis.com/b/o?X-Goog-Credential=c&X-Goog-Signature=s', 'https://storage.googleapis.com/b/o?X-Goog-Credential=REDACTED&X-Goog-Signature=REDACTED'],
    ['https://acct.blob.core.windows.net/c/b?sv=2020&sig=abc%2B%3D', 'https://acct.blob.core.windows.net/c/b?sv=2020&sig=REDACTED'],
    ['https://api.example/i?token=t&access_token=a&key=k&api_key=z&apikey=y', 'https://api.example/i?token=REDACTED&access_token=REDACTED&key=REDACTED&api_key=REDACTED&apikey=REDACTED'],
    ['https://x/i?client_secret=s&password=p&sas_token=q', 'https://x/i?client_secret=REDACTED&password=REDACTED&sas_token=REDACTED'],
    ['https://x/i?a=1;sig=2;b=3', 'https://x/i?a=1;sig=REDACTED;b=3'],
    ['https://cdn.x/a.jpg?sign=1&hmac=2&jwt=3&hdnts=st%3D1~hmac%3D9&session=4', 'https://cdn.x/a.jpg?sign=REDACTED&hmac=REDACTED&jwt=REDACTED&hdnts=REDACTED&session=REDACTED'],
    ['https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA1&Expires=1&Signature=s', 'https://b.s3.amazonaws.com/k?AWSAccessKeyId=REDACTED&Expires=1&Signature=REDACTED'],
    ['https://x/i?design=a&signal=b&sessions_total=3', 'https://x/i?design=a&signal=b&sessions_total=3'],
    ['https://x/i?token', 'https://x/i?token'],
    ['https://x/i?token=', 'https://x/i?token=REDACTED'],
    // fragments carry OAuth tokens too
    ['https://x/cb#access_token=abc&state=1', 'https://x/cb#access_token=REDACTED&state=1'],
    // both
    ['https://u:p@x/a?Signature=s&w=1', 'https://***@x/a?Signature=REDACTED&w=1'],
    // a URL nested in a parameter's value, as is or percent-encoded (image proxies, redirectors)
    ['https://proxy/i?url=https://b/k?X-Amz-Signature=s', 'https://proxy/i?url=https://b/k?X-Amz-Signature=REDACTED'],
    [
      'https://o/redirect?n=1&to=http%3A%2F%2Fh%2Fx%3FX-Goog-Signature%3DGS%26X-Goog-Credential%3DGC%26w%3D1',
      'https://o/redirect?n=1&to=http%3A%2F%2Fh%2Fx%3FX-Goog-Signature%3DREDACTED%26X-Goog-Credential%3DREDACTED%26w%3D1',
    ],
    ['https://o/r?to=ftp%3A%2F%2Fu%3APW%40host%2Fx', 'https://o/r?to=ftp%3A%2F%2F***%40host%2Fx'],
    ['https://o/r?u=https%253A%252F%252Fh%252Fx%253Fsig%253DS', 'https://o/r?u=https%253A%252F%252Fh%252Fx%253Fsig%253DREDACTED'],
    ['https://o/r?state=a%3D1%26token%3DT', 'https://o/r?state=a%3D1%26token%3DREDACTED'],
    ['https://o/r?url=https%3A%2F%2Fh%2Fa.jpg%3Fw%3D1&q=a%20b', 'https://o/r?url=https%3A%2F%2Fh%2Fa.jpg%3Fw%3D1&q=a%20b'],
    ['https://o/r?mail=a%40b.c&x=y=z', 'https://o/r?mail=a%40b.c&x=y=z'],
    // other schemes
    ['s3://bucket/key.jpg?X-Amz-Signature=s', 's3://bucket/key.jpg?X-Amz-Signature=REDACTED'],
    // garbage: best effort, never throws
    ['', ''],
    ['not a url', 'not a url'],
    ['http://[broken/a?sig=1', 'http://[broken/a?sig=REDACTED'],
    ['http://us:er:pa/ss@host/a', 'http://***@host/a'],
    ['user:pass@host/path?token=1', '***@host/path?token=REDACTED'],
    ['%%%?key=%zz', '%%%?key=REDACTED'],
    ['?%E0%A4%A=1&sig=2', '?%E0%A4%A=1&sig=REDACTED'],
  ])('%s', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });

  it('never throws, whatever it is given', () => {
    for (const s of ['\u0000', '\ud800', 'http://\n@x', '#', '?', '@', '://@', 'a'.repeat(10_000)]) {
      expect(() => redactUrl(s)).not.toThrow();
    }
    expect(() => redactUrl(undefined as unknown as string)).not.toThrow();
  });
});

describe('isSecretParam', () => {
  it.each([
    ['X-Amz-Signature', true],
    ['X-AMZ-CREDENTIAL', true],
    ['x-amz-security-token', true],
    ['Signature', true],
    ['sig', true],
    ['token', true],
    ['access_token', true],
    ['key', true],
    ['GoogleAccessId', true],
    ['x-api-key', true],
    ['Expires', false],
    ['X-Amz-Date', false],
    ['X-Amz-Expires', false],
    ['keyword', false],
    ['monkey', false],
    ['w', false],
  ])('%s → %s', (name, secret) => {
    expect(isSecretParam(name)).toBe(secret);
  });
});

describe('redactText', () => {
  it.each([
    ['GET https://u:p@x/a?sig=1 failed', 'GET https://***@x/a?sig=REDACTED failed'],
    ['redirect to /next?token=abc refused', 'redirect to /next?token=REDACTED refused'],
    ['plain message, user@example.com', 'plain message, user@example.com'],
    ['"http://x/?key=1" and s3://b/k?X-Amz-Signature=2', '"http://x/?key=REDACTED" and s3://b/k?X-Amz-Signature=REDACTED'],
  ])('%s', (input, expected) => {
    expect(redactText(input)).toBe(expected);
  });
});
