// A fresh fauxqs (test/servers/s3.mjs, in-memory S3 on 127.0.0.1) per run, and what the
// bench needs of it: a bucket, and a listing to check that every object landed.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

// The SDK's Node 20 notice, printed once by the bench's own client: noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const SERVER = fileURLToPath(new URL('../../test/servers/s3.mjs', import.meta.url));

/** Fake credentials: fauxqs checks no signature, the clients still sign. */
export const FAKE_AWS = {
  AWS_ACCESS_KEY_ID: 'bench-key',
  AWS_SECRET_ACCESS_KEY: 'bench-secret',
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

/** Starts fauxqs with `bucket`; resolves { endpoint, list(prefix), stop() }. */
export async function startS3(bucket, args = []) {
  const child = spawn(process.execPath, [SERVER, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = '';
  let port;
  for await (const chunk of child.stdout) {
    buf += chunk;
    const m = /PORT (\d+)/.exec(buf);
    if (m) {
      port = Number(m[1]);
      break;
    }
  }
  if (!port) throw new Error('fauxqs exited before listening');
  child.stdout.resume();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: FAKE_AWS.AWS_ACCESS_KEY_ID, secretAccessKey: FAKE_AWS.AWS_SECRET_ACCESS_KEY } });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    endpoint,
    /** Objects under `prefix` (probe markers of --conditional-writes auto excluded): { count, bytes }. */
    async list(prefix) {
      let count = 0;
      let bytes = 0;
      let token;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) {
          if (o.Key.includes('.ferry-probe-')) continue;
          count++;
          bytes += o.Size ?? 0;
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return { count, bytes };
    },
    async stop() {
      client.destroy();
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin.end();
      await exited;
    },
  };
}
