/**
 * URL redaction for every log, event detail, ledger and manifest line (DESIGN.md,
 * "Secrets"): userinfo and the values of signing or secret parameters are replaced, and
 * everything else is kept byte for byte so an operator can still find the object.
 */

export const REDACTED = 'REDACTED';

// Names compared lower-cased, after percent-decoding (so X%2DAmz%2DSignature is caught).
// Exact names, then suffixes that name a secret in any vendor's spelling
// (X-Amz-Security-Token, sas_token, client_secret, x-api-key, X-Goog-Credential…).
// Also CDN tokens (Akamai's hdnts, `sign`/`hmac` schemes), JWTs, session ids, and SigV2's
// AWSAccessKeyId, redacted like SigV4's X-Amz-Credential.
const SECRET_NAMES = new Set(['sig', 'key', 'apikey', 'googleaccessid', 'awsaccesskeyid', 'auth', 'authorization', 'pass', 'pwd', 'sign', 'hdnts', 'session', 'sessionid', 'jsessionid', 'phpsessid']);
const SECRET_SUFFIX = /(?:^|[-_.])(?:key|sig)$|token$|secret$|signature$|password$|passwd$|credentials?$|hmac$|jwt$/;

function decodeName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

export function isSecretParam(name: string): boolean {
  const n = decodeName(name).trim();
  return SECRET_NAMES.has(n) || SECRET_SUFFIX.test(n);
}

/** Redacts `a=1&sig=x`-style text (a query or a fragment), keeping its separators. */
function redactParams(text: string, depth = 0): string {
  return text
    .split(/([&;])/)
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return redactValue(part, depth);
      const name = part.slice(0, eq);
      return isSecretParam(name) ? `${name}=${REDACTED}` : `${name}=${redactValue(part.slice(eq + 1), depth)}`;
    })
    .join('');
}

// How deep URLs nested in parameter values are opened (an encoded URL in `?url=`, encoded again…).
const MAX_NESTING = 4;
const SCHEME_PREFIX = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;

/**
 * A parameter's value that is itself a URL or a query, as is (`?to=https://x/a?sig=s`) or
 * percent-encoded (`?url=https%3A%2F%2Fx%2Fa%3Fsig%3Ds`, as image proxies and redirectors
 * take them): redacted in turn. An encoded value is given back re-encoded only when
 * something in it was redacted; otherwise byte for byte.
 */
function redactValue(value: string, depth: number): string {
  if (depth >= MAX_NESTING) return value;
  let out = value;
  if (SCHEME_PREFIX.test(value) || /[?#]/.test(value)) out = redactUrlAt(value, depth + 1);
  else if (value.includes('=')) out = redactParams(value, depth + 1);
  if (out !== value || !value.includes('%')) return out;
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    return value;
  }
  const inner = redactValue(decoded, depth + 1);
  return inner === decoded ? value : encodeURIComponent(inner);
}

/** Replaces the userinfo of `scheme://userinfo@host…`; `authorityEnd` says where the authority stops. */
function redactUserinfo(url: string, authorityEnd: RegExp): string {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(url);
  const start = m ? m[0].length : 0;
  const rest = url.slice(start);
  const end = rest.search(authorityEnd);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at < 0) return url;
  return `${url.slice(0, start)}***@${rest.slice(at + 1)}`;
}

/** Whether a `scheme://` URL has userinfo; null when the text is no such URL (then: best effort). */
function hasUserinfo(url: string): boolean | null {
  // `user:pass@host` parses as an opaque URL of scheme `user:`; treat it as garbage.
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(url)) return null;
  try {
    const u = new URL(url);
    return u.username !== '' || u.password !== '';
  } catch {
    return null;
  }
}

/**
 * `url` with userinfo replaced by `***` and secret query/fragment values by `REDACTED`.
 * Never throws: text that is not a URL gets the same treatment on a best-effort reading.
 */
export function redactUrl(url: string): string {
  return redactUrlAt(String(url), 0);
}

const PATH_SESSION = /;(jsessionid|phpsessid|sessionid)=[^/?#;]*/gi;

function redactUrlAt(text: string, depth: number): string {
  const parsedUserinfo = hasUserinfo(text);
  // A parsable URL's authority ends where the WHATWG parser ends it; for garbage, any
  // '@' before the query is treated as ending a userinfo, which may over-redact but never leaks.
  let out =
    parsedUserinfo === false
      ? text
      : redactUserinfo(text, parsedUserinfo === true ? /[/?#\\]/ : /[?#]/);
  const hash = out.indexOf('#');
  const fragment = hash < 0 ? '' : out.slice(hash);
  out = hash < 0 ? out : out.slice(0, hash);
  const q = out.indexOf('?');
  // A session id in the path (`/a;jsessionid=…`, servlet URL rewriting) is one as well.
  const pathEnd = q < 0 ? out.length : q;
  out = out.slice(0, pathEnd).replace(PATH_SESSION, (_, name: string) => `;${name}=${REDACTED}`) + out.slice(pathEnd);
  if (q >= 0) out = out.slice(0, q + 1) + redactParams(out.slice(q + 1), depth);
  return out + (fragment ? '#' + redactParams(fragment.slice(1), depth) : '');
}

// A token that looks like a URL or carries a query: `scheme://…`, or `…?name=value`.
const URLISH = /[^\s"'<>]*(?::\/\/|[?&#][^\s=&#]*=)[^\s"'<>]*/g;

/** Free text (an error message, a log line) with every URL-looking token redacted. */
export function redactText(text: string): string {
  return String(text).replace(URLISH, (token) => redactUrl(token));
}
