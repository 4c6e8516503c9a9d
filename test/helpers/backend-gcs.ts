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
