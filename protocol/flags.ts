/**
 * The worker's flags, shared by both sides: `ferry worker` parses them, and `ferry compile`
 * accepts the same flags and forwards them to its workers by name. Plain data and pure
 * parsers (protocol/ depends on nothing), so one table serves both command lines.
 *
 * `content` flags change what is written (they are in the unit's fingerprint and replay
 * reuses them); runtime flags never recompile a complete unit.
 */
import { isIP } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { type QuickOption, valueRequired } from './argv.js';
import { parseRate, parseSize } from './units.js';

export type Profile = 'image' | 'any';
export type DecodePolicy = { mode: 'never' } | { mode: 'always' } | { mode: 'sample'; fraction: number };

export type WorkerFlags = {
  profile: Profile;
  minBytes: number;
  /** null: the profile's default (100 MiB for image, 5 TiB for any) */
  maxBytes: number | null;
  minDim: number;
  maxPixels: number;
  decode: DecodePolicy;
  concurrency: number;
  retries: number;
  timeout: number;
  minRate: number;
  maxRedirects: number;
  allowPrivateNetwork: boolean;
  originHeader: string[];
  overwrite: boolean;
  s3Endpoint: string | null;
  s3PathStyle: boolean;
  s3NoSignRequest: boolean;
  gcsEndpoint: string | null;
  gcsNoSignRequest: boolean;
  conditionalWrites: 'auto' | 'on' | 'off';
  multipartThreshold: number;
  partSize: number;
  largeConcurrency: number;
  localSourceRoot: string | null;
};

export class FlagError extends Error {
  readonly code = 'USAGE';
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(`--${flag}: ${message}`);
  }
}

type Spec<K extends keyof WorkerFlags> = {
  key: K;
  flag: string;
  content: boolean;
  type: 'string' | 'boolean' | 'array';
  describe: string;
  default: WorkerFlags[K];
  parse: (raw: unknown, flag: string) => WorkerFlags[K];
};

/** A flag's parser of whole numbers in [min, max], whose error names the flag and the value. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: unknown, flag: string): number => {
    // Decimal digits only: Number() would also take 0x10, 1e3 and 0b11.
    const text = String(raw).trim();
    const n = typeof raw === 'number' ? raw : /^-?\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new FlagError(flag, `expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, got "${String(raw)}"`);
    return n;
  };
}

function size(raw: unknown, flag: string): number {
  const n = parseSize(String(raw));
  if (n === null) throw new FlagError(flag, `expected a size such as 4096, 512KiB or 100MiB, got "${String(raw)}"`);
  return n;
}

/** A size within [min, max]; `bounds` says them, and where they come from, for the error. */
function sizeWithin(min: number, max: number, bounds: string) {
  return (raw: unknown, flag: string): number => {
    const n = size(raw, flag);
    if (n < min || n > max) throw new FlagError(flag, `expected a size from ${bounds}, got "${String(raw)}"`);
    return n;
  };
}

/** `HOST=Name: value`: a host, an HTTP token as the name, a value without control characters but TAB. */
// eslint-disable-next-line no-control-regex
const ORIGIN_HEADER = /^[^=\s]+=[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\x00-\x08\x0a-\x1f\x7f]*$/;

/**
 * What is wrong with an `--origin-header` value, or null. A header value is often a
 * credential (a bearer token, an API key), so the answer never quotes it: an error line
 * ends up in terminals, CI logs and bug reports.
 */
export function originHeaderProblem(h: string): string | null {
  const eq = h.indexOf('=');
  if (ORIGIN_HEADER.test(h)) return isHostAndPort(h.slice(0, eq)) ? null : 'expected HOST=Name: value, and its HOST is not a host name or IP address with an optional :port';
  const colon = h.indexOf(':', eq + 1);
  if (eq <= 0 || /\s/.test(h.slice(0, eq))) return 'expected HOST=Name: value, and it does not start with HOST= (the origin host the header is for)';
  if (colon < 0) return 'expected HOST=Name: value, and it has no ":" between the header name and its value';
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h.slice(eq + 1, colon))) return 'expected HOST=Name: value, and its Name is not an HTTP header name';
  return 'expected HOST=Name: value, and its value holds a control character';
}

/**
 * A host name or IP address (IPv6 bare or in brackets), with an optional `:port`, as a URL
 * would carry it: `https://img.example.com` or `user@host` would name no request's host.
 */
function isHostAndPort(text: string): boolean {
  if (isIP(text) === 6) return true;
  if (/[/?#@\\]/.test(text)) return false;
  try {
    return new URL(`http://${text}/`).pathname === '/';
  } catch {
    return false;
  }
}

/** A fraction in (0,1], written as a plain decimal: `1`, `0.05`, `.5`. */
const SAMPLE = /^sample:((?:\d+(?:\.\d*)?|\.\d+))$/;

/** Parses `always`, `never` or `sample:F` with F in (0,1]; null when invalid. */
export function parseDecode(text: string): DecodePolicy | null {
  if (text === 'never' || text === 'always') return { mode: text };
  const m = SAMPLE.exec(text);
  if (!m?.[1]) return null;
  const fraction = Number(m[1]);
  return fraction > 0 && fraction <= 1 ? { mode: 'sample', fraction } : null;
}

export function formatDecode(d: DecodePolicy): string {
  return d.mode === 'sample' ? `sample:${d.fraction}` : d.mode;
}

function bool(raw: unknown): boolean {
  return raw === true || raw === 'true';
}

function endpoint(raw: unknown, flag: string): string {
  const text = String(raw);
  try {
    const u = new URL(text);
    if (u.protocol === 'http:' || u.protocol === 'https:') return text;
  } catch {
    // fall through to the error
  }
  throw new FlagError(flag, `expected an http(s) URL, got "${text}"`);
}

/** The longest wait a Node timer takes: past it, setTimeout fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const WORKER_FLAG_SPECS = [
  { key: 'profile', flag: 'profile', content: true, type: 'string', default: 'image',
    describe: 'validation profile: image (all gates) or any (size and type detection only)',
    parse: (raw, flag) => {
      if (raw === 'image' || raw === 'any') return raw;
      throw new FlagError(flag, `expected image or any, got "${String(raw)}"`);
    } },
  { key: 'minBytes', flag: 'min-bytes', content: true, type: 'string', default: 1, describe: 'size floor (0 bytes is EMPTY, fewer is TOO_SMALL)', parse: size },
  { key: 'maxBytes', flag: 'max-bytes', content: true, type: 'string', default: null,
    describe: 'size ceiling, enforced while streaming', parse: size },
  { key: 'minDim', flag: 'min-dim', content: true, type: 'string', default: 32, describe: 'minimum width and height in pixels', parse: wholeNumber(0) },
  { key: 'maxPixels', flag: 'max-pixels', content: true, type: 'string', default: 100_000_000, describe: 'pixel-count limit against decompression bombs', parse: wholeNumber(1) },
  { key: 'decode', flag: 'decode', content: true, type: 'string', default: { mode: 'never' },
    describe: 'pixel-decode gate: never, always or sample:F (costs 1-50 ms per image)',
    parse: (raw, flag) => {
      const d = parseDecode(String(raw));
      if (!d) throw new FlagError(flag, `expected never, always or sample:F with 0 < F <= 1, got "${String(raw)}"`);
      return d;
    } },
  { key: 'concurrency', flag: 'concurrency', content: false, type: 'string', default: 64, describe: 'requests in flight', parse: wholeNumber(1, 100_000) },
  { key: 'retries', flag: 'retries', content: false, type: 'string', default: 3, describe: 'retries per stage for transient failures', parse: wholeNumber(0, 100) },
  { key: 'timeout', flag: 'timeout', content: false, type: 'string', default: 30_000, describe: 'ms for connect, headers, and each wait between body chunks',
    // Node's timers take at most 2^31 - 1 ms (~24.8 days): a longer one fires after 1 ms.
    parse: wholeNumber(1, MAX_TIMER_MS) },
  { key: 'minRate', flag: 'min-rate', content: false, type: 'string', default: 1024,
    describe: 'a body slower than this over 60 s is cut as TIMEOUT',
    parse: (raw, flag) => {
      const n = parseRate(String(raw));
      if (n === null) throw new FlagError(flag, `expected a rate such as 1KiB/s, got "${String(raw)}"`);
      return n;
    } },
  { key: 'maxRedirects', flag: 'max-redirects', content: false, type: 'string', default: 5, describe: 'redirects followed per fetch', parse: wholeNumber(0, 50) },
  { key: 'allowPrivateNetwork', flag: 'allow-private-network', content: false, type: 'boolean', default: false,
    describe: 'allow loopback and private addresses (cloud metadata stays refused)', parse: bool },
  { key: 'originHeader', flag: 'origin-header', content: false, type: 'array', default: [],
    describe: 'HOST=Name: value — a header sent to one origin host only (repeatable)',
    parse: (raw, flag) => {
      const list = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map(String);
      // The name is an HTTP token (RFC 9110 §5.6.2), so no request is built that undici refuses.
      list.forEach((h, i) => {
        const problem = originHeaderProblem(h);
        if (problem) throw new FlagError(flag, list.length > 1 ? `value ${i + 1} of ${list.length}: ${problem}` : problem);
      });
      return list;
    } },
  { key: 'overwrite', flag: 'overwrite', content: false, type: 'boolean', default: false, describe: 'write unconditionally (no existence check)', parse: bool },
  { key: 's3Endpoint', flag: 's3-endpoint', content: false, type: 'string', default: null,
    describe: 'S3-compatible endpoint URL (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)', parse: endpoint },
  { key: 's3PathStyle', flag: 's3-path-style', content: false, type: 'boolean', default: false, describe: 'path-style S3 addressing (bucket in the path)', parse: bool },
  { key: 's3NoSignRequest', flag: 's3-no-sign-request', content: false, type: 'boolean', default: false,
    describe: "read the manifest's s3:// URLs unsigned, with no credentials (public buckets)", parse: bool },
  { key: 'gcsEndpoint', flag: 'gcs-endpoint', content: false, type: 'string', default: null,
    describe: 'GCS endpoint URL (else STORAGE_EMULATOR_HOST)', parse: endpoint },
  { key: 'gcsNoSignRequest', flag: 'gcs-no-sign-request', content: false, type: 'boolean', default: false,
    describe: "read the manifest's gs:// URLs with no credentials (public buckets)", parse: bool },
  { key: 'conditionalWrites', flag: 'conditional-writes', content: false, type: 'string', default: 'auto',
    describe: 'create-if-absent writes: auto (on for AWS and GCS, probed once per bucket elsewhere), on or off',
    parse: (raw, flag) => {
      if (raw === 'auto' || raw === 'on' || raw === 'off') return raw;
      throw new FlagError(flag, `expected auto, on or off, got "${String(raw)}"`);
    } },
  { key: 'multipartThreshold', flag: 'multipart-threshold', content: false, type: 'string', default: 64 * 2 ** 20,
    describe: 'under --profile any, objects larger than this are streamed in parts, never buffered whole', parse: size },
  { key: 'partSize', flag: 'part-size', content: false, type: 'string', default: 64 * 2 ** 20,
    describe: 'part size of streamed objects', parse: sizeWithin(5 * 2 ** 20, 5 * 2 ** 30, "5MiB to 5GiB (S3's part limits)") },
  { key: 'largeConcurrency', flag: 'large-concurrency', content: false, type: 'string', default: 1, describe: 'streamed (large) objects in flight per worker', parse: wholeNumber(1, 64) },
  { key: 'localSourceRoot', flag: 'local-source-root', content: false, type: 'string', default: null,
    describe: 'read file:// URLs, but only under this folder (symlinks resolved)',
    parse: (raw, flag) => {
      // '' would resolve to the current folder: a root nobody named.
      if (String(raw).trim() === '') throw new FlagError(flag, 'must not be empty');
      return resolvePath(String(raw));
    } },
] as const satisfies readonly Spec<keyof WorkerFlags>[];

/** A flag's default as help prints it. */
function defaultText(spec: (typeof WORKER_FLAG_SPECS)[number]): string | undefined {
  const v = spec.default as unknown;
  if (spec.key === 'maxBytes') return '100MiB for image, 5TiB for any';
  if (spec.key === 'minRate') return '1KiB/s';
  if (spec.key === 'decode') return formatDecode(v as DecodePolicy);
  if (spec.key === 'multipartThreshold' || spec.key === 'partSize') return `${(v as number) / 2 ** 20}MiB`;
  // null: unset, and the description says what stands in (an environment variable).
  if (Array.isArray(v) || v === false || v === null) return undefined;
  return String(v);
}

/**
 * A flag given twice where one value is expected is a usage error (which one did the
 * user mean?); `arrays` are the repeatable flags.
 */
export function refuseRepeats(raw: Record<string, unknown>, arrays: readonly string[]): void {
  for (const [name, value] of Object.entries(raw)) {
    // yargs also hands over camelCase aliases and its own `_` and `$0`: only flag names count.
    if (!Array.isArray(value) || !/^[a-z][a-z0-9-]*$/.test(name) || arrays.includes(name)) continue;
    throw new FlagError(name, 'given more than once');
  }
}

/** How a worker flag reads in a command's help: yargs' option fields, as plain data. */
export type WorkerFlagHelp = { type: (typeof WORKER_FLAG_SPECS)[number]['type']; describe: string; defaultDescription: string | undefined; group?: string; requiresArg?: true };

/**
 * WORKER_FLAG_SPECS (or those in `only`) as a command's yargs options, for its help and
 * for the lines its quick reader leaves to yargs; `grouped` files them under whether they
 * are in the unit fingerprint.
 */
export function workerFlagHelp(only?: ReadonlySet<string>, grouped = false): Record<string, WorkerFlagHelp> {
  const out: Record<string, WorkerFlagHelp> = {};
  for (const s of WORKER_FLAG_SPECS) {
    if (only && !only.has(s.flag)) continue;
    out[s.flag] = { type: s.type, describe: s.describe, defaultDescription: defaultText(s), ...valueRequired(s.type), ...(grouped ? { group: s.content ? 'Content (in the unit fingerprint):' : 'Runtime:' } : {}) };
  }
  return out;
}

/** WORKER_FLAG_SPECS (or those in `only`) as quickArgv options: no defaults, as yargs has none for them (parseWorkerFlags fills them). */
export function workerFlagQuickOptions(only?: ReadonlySet<string>): Record<string, QuickOption> {
  const out: Record<string, QuickOption> = {};
  for (const s of WORKER_FLAG_SPECS) if (!only || only.has(s.flag)) out[s.flag] = s.type === 'array' ? { type: 'string', array: true } : { type: s.type };
  return out;
}

/** Parses raw values keyed by flag name (as a CLI parser hands them over) into WorkerFlags. */
/**
 * `--origin-header` values also come from this variable, one per line: a process's
 * environment is readable by its user only, its command line by everyone (`ps`). The
 * orchestrator hands its workers their headers this way (`secretsToEnv`).
 */
export const ORIGIN_HEADERS_ENV = 'FERRY_ORIGIN_HEADERS';

function originHeadersFromEnv(env: NodeJS.ProcessEnv): string[] {
  const list = (env[ORIGIN_HEADERS_ENV] ?? '').split('\n').filter((line) => line.trim() !== '');
  list.forEach((h, i) => {
    const problem = originHeaderProblem(h);
    if (problem) throw new FlagError('origin-header', `line ${i + 1} of ${ORIGIN_HEADERS_ENV}: ${problem}`);
  });
  return list;
}

/**
 * One host's header given twice (the flag's values, then the variable's lines), or null.
 * Only the last was sent, silently: the variable's over the command line's. Hosts compare
 * without case and a final dot (a spelling the client also takes as the same: Unicode and
 * punycode ones are not caught here); the values are not quoted (they are often secrets).
 */
function repeatedOriginHeader(flagged: readonly string[], fromEnv: readonly string[]): string | null {
  const where = (i: number) => (i < flagged.length ? `value ${i + 1} of --origin-header` : `line ${i - flagged.length + 1} of ${ORIGIN_HEADERS_ENV}`);
  const seen = new Map<string, number>();
  const all = [...flagged, ...fromEnv];
  for (let i = 0; i < all.length; i++) {
    const h = all[i]!;
    const eq = h.indexOf('=');
    const host = h.slice(0, eq).trim().toLowerCase().replace(/\.$/, '');
    const name = h.slice(eq + 1, h.indexOf(':', eq)).trim().toLowerCase();
    const key = `${host}\n${name}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else {
      const both = first < flagged.length && i < flagged.length ? `values ${first + 1} and ${i + 1} of --origin-header` : `${where(first)} and ${where(i)}`;
      return `${host} is given the header ${name} twice (${both})`;
    }
  }
  return null;
}

export function parseWorkerFlags(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): WorkerFlags {
  const out: Record<string, unknown> = {};
  for (const spec of WORKER_FLAG_SPECS) {
    const v = raw[spec.flag];
    out[spec.key] = v === undefined ? spec.default : (spec.parse as (r: unknown, f: string) => unknown)(v, spec.flag);
  }
  const flags = out as WorkerFlags;
  const fromEnv = originHeadersFromEnv(env);
  const repeat = repeatedOriginHeader(flags.originHeader, fromEnv);
  if (repeat) throw new FlagError('origin-header', repeat);
  flags.originHeader = [...flags.originHeader, ...fromEnv];
  // A floor above the ceiling, given or the profile's, refuses every object (TOO_SMALL or TOO_LARGE).
  if (flags.maxBytes !== null && flags.maxBytes < flags.minBytes) throw new FlagError('max-bytes', `${flags.maxBytes} bytes is below --min-bytes (${flags.minBytes} bytes)`);
  if (flags.minBytes > maxBytesOf(flags)) throw new FlagError('min-bytes', `${flags.minBytes} bytes is above --max-bytes, the ${flags.profile} profile's ${maxBytesOf(flags)} by default`);
  return flags;
}

/** The effective size ceiling. */
export function maxBytesOf(f: Pick<WorkerFlags, 'profile' | 'maxBytes'>): number {
  return f.maxBytes ?? (f.profile === 'image' ? 100 * 2 ** 20 : 5 * 2 ** 40);
}

/** Turns flags back into a command line (what the orchestrator hands a worker). */
export function workerFlagsToArgv(f: WorkerFlags): string[] {
  const argv: string[] = [];
  for (const spec of WORKER_FLAG_SPECS) {
    const v = f[spec.key];
    if (spec.key === 'decode') argv.push(`--${spec.flag}`, formatDecode(v as DecodePolicy));
    else if (spec.type === 'boolean') {
      if (v) argv.push(`--${spec.flag}`);
    } else if (spec.type === 'array') for (const item of v as string[]) argv.push(`--${spec.flag}`, item);
    else if (v !== null) argv.push(`--${spec.flag}`, String(v));
  }
  return argv;
}

/**
 * A worker's command line split for spawning: `--origin-header` values leave the argv
 * (world-readable) for the environment (`ORIGIN_HEADERS_ENV`, set even when empty, so an
 * inherited value is never counted twice).
 */
export function secretsToEnv(argv: readonly string[]): { argv: string[]; env: Record<string, string> } {
  const rest: string[] = [];
  const headers: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--origin-header' && i + 1 < argv.length) headers.push(argv[++i]!);
    else rest.push(argv[i]!);
  }
  return { argv: rest, env: { [ORIGIN_HEADERS_ENV]: headers.join('\n') } };
}

/** The options of the stores a process opens (structurally storage's StoreOptions). */
export function storeOptionsOf(f: WorkerFlags) {
  return {
    s3: { ...(f.s3Endpoint ? { endpoint: f.s3Endpoint } : {}), ...(f.s3PathStyle ? { forcePathStyle: true } : {}) },
    gcs: f.gcsEndpoint ? { endpoint: f.gcsEndpoint } : {},
    maxSockets: Math.min(Math.max(f.concurrency, 8), 1024),
    timeoutMs: f.timeout,
    conditionalWrites: f.conditionalWrites,
    partSize: f.partSize,
    // One part uploading while the next fills (lib-storage builds each part with a copy of
    // its chunks): about 3 parts of a large object in memory at the peak.
    queueSize: 1,
  };
}

/** The content options, as recorded in manifest.json and fingerprinted. */
export function contentFlags(f: WorkerFlags): Record<string, string | number> {
  return {
    profile: f.profile,
    minBytes: f.minBytes,
    maxBytes: maxBytesOf(f),
    minDim: f.minDim,
    maxPixels: f.maxPixels,
    decode: formatDecode(f.decode),
  };
}
