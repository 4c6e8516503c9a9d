/**
 * The S3 backend of the storage conformance suite: fauxqs in its own process
 * (test/servers/s3.mjs) on 127.0.0.1, one bucket, a fresh prefix per store.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { StoreOptions } from '../../storage/adapter.js';
import { createS3Client, openS3Store } from '../../storage/s3.js';
import type { Backend, RunningBackend } from './backends.js';
import { type ServerProcess, startServer, stopServer } from './server.js';

const SERVER = fileURLToPath(new URL('../servers/s3.mjs', import.meta.url));
const MiB = 2 ** 20;

/**
 * fauxqs does not verify signatures, but the SDK signs, so it needs credentials: fixed fake
 * ones in the environment (the standard chain's first source), which also keeps the chain
 * from asking any metadata service. Restored on stop.
 */
const FAKE_ENV: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: 'ferry-test-key',
  AWS_SECRET_ACCESS_KEY: 'ferry-test-secret',
  AWS_SESSION_TOKEN: undefined,
  AWS_EC2_METADATA_DISABLED: 'true',
};

function setEnv(values: Record<string, string | undefined>): Record<string, string | undefined> {
  const before: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(values)) {
    before[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return before;
}

/** Puts the fake credentials in the environment; returns what puts the old values back. */
export function useFakeAwsCredentials(): () => void {
  const before = setEnv(FAKE_ENV);
  return () => void setEnv(before);
}

/**
 * Starts test/servers/s3.mjs and resolves with its port once it prints `PORT <n>`.
 * `--enforce-conditional-writes` makes it refuse If-None-Match: * on existing keys, as AWS does.
 */
export function startS3Server(args: string[] = []): Promise<ServerProcess> {
  return startServer(SERVER, args);
}

/** Stops the server started by startS3Server. */
export function stopS3Server(child: ChildProcessWithoutNullStreams): Promise<void> {
  return stopServer(child);
}

/** Store options for fauxqs: path style, parts that fit its 11 MiB body limit. */
export function fauxqsOptions(port: number, extra: StoreOptions = {}): StoreOptions {
  return { s3: { endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, region: 'us-east-1' }, partSize: 6 * MiB, queueSize: 3, ...extra };
}

export const s3Backend: Backend = {
  name: 's3',
  async start(): Promise<RunningBackend> {
    const restoreEnv = useFakeAwsCredentials();
    const { port, child } = await startS3Server().catch((e: unknown) => {
      restoreEnv();
      throw e;
    });
    const bucket = `ferry-conf-${randomBytes(4).toString('hex')}`;
    const admin = createS3Client(fauxqsOptions(port));
    try {
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    } catch (e) {
      await stopS3Server(child);
      restoreEnv();
      throw e;
    } finally {
      admin.destroy();
    }
    let n = 0;
    return {
      open: () => openS3Store(bucket, `p${++n}-${randomBytes(3).toString('hex')}/`, fauxqsOptions(port)),
      maxRequestBytes: 11 * MiB,
      stop: async () => {
        await stopS3Server(child);
        restoreEnv();
      },
    };
  },
};
