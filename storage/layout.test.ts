import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyId, objectKey, shardOf, shortestObjectKey, unitKeyOwner, unitPrefix } from './layout.js';

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

describe('unitKeyOwner', () => {
  const long = 'x'.repeat(300);
  const ids = ['a', 'a.b', 'ü/%', '.', long, 'h-ab'];
  const owns = unitKeyOwner('2024/m', { has: (id) => ids.includes(id), all: () => ids });

  it.each(ids)('owns the keys of a task of the unit, whatever their type: %s', (id) => {
    expect(owns(objectKey(id, 'jpg', '2024/m'))).toBe(true);
    expect(owns(objectKey(id, 'bin', '2024/m'))).toBe(true);
  });

  it.each([
    ['an id not among the tasks', objectKey('b', 'jpg', '2024/m')],
    ["a long id's hash not among them", objectKey('y'.repeat(300), 'jpg', '2024/m')],
    ['another unit', objectKey('a', 'jpg', '2024/n')],
    ['a nested unit', objectKey('a', 'jpg', '2024/m/sub')],
    ['the wrong shard', `2024/m/${shardOf('a') === '00' ? '01' : '00'}/a.jpg`],
    ['no extension', `2024/m/${shardOf('a')}/a`],
    ['a bad escape', `2024/m/${shardOf('a')}/%E0.jpg`],
  ])('owns no key of %s', (_what, key) => {
    expect(owns(key)).toBe(false);
  });

  it('reads a unit-less key', () => {
    const root = unitKeyOwner(undefined, { has: (id) => id === 'a', all: () => ['a'] });
    expect(root(objectKey('a', 'png'))).toBe(true);
    expect(root(objectKey('a', 'png', 'm'))).toBe(false);
  });
});
