/**
 * The store endpoints the environment names (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`;
 * `STORAGE_EMULATOR_HOST`), checked at a command's start as the proxy variables are. The
 * SDKs refuse a malformed one only at each request (ERR_INVALID_URL, EndpointError), which
 * a worker ledgers as a permanent failure: every s3:// or gs:// row of a unit was refused
 * and the unit completed, and a run with the variable fixed skipped it.
 */

/** Whether `text` is an http(s) URL, as the flags' endpoints must be. */
function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * Why an endpoint variable cannot be used, or null; one that a flag overrides
 * (`--s3-endpoint`, `--gcs-endpoint`, in `flagged`) or the SDK ignores is not read. Values
 * are not quoted, as the proxy variables' are not (they may hold credentials).
 */
export function endpointEnvProblem(flagged: { s3: boolean; gcs: boolean }, env: NodeJS.ProcessEnv = process.env): string | null {
  if (!flagged.s3 && env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() !== 'true') {
    // The SDK's order: the service's own variable, then the general one.
    const name = env.AWS_ENDPOINT_URL_S3 ? 'AWS_ENDPOINT_URL_S3' : env.AWS_ENDPOINT_URL ? 'AWS_ENDPOINT_URL' : null;
    if (name && !isHttpUrl(env[name]!)) return `${name} is not an http(s) URL (expected http://host:port or https://host)`;
  }
  const emulator = env.STORAGE_EMULATOR_HOST;
  // host:port, as emulators print it, means http://host:port (storage/gcs.ts).
  if (!flagged.gcs && emulator && !isHttpUrl(/^[a-z][a-z0-9+.-]*:\/\//i.test(emulator) ? emulator : `http://${emulator}`)) {
    return 'STORAGE_EMULATOR_HOST is not host:port or an http(s) URL';
  }
  return null;
}
