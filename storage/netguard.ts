/**
 * Network guard: manifests are untrusted, so every address ferry connects to for them is
 * classified first (DESIGN.md, "Network safety"). The check runs inside the socket's own
 * DNS lookup (`guardedLookup`), so the address checked is the address connected to and
 * there is no DNS-rebinding window between a check and the connect.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';

export type AddressKind =
  | 'public'
  | 'loopback'
  | 'private'
  | 'unique-local'
  | 'cgnat'
  | 'link-local'
  | 'unspecified'
  | 'this-network'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'reserved'
  | 'metadata';

export type GuardPolicy = {
  /** Allow every kind except `metadata` (`--allow-private-network`). */
  allowPrivateNetwork: boolean;
  /** CIDRs allowed even without allowPrivateNetwork (e.g. one internal origin). Never metadata. */
  allowCidrs?: readonly string[];
};

export const BLOCKED_ADDRESS_CODE = 'FERRY_BLOCKED_ADDRESS';

/** Thrown (or passed to a lookup callback) when the guard refuses an address. */
export class BlockedAddressError extends Error {
  readonly code = BLOCKED_ADDRESS_CODE;
  constructor(
    readonly host: string,
    readonly address: string,
    readonly kind: AddressKind,
  ) {
    super(`refused ${kind} address ${address}` + (host === address ? '' : ` for ${host}`));
    this.name = 'BlockedAddressError';
  }
}

export type Cidr = { bytes: Uint8Array; bits: number };
type Rule = Cidr & { kind: AddressKind };

/** Parses a textual IPv4 (canonical dotted quad) or IPv6 address to 4 or 16 bytes. */
export function parseIp(text: string): Uint8Array | null {
  const s = stripBrackets(text);
  if (isIP(s) === 4) return parseV4(s);
  return parseV6(s);
}

function stripBrackets(s: string): string {
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}

function parseV4(s: string): Uint8Array | null {
  if (isIP(s) !== 4) return null;
  return Uint8Array.from(s.split('.').map(Number));
}

function parseV6(input: string): Uint8Array | null {
  const zone = input.indexOf('%');
  let s = zone >= 0 ? input.slice(0, zone) : input;
  if (isIP(s) !== 6) return null;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    // A dotted-quad tail (::ffff:1.2.3.4) becomes two hex groups.
    const v4 = parseV4(s.slice(lastColon + 1));
    if (!v4) return null;
    const hi = (((v4[0] ?? 0) << 8) | (v4[1] ?? 0)).toString(16);
    const lo = (((v4[2] ?? 0) << 8) | (v4[3] ?? 0)).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const halves = s.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const zeros = halves.length > 1 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<string>(zeros).fill('0'), ...tail];
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

function startsWith(b: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((v, i) => b[i] === v);
}

/**
 * The IPv4 addresses an IPv6 address may carry and be routed to, most likely first (empty
 * when it wraps none): IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96), NAT64
 * (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32, client address inverted) carry one.
 * Checking the wrapper alone would let ::ffff:127.0.0.1 or 64:ff9b::a9fe:a9fe reach what
 * their IPv4 form names. The local-use NAT64 prefix (64:ff9b:1::/48, RFC 8215) is one the
 * operator cuts a translator's prefix from, /48 to /96, and RFC 6052 puts the IPv4 address
 * at a different place for each length (skipping the 'u' octet, bits 64–71): which one the
 * translator uses cannot be told from the address, so each place is a candidate.
 */
export function embeddedIpv4s(b: Uint8Array): Uint8Array[] {
  if (b.length !== 16) return [];
  const z = (n: number) => Array<number>(n).fill(0);
  if (startsWith(b, [...z(10), 0xff, 0xff])) return [b.slice(12)];
  if (startsWith(b, [...z(8), 0xff, 0xff, 0, 0])) return [b.slice(12)];
  if (startsWith(b, [0, 0x64, 0xff, 0x9b, ...z(8)])) return [b.slice(12)];
  if (isLocalUseNat64(b)) {
    const at = (...i: number[]) => Uint8Array.from(i, (j) => b[j] ?? 0);
    // RFC 6052's /96, /64, /56 and /48 formats.
    return [b.slice(12), at(9, 10, 11, 12), at(7, 9, 10, 11), at(6, 7, 9, 10)];
  }
  if (startsWith(b, [0x20, 0x02])) return [b.slice(2, 6)];
  if (startsWith(b, [0x20, 0x01, 0, 0])) return [b.slice(12).map((x) => x ^ 0xff)];
  return [];
}

function isLocalUseNat64(b: Uint8Array): boolean {
  return b.length === 16 && startsWith(b, [0, 0x64, 0xff, 0x9b, 0, 1]);
}

/**
 * The addresses whose kinds decide an address's fate: the IPv4 addresses it wraps, if any,
 * else itself. A local-use NAT64 address also keeps its own (reserved) kind: its prefix's
 * translator is the operator's, so it is never taken for public, even when every candidate
 * IPv4 address is.
 */
function readings(b: Uint8Array): Uint8Array[] {
  const inner = embeddedIpv4s(b);
  if (inner.length === 0) return [b];
  return isLocalUseNat64(b) ? [...inner, b] : inner;
}

export function parseCidr(text: string): Cidr {
  const [addr = '', bitsText] = text.split('/');
  const bytes = parseIp(addr);
  if (!bytes) throw new Error(`not an IP address in CIDR: ${text}`);
  const bits = bitsText === undefined ? bytes.length * 8 : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > bytes.length * 8) {
    throw new Error(`bad prefix length in CIDR: ${text}`);
  }
  return { bytes, bits };
}

export function inCidr(b: Uint8Array, c: Cidr): boolean {
  if (b.length !== c.bytes.length) return false;
  for (let bit = 0; bit < c.bits; bit += 8) {
    const take = Math.min(8, c.bits - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    const i = bit / 8;
    if (((b[i] ?? 0) & mask) !== ((c.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

function rules(list: ReadonlyArray<readonly [string, AddressKind]>): Rule[] {
  return list.map(([cidr, kind]) => ({ ...parseCidr(cidr), kind }));
}

// First match wins, so exact and narrow entries come before the blocks that hold them.
// Cloud metadata endpoints, plus the ECS/EKS credential endpoints next to them. Each one is
// refused even under --allow-private-network, so every cloud's own address is listed, not
// only the common 169.254.169.254: a link-local or unique-local one elsewhere would be
// reachable there.
const V4_RULES = rules([
  ['169.254.169.254/32', 'metadata'], // AWS, GCP, Azure, OCI, OpenStack, DigitalOcean, Linode, …
  ['169.254.170.2/32', 'metadata'], // AWS ECS task credentials
  ['169.254.170.23/32', 'metadata'], // AWS EKS Pod Identity
  ['169.254.0.23/32', 'metadata'], // Tencent Cloud (metadata.tencentyun.com)
  ['169.254.42.42/32', 'metadata'], // Scaleway
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud
  ['192.0.0.192/32', 'metadata'], // Oracle Cloud Classic
  ['168.63.129.16/32', 'metadata'], // Azure WireServer (a public address, refused all the same)
  ['0.0.0.0/32', 'unspecified'],
  ['0.0.0.0/8', 'this-network'],
  ['10.0.0.0/8', 'private'],
  ['172.16.0.0/12', 'private'],
  ['192.168.0.0/16', 'private'],
  ['127.0.0.0/8', 'loopback'],
  ['100.64.0.0/10', 'cgnat'],
  ['169.254.0.0/16', 'link-local'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'documentation'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['198.18.0.0/15', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
]);

// Only global unicast (2000::/3) is public; anything unlisted outside it is reserved.
const V6_RULES = rules([
  ['fd00:ec2::254/128', 'metadata'], // AWS
  ['fd00:ec2::23/128', 'metadata'], // AWS EKS Pod Identity
  ['fd20:ce::254/128', 'metadata'], // GCE's IPv6 metadata server
  ['fd00:c1::a9fe:a9fe/128', 'metadata'], // Oracle Cloud (OCI)
  ['fd00:42::42/128', 'metadata'], // Scaleway
  ['fd00:a9fe:a9fe::1/128', 'metadata'], // Akamai / Linode
  ['fe80::a9fe:a9fe/128', 'metadata'], // OpenStack
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/8', 'reserved'],
  ['64:ff9b:1::/48', 'reserved'],
  ['100::/64', 'reserved'],
  ['2001:db8::/32', 'documentation'],
  ['2001::/23', 'reserved'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'],
  ['ff00::/8', 'multicast'],
  ['2000::/3', 'public'],
]);

function classifyBytes(b: Uint8Array): AddressKind {
  const table = b.length === 4 ? V4_RULES : V6_RULES;
  const hit = table.find((r) => inCidr(b, r));
  if (hit) return hit.kind;
  return b.length === 4 ? 'public' : 'reserved';
}

/** The kind that decides among several readings: metadata first, then any refused kind. */
function severest(kinds: readonly AddressKind[]): AddressKind {
  if (kinds.includes('metadata')) return 'metadata';
  return kinds.find((k) => k !== 'public') ?? 'public';
}

/**
 * What an address is. IPv6 wrappers of IPv4 are classified by the IPv4 address they carry
 * (by the severest of the candidates, for a local-use NAT64 address); a metadata address is
 * `metadata` in either form. Unparseable text is `reserved`.
 */
export function classifyAddress(ip: string): AddressKind {
  const b = parseIp(ip);
  if (!b) return 'reserved';
  const outer = classifyBytes(b);
  if (outer === 'metadata') return outer;
  return severest(readings(b).map(classifyBytes));
}

/** A compiled policy: CIDRs parsed once. */
export type Guard = {
  readonly policy: GuardPolicy;
  /** The refusal for one resolved or literal address, or null when allowed. */
  check(address: string, host?: string): BlockedAddressError | null;
};

/** Allowed addresses a guard remembers: every request checks its origin's literal address again. */
const MEMO_SIZE = 1024;

export function createGuard(policy: GuardPolicy): Guard {
  const allow = (policy.allowCidrs ?? []).map(parseCidr);
  // The verdict depends on the address alone (the policy is fixed): an allowed one is
  // remembered, so the parse and the classification run once per address, not per request.
  const allowed = new Set<string>();
  const decide = (address: string, host: string): BlockedAddressError | null => {
    const kind = classifyAddress(address);
    if (kind === 'public') return null;
    if (kind === 'metadata') return new BlockedAddressError(host, address, kind);
    if (policy.allowPrivateNetwork) return null;
    // Allowed CIDRs admit the address itself, or every refused address it may reach.
    const b = parseIp(address);
    const allowedCidr = (x: Uint8Array) => allow.some((c) => inCidr(x, c));
    const refused = b ? readings(b).filter((x) => classifyBytes(x) !== 'public') : [];
    return b && (allowedCidr(b) || (refused.length > 0 && refused.every(allowedCidr))) ? null : new BlockedAddressError(host, address, kind);
  };
  const check = (address: string, host = address): BlockedAddressError | null => {
    if (allowed.has(address)) return null;
    const refusal = decide(address, host);
    if (refusal === null) {
      if (allowed.size >= MEMO_SIZE) allowed.clear();
      allowed.add(address);
    }
    return refusal;
  };
  return { policy, check };
}

/** The refusal for a URL hostname that is an IP literal ([v6] included), else null. */
export function checkLiteralHost(guard: Guard, hostname: string): BlockedAddressError | null {
  const bare = stripBrackets(hostname);
  return isIP(bare.split('%')[0] ?? '') ? guard.check(bare, hostname) : null;
}

/** Every address of a name, refused as a whole if any one of them is disallowed. */
function resolveChecked(
  guard: Guard,
  hostname: string,
  options: LookupOptions,
  done: (err: NodeJS.ErrnoException | null, addrs: LookupAddress[]) => void,
): void {
  dnsLookup(hostname, { family: options.family ?? 0, hints: options.hints ?? 0, all: true }, (err, addrs) => {
    if (err) return done(err, []);
    if (addrs.length === 0) {
      return done(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
    }
    for (const a of addrs) {
      const refusal = guard.check(a.address, hostname);
      if (refusal) return done(refusal, []);
    }
    done(null, addrs);
  });
}

/**
 * A `lookup` for net/tls.connect (undici's `connect.lookup`): the socket connects only to
 * addresses this function checked, before any packet is sent to them.
 */
export function guardedLookup(guard: Guard): LookupFunction {
  return (hostname, options, callback) => {
    resolveChecked(guard, hostname, options, (err, addrs) => {
      if (err) return callback(err, '');
      const first = addrs[0] as LookupAddress;
      if (options.all) callback(null, addrs);
      else callback(null, first.address, first.family);
    });
  };
}

/**
 * Resolves and checks a host without connecting, for requests that go through a proxy (the
 * proxy resolves again on its side; that resolution is the operator's to trust).
 */
export function checkHost(guard: Guard, hostname: string): Promise<LookupAddress[]> {
  const bare = stripBrackets(hostname);
  if (isIP(bare.split('%')[0] ?? '')) {
    const refusal = guard.check(bare, hostname);
    return refusal ? Promise.reject(refusal) : Promise.resolve([{ address: bare, family: isIP(bare) }]);
  }
  return new Promise((resolve, reject) => {
    resolveChecked(guard, bare, {}, (err, addrs) => (err ? reject(err) : resolve(addrs)));
  });
}
