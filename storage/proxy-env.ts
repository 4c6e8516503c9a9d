/**
 * The proxy settings of the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, either
 * case), read and checked without loading the HTTP client: a command refuses a malformed
 * one at its start, naming the variable, instead of every fetch failing on it.
 */
export type ProxyConfig = { httpProxy?: string; httpsProxy?: string; noProxy?: string };

const SCHEMES = new Set(['http:', 'https:', 'socks:', 'socks5:']);

export function envProxy(env: NodeJS.ProcessEnv = process.env): ProxyConfig | null {
  const httpProxy = env.http_proxy ?? env.HTTP_PROXY;
  const httpsProxy = env.https_proxy ?? env.HTTPS_PROXY;
  if (!httpProxy && !httpsProxy) return null;
  const noProxy = env.no_proxy ?? env.NO_PROXY;
  return { ...(httpProxy ? { httpProxy } : {}), ...(httpsProxy ? { httpsProxy } : {}), ...(noProxy ? { noProxy } : {}) };
}

/** Why the environment's proxy settings cannot be used, or null. */
export function proxyEnvProblem(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const name of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY']) {
    const value = env[name];
    if (!value) continue;
    let scheme: string;
    try {
      scheme = new URL(value).protocol;
    } catch {
      return `${name} is not a URL (expected http://host:port)`;
    }
    if (!SCHEMES.has(scheme)) return `${name} has the scheme ${scheme} (expected http, https or socks5)`;
  }
  return null;
}
