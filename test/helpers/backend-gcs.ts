/**
 * GCS for the conformance suite: firebase-tools' Storage emulator (test/servers/gcs.mjs)
 * as its own process, with stores rooted at fresh prefixes of one bucket (buckets appear
 * on first write there; creating one answers 501).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { StoreOptions } from '../../storage/adapter.js';
import { type GcsStore, openGcsStore } from '../../storage/gcs.js';
import type { Backend, RunningBackend } from './backends.js';
import { startServer } from './server.js';

const SERVER = fileURLToPath(new URL('../servers/gcs.mjs', import.meta.url));
export const GCS_TEST_BUCKET = 'ferry-test';

/** A running emulator whose stores take options (conditionalWrites…) and are GcsStores. */
export type RunningGcs = Omit<RunningBackend, 'open'> & { endpoint: string; open(options?: StoreOptions): Promise<GcsStore> };

/** Starts the emulator on 127.0.0.1 and resolves once it listens. */
export async function startGcsEmulator(): Promise<RunningGcs> {
  const { port, stop } = await startServer(SERVER);
  const endpoint = `http://127.0.0.1:${port}`;
  let n = 0;
  return {
    endpoint,
    open: (options: StoreOptions = {}) =>
      openGcsStore(GCS_TEST_BUCKET, `p${++n}-${randomBytes(4).toString('hex')}/`, { ...options, gcs: { endpoint, ...options.gcs } }),
    // A Buffer goes in one multipart request, which the emulator's body parser caps at
    // 130 MiB (`limit: "130mb"`), envelope included; streamed uploads have no such cap.
    maxRequestBytes: 128 * 2 ** 20,
    stop,
  };
}

export const gcsBackend: Backend = { name: 'gcs', start: startGcsEmulator };

/**
 * Variables (undefined: removed) under which Google's application default credentials find
 * nothing: no key file, no gcloud configuration (under HOME), no metadata server asked (that would be a
 * request off this machine), no emulator. A proxy that refuses every connection catches
 * anything that would still leave: a request to storage.googleapis.com ends on loopback.
 */
export const NO_GOOGLE_CREDENTIALS: Record<string, string | undefined> = {
  GOOGLE_APPLICATION_CREDENTIALS: undefined,
  HOME: '/nonexistent/ferry-home',
  METADATA_SERVER_DETECTION: 'none',
  STORAGE_EMULATOR_HOST: undefined,
  HTTPS_PROXY: 'http://127.0.0.1:9',
  https_proxy: undefined,
  HTTP_PROXY: 'http://127.0.0.1:9',
  http_proxy: undefined,
  NO_PROXY: undefined,
  no_proxy: undefined,
};
