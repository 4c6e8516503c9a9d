/**
 * The backends the storage conformance suite runs against, each on a real local server
 * started by the test itself. A backend gives stores rooted at fresh prefixes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileStore, type StorageAdapter } from '../../storage/index.js';
import { gcsBackend } from './backend-gcs.js';
import { s3Backend } from './backend-s3.js';

export type RunningBackend = {
  /** A store rooted at a fresh, empty prefix of this backend. */
  open(): Promise<StorageAdapter>;
  /** The largest single request body the server takes (fauxqs: 11 MiB), for multipart tests. */
  maxRequestBytes: number;
  stop(): Promise<void>;
};

export type Backend = { name: string; start(): Promise<RunningBackend> };

export const fileBackend: Backend = {
  name: 'file',
  async start() {
    const root = await mkdtemp(path.join(tmpdir(), 'ferry-conf-'));
    let n = 0;
    return {
      open: async () => new FileStore(path.join(root, `p${++n}`)),
      maxRequestBytes: Number.MAX_SAFE_INTEGER,
      stop: () => rm(root, { recursive: true, force: true }),
    };
  },
};

export const backends: Backend[] = [fileBackend, s3Backend, gcsBackend];
