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
const SECRET_NAMES = new Set(['sig', 'key', 'apikey', 'googleaccessid', 'awsaccesskeyid', 'auth', 'authorization', 'pass', 'pwd', 'sign', 'hdnts', 'session', 'sessionid']);
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
function redactParams(text: string): string {
  return text
    .split(/([&;])/)
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return part;
      return isSecretParam(part.slice(0, eq)) ? `${part.slice(0, eq)}=${REDACTED}` : part;
    })
    .join('');
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
  const text = String(url);
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
  if (q >= 0) out = out.slice(0, q + 1) + redactParams(out.slice(q + 1));
  return out + (fragment ? '#' + redactParams(fragment.slice(1)) : '');
}

// A token that looks like a URL or carries a query: `scheme://…`, or `…?name=value`.
const URLISH = /[^\s"'<>]*(?::\/\/|[?&#][^\s=&#]*=)[^\s"'<>]*/g;

/** Free text (an error message, a log line) with every URL-looking token redacted. */
export function redactText(text: string): string {
  return String(text).replace(URLISH, (token) => redactUrl(token));
}
