import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyId, objectKey, shardOf, shortestObjectKey, unitPrefix } from './layout.js';

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

describe('key layout', () => {
  it.each([
    ['abc', 'abc'],
    ['A-Z_a.z~0', 'A-Z_a.z~0'],
    ['a b', 'a%20b'],
    ['a/b', 'a%2Fb'],
    ['../x', '..%2Fx'],
    ['.', '%2E'],
    ['..', '%2E%2E'],
    ['é', '%C3%A9'],
    ['100%', '100%25'],
    ['ctl\u0001', 'ctl%01'],
  ])('keyId(%j) = %j', (id, want) => expect(keyId(id)).toBe(want));

  it('hashes ids whose encoded form exceeds 200 bytes', () => {
    expect(keyId('a'.repeat(200))).toBe('a'.repeat(200));
    const long = '/'.repeat(67); // 201 encoded bytes
    expect(keyId(long)).toBe('h-' + createHash('sha256').update(long).digest('hex'));
  });

  it('shards by the first two hex characters of SHA-1', () => {
    expect(shardOf('abc')).toBe(sha1('abc').slice(0, 2));
  });

  it('builds <unit>/<shard>/<key-id>.<ext> and never climbs out of the unit', () => {
    expect(objectKey('x y', 'jpg', 'batch/2024')).toBe(`batch/2024/${sha1('x y').slice(0, 2)}/x%20y.jpg`);
    expect(objectKey('abc', 'png')).toBe(`${sha1('abc').slice(0, 2)}/abc.png`);
    for (const id of ['../../etc/passwd', '/abs', '..', '.', 'a/../../b']) {
      const segs = objectKey(id, 'jpg', 'u').split('/');
      expect(segs).toHaveLength(3);
      expect(segs.every((s) => s !== '..' && s !== '.' && s !== '')).toBe(true);
    }
  });

  it('encodes unit segments like ids', () => expect(unitPrefix('a b/..')).toBe('a%20b/%2E%2E'));

  it.each([
    ['x y', 'batch/2024'],
    ['/'.repeat(67), 'u'],
    ['abc', undefined],
  ])('every key of %j starts with its shortest key, the one without an extension', (id, unit) => {
    const shortest = shortestObjectKey(id, unit);
    expect(shortest.endsWith('.')).toBe(true);
    for (const ext of ['jpg', 'webp', 'Z']) expect(objectKey(id, ext, unit)).toBe(shortest + ext);
  });
});
