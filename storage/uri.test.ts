import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UriError, objectUrlScheme, parseObjectUrl, parsePlace, placeContains, uriOf } from './uri.js';

describe('object URLs of manifests', () => {
  it.each([
    ['s3://src/a/b.jpg', { scheme: 's3', bucket: 'src', key: 'a/b.jpg' }],
    ['s3://src//lead.png', { scheme: 's3', bucket: 'src', key: '/lead.png' }],
    ['s3://src/a//b.png', { scheme: 's3', bucket: 'src', key: 'a//b.png' }],
    ['s3://src/dir/', { scheme: 's3', bucket: 'src', key: 'dir/' }],
    ['S3://src/a b+c%20?#.jpg', { scheme: 's3', bucket: 'src', key: 'a b+c%20?#.jpg' }],
    ['gs://src///x', { scheme: 'gs', bucket: 'src', key: '//x' }],
  ])('reads %s with its key verbatim, as the aws and gcloud CLIs do', (url, want) => expect(parseObjectUrl(url)).toEqual(want));

  it.each(['s3://src', 's3://src/', 'file:///tmp/x', 'http://host/a', 's3://Bad_Bucket/x'])('refuses %j', (url) => expect(() => parseObjectUrl(url)).toThrow(UriError));

  it.each([
    ['s3://src/k', 's3'],
    ['GS://src/k', 'gs'],
    // leading blanks, which the URL parser ignores, do not hide the store (its credentials are checked before the run)
    ['  s3://src/k', 's3'],
    ['\u0001gs://src/k', 'gs'],
    ['http://h/s3://x', null],
    ['file:///s3://x', null],
  ])('the store of %j is %s', (url, want) => expect(objectUrlScheme(url)).toBe(want));
});

describe('places', () => {
  it.each([
    ['s3://meta/manifests', { scheme: 's3', bucket: 'meta', prefix: 'manifests/' }],
    ['s3://meta/manifests/', { scheme: 's3', bucket: 'meta', prefix: 'manifests/' }],
    ['gs://meta-out', { scheme: 'gs', bucket: 'meta-out', prefix: '' }],
    ['gs://meta-out//a//', { scheme: 'gs', bucket: 'meta-out', prefix: 'a//' }],
    ['file:///tmp/x', { scheme: 'file', path: '/tmp/x' }],
    ['rel/dir', { scheme: 'file', path: path.resolve('/cwd', 'rel/dir') }],
  ])('parses %s', (uri, want) => expect(parsePlace(uri, '/cwd')).toEqual(want));

  it.each(['ftp://x/y', 'http://host/a', '', ' ', '\t', 's3://Bad_Bucket/x'])('refuses %j', (uri) => expect(() => parsePlace(uri)).toThrow(UriError));

  it('prints URIs as readers expect', () => {
    expect(uriOf({ scheme: 's3', bucket: 'b1', prefix: 'p/' }, 'u/ab/a%2Fb.jpg')).toBe('s3://b1/p/u/ab/a%2Fb.jpg');
    expect(uriOf({ scheme: 'file', path: '/o' }, 'u/ab/a%2Fb.jpg')).toBe('file:///o/u/ab/a%252Fb.jpg');
  });

  it('knows when one place lies inside another', () => {
    const f = (p: string) => parsePlace(p, '/w');
    expect(placeContains(f('m'), f('m/out'))).toBe(true);
    expect(placeContains(f('m'), f('m2'))).toBe(false);
    expect(placeContains(f('s3://mmm/a'), f('s3://mmm/a/b'))).toBe(true);
    expect(placeContains(f('s3://mmm/a'), f('s3://mmm/ab'))).toBe(false);
    // A name that starts with two dots is inside; a climb is not.
    expect(placeContains(f('m'), f('m/..out'))).toBe(true);
    expect(placeContains(f('m'), f('m/../out'))).toBe(false);
    expect(placeContains(f('m'), f('m'))).toBe(true);
  });

  it('sees through a symlink into the prefix', () => {
    const base = mkdtempSync(path.join(tmpdir(), 'ferry-uri-'));
    try {
      mkdirSync(path.join(base, 'm'));
      mkdirSync(path.join(base, 'o'));
      symlinkSync(path.join(base, 'm'), path.join(base, 'o', 'link'));
      expect(placeContains(parsePlace(path.join(base, 'm')), parsePlace(path.join(base, 'o', 'link', 'renewed')))).toBe(true);
      expect(placeContains(parsePlace(path.join(base, 'o', 'link')), parsePlace(path.join(base, 'm', 'x')))).toBe(true);
      expect(placeContains(parsePlace(path.join(base, 'm')), parsePlace(path.join(base, 'o', 'elsewhere')))).toBe(false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
