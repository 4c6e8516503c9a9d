// Classification only: nothing here connects anywhere, and the lookups go to names that
// resolve locally (localhost) or to a stubbed resolver.
import { describe, expect, it } from 'vitest';
import {
  BlockedAddressError,
  checkHost,
  checkLiteralHost,
  classifyAddress,
  createGuard,
  guardedLookup,
  parseIp,
  type AddressKind,
} from './netguard.js';

describe('classifyAddress', () => {
  it.each<[string, AddressKind]>([
    // IPv4
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['93.184.216.34', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'this-network'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['169.254.1.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['169.254.0.23', 'metadata'],
    ['169.254.42.42', 'metadata'],
    ['192.0.0.192', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['168.63.129.17', 'public'],
    ['192.0.0.170', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['198.18.0.1', 'reserved'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    // IPv6
    ['2606:4700::1', 'public'],
    ['2001:4860:4860::8888', 'public'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456:789a::1', 'unique-local'],
    ['fd00:ec2::254', 'metadata'],
    ['fd20:ce::254', 'metadata'],
    ['fd00:ec2::23', 'metadata'],
    ['fd00:c1::a9fe:a9fe', 'metadata'],
    ['fd00:42::42', 'metadata'],
    ['fd00:a9fe:a9fe::1', 'metadata'],
    ['fe80::a9fe:a9fe', 'metadata'],
    ['fe80::a9fe:a9fe%eth0', 'metadata'],
    ['fd00:42::43', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'private'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['100::1', 'reserved'],
    ['4000::1', 'reserved'],
    ['::7f00:1', 'reserved'],
    // IPv4 inside IPv6: classified by the IPv4 address they reach
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:8.8.8.8', 'public'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['::ffff:0:127.0.0.1', 'loopback'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::c0a8:101', 'private'],
    ['64:ff9b::808:808', 'public'],
    ['64:ff9b::6464:64c8', 'metadata'],
    ['2002:7f00:1::1', 'loopback'],
    ['2002:a9fe:a9fe::', 'metadata'],
    ['2002:808:808::1', 'public'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'loopback'],
    ['64:ff9b:0:0:1::a9fe:a9fe', 'reserved'], // in 64:ff9b::/32 but not the /96: no IPv4 there
    // Local-use NAT64 (64:ff9b:1::/48): the IPv4 address sits where the operator's prefix
    // length puts it (RFC 6052's /48, /56, /64 or /96 format), so each place counts, and the
    // prefix's own kind (reserved) stays when every candidate is public.
    ['64:ff9b:1::1', 'this-network'], // 0.0.0.1 at /96
    ['64:ff9b:1::a9fe:a9fe', 'metadata'], // /96
    ['64:ff9b:1:ab::a9fe:a9fe', 'metadata'], // /96 under a longer local prefix
    ['64:ff9b:1:0:a9:fea9:fe00:0', 'metadata'], // /64
    ['64:ff9b:1:a9:fe:a9fe::', 'metadata'], // /56
    ['64:ff9b:1:a9fe:a9:fe00::', 'metadata'], // /48
    ['64:ff9b:1:6464:64:c800::', 'metadata'], // /48, 100.100.100.200
    ['64:ff9b:1:ab::7f00:1', 'loopback'],
    ['64:ff9b:1:ab::a00:1', 'private'],
    ['64:ff9b:1:808:8:808:800:0', 'reserved'], // 8.8.8.8 at /48, /56 and /64
    // Not addresses at all: refused, never guessed
    ['', 'reserved'],
    ['localhost', 'reserved'],
    ['0x7f.1', 'reserved'],
    ['1.2.3', 'reserved'],
    ['[::1]', 'loopback'],
  ])('%s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });
});

describe('parseIp', () => {
  it.each([
    ['1.2.3.4', [1, 2, 3, 4]],
    ['::1', [...Array<number>(15).fill(0), 1]],
    ['1::', [0, 1, ...Array<number>(14).fill(0)]],
    ['::ffff:1.2.3.4', [...Array<number>(10).fill(0), 255, 255, 1, 2, 3, 4]],
    ['1:2:3:4:5:6:7:8', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
  ])('%s', (ip, bytes) => {
    expect(Array.from(parseIp(ip) ?? [])).toEqual(bytes);
  });

  it.each(['1.2.3.256', '01.2.3.4', '1:2:3:4:5:6:7:8:9', 'gggg::1', 'example.com'])('%s is not an address', (s) => {
    expect(parseIp(s)).toBeNull();
  });
});

describe('guard policy', () => {
  const strict = createGuard({ allowPrivateNetwork: false });
  const open = createGuard({ allowPrivateNetwork: true });
  const pinned = createGuard({ allowPrivateNetwork: false, allowCidrs: ['10.1.0.0/16', 'fd00:1::/32'] });

  it.each<[string, boolean, boolean, boolean]>([
    // address, allowed by strict, by allowPrivateNetwork, by allowCidrs 10.1/16 + fd00:1::/32
    ['8.8.8.8', true, true, true],
    ['2606:4700::1', true, true, true],
    ['127.0.0.1', false, true, false],
    ['10.1.2.3', false, true, true],
    ['::ffff:10.1.2.3', false, true, true],
    ['10.2.0.1', false, true, false],
    ['fd00:1::5', false, true, true],
    ['fd00:2::5', false, true, false],
    ['100.64.0.1', false, true, false],
    ['fe80::1', false, true, false],
    ['0.0.0.0', false, true, false],
    ['255.255.255.255', false, true, false],
    ['169.254.169.254', false, false, false],
    ['fd00:ec2::254', false, false, false],
    ['fd20:ce::254', false, false, false],
    ['100.100.100.200', false, false, false],
    // Every cloud's own metadata address, refused even where its block is allowed.
    ['169.254.0.23', false, false, false],
    ['169.254.42.42', false, false, false],
    ['168.63.129.16', false, false, false],
    ['fd00:c1::a9fe:a9fe', false, false, false],
    ['fd00:42::42', false, false, false],
    ['fd00:a9fe:a9fe::1', false, false, false],
    ['fe80::a9fe:a9fe', false, false, false],
    ['::ffff:169.254.169.254', false, false, false],
    ['64:ff9b::a9fe:a9fe', false, false, false],
    ['64:ff9b::808:808', true, true, true],
    // Local-use NAT64: allowed only with allowPrivateNetwork (or its own CIDR), and never
    // when any place the prefix could put an IPv4 address names a metadata endpoint.
    ['64:ff9b:1:ab::5db8:d822', false, true, false],
    ['64:ff9b:1:ab::a01:203', false, true, false],
    ['64:ff9b:1::a9fe:a9fe', false, false, false],
    ['64:ff9b:1:a9fe:a9:fe00::', false, false, false],
    ['64:ff9b:1:0:a9:fea9:fe00:0', false, false, false],
  ])('%s: strict %s, allowPrivateNetwork %s, allowCidrs %s', (ip, a, b, c) => {
    expect([strict.check(ip) === null, open.check(ip) === null, pinned.check(ip) === null]).toEqual([a, b, c]);
  });

  it('gives the same verdicts when asked again (allowed addresses are remembered)', () => {
    for (const g of [strict, open, pinned]) {
      const first = ['8.8.8.8', '127.0.0.1', '10.1.2.3', '169.254.169.254', '::1'].map((ip) => g.check(ip)?.kind ?? null);
      for (let i = 0; i < 3; i++) expect(['8.8.8.8', '127.0.0.1', '10.1.2.3', '169.254.169.254', '::1'].map((ip) => g.check(ip)?.kind ?? null)).toEqual(first);
    }
    expect(open.check('169.254.169.254')?.kind).toBe('metadata');
    // Past the memo's size it starts afresh; verdicts are unchanged.
    for (let i = 0; i < 1500; i++) expect(open.check(`10.0.${i >> 8}.${i & 255}`)).toBeNull();
    expect(open.check('169.254.169.254')?.kind).toBe('metadata');
    expect(strict.check('10.0.0.1')?.kind).toBe('private');
  });

  it('allowed CIDRs admit a local-use NAT64 address by its own prefix, not by one IPv4 reading', () => {
    const byV4 = createGuard({ allowPrivateNetwork: false, allowCidrs: ['10.1.0.0/16'] });
    expect(byV4.check('64:ff9b:1:ab::a01:203')?.kind).toBe('private');
    const byPrefix = createGuard({ allowPrivateNetwork: false, allowCidrs: ['64:ff9b:1:ab::/96'] });
    expect(byPrefix.check('64:ff9b:1:ab::a01:203')).toBeNull();
    expect(byPrefix.check('64:ff9b:1:ab::a9fe:a9fe')?.kind).toBe('metadata');
  });

  it('metadata stays refused even when its CIDR is allowed explicitly', () => {
    const g = createGuard({ allowPrivateNetwork: true, allowCidrs: ['169.254.0.0/16'] });
    expect(g.check('169.254.169.254')?.kind).toBe('metadata');
  });

  it('rejects a malformed CIDR at construction', () => {
    expect(() => createGuard({ allowPrivateNetwork: false, allowCidrs: ['10.0.0.0/33'] })).toThrow(/prefix/);
    expect(() => createGuard({ allowPrivateNetwork: false, allowCidrs: ['nope/8'] })).toThrow(/not an IP/);
  });

  it.each<[string, string | null]>([
    ['127.0.0.1', 'loopback'],
    ['[::1]', 'loopback'],
    ['[::ffff:a9fe:a9fe]', 'metadata'],
    ['8.8.8.8', null],
    ['example.com', null], // a name: decided at lookup time, not here
  ])('literal host %s → %s', (host, kind) => {
    expect(checkLiteralHost(strict, host)?.kind ?? null).toBe(kind);
  });

  it('refusals carry a stable code and the host', () => {
    const e = strict.check('10.0.0.1', 'internal.example');
    expect(e).toBeInstanceOf(BlockedAddressError);
    expect([e?.code, e?.host, e?.address, e?.kind]).toEqual(['FERRY_BLOCKED_ADDRESS', 'internal.example', '10.0.0.1', 'private']);
  });
});

describe('guardedLookup and checkHost (resolving localhost only)', () => {
  const strict = createGuard({ allowPrivateNetwork: false });
  const open = createGuard({ allowPrivateNetwork: true });

  const lookup = (g: typeof strict, all: boolean) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
      guardedLookup(g)('localhost', { all }, (err, address) => resolve({ err, address })),
    );

  it('refuses a name that resolves to loopback, before any connect', async () => {
    for (const all of [true, false]) {
      const { err } = await lookup(strict, all);
      expect(err?.code).toBe('FERRY_BLOCKED_ADDRESS');
    }
  });

  it('returns the checked addresses in the shape net.connect asked for', async () => {
    const many = await lookup(open, true);
    expect(many.err).toBeNull();
    expect(Array.isArray(many.address)).toBe(true);
    const one = await lookup(open, false);
    expect(typeof one.address).toBe('string');
  });

  it('checkHost refuses literals and names alike', async () => {
    await expect(checkHost(strict, '127.0.0.1')).rejects.toMatchObject({ code: 'FERRY_BLOCKED_ADDRESS' });
    await expect(checkHost(strict, 'localhost')).rejects.toMatchObject({ code: 'FERRY_BLOCKED_ADDRESS' });
    await expect(checkHost(strict, '[::1]')).rejects.toMatchObject({ kind: 'loopback' });
    await expect(checkHost(open, 'localhost')).resolves.not.toHaveLength(0);
    await expect(checkHost(strict, '8.8.8.8')).resolves.toEqual([{ address: '8.8.8.8', family: 4 }]);
  });
});
