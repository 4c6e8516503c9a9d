/** Streaming a body into a store's sink while computing its sha256 on the way. */
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Pipes `body` into `sink`, hashing every chunk it passes; resolves with the sha256 once the sink has finished. */
export async function pipeHashed(body: Readable, sink: Writable): Promise<string> {
  const hasher = createHash('sha256');
  const hashing = async function* (src: AsyncIterable<Buffer>) {
    for await (const chunk of src) {
      hasher.update(chunk);
      yield chunk;
    }
  };
  await pipeline(body, hashing, sink);
  return hasher.digest('hex');
}
