/**
 * An S3 multipart upload from a stream, in a fixed amount of memory: parts are filled by
 * copying the stream's chunks into preallocated part buffers that are reused, at most
 * `queueSize` parts upload while the next one fills, so at most `queueSize + 1` buffers
 * of `partSize` exist — with no copy of a part on the side. (lib-storage's `Upload` keeps
 * a part's chunks and their concatenation at once, and `queueSize` parts besides:
 * measured here, 64 MiB parts cost it ~270 MB of buffers against 128 MB for this.)
 * Anything that fails aborts the upload once no part is in flight, so no part is left behind.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { StorageError } from './adapter.js';

/** S3's limit on the parts of one multipart upload. */
export const MAX_PARTS = 10_000;

/**
 * Why a body of `size` bytes cannot be uploaded in parts of `partSize`, or null: past
 * MAX_PARTS, S3 refuses part 10,001 once 10,000 parts have gone (64 MiB parts hold 625 GiB).
 * A larger part size is the operator's call, since memory holds `queueSize + 1` parts.
 */
export function tooManyParts(size: number, partSize: number): string | null {
  const parts = Math.ceil(size / partSize);
  if (parts <= MAX_PARTS) return null;
  const MiB = 2 ** 20;
  const least = Math.ceil(size / MAX_PARTS / MiB);
  return `${size} bytes are ${parts} parts of ${partSize / MiB} MiB; S3 takes at most ${MAX_PARTS} parts: a part size (--part-size) of at least ${least} MiB fits it`;
}

export type MultipartTarget = {
  client: S3Client;
  bucket: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  /** If-None-Match: * on completion (where the endpoint enforces it) */
  ifNoneMatch: boolean;
  partSize: number;
  queueSize: number;
  /**
   * The store's: set once it refused a part for want of Content-MD5 (a bucket with a default
   * Object Lock retention), so every later part carries one. Not sent before: an MD5 costs
   * ~1.5 ms of the event loop per MiB here (~3 CPU-s for a 2 GiB object).
   */
  checksums: { required: boolean };
};

/** Copies chunks into `buf` until it is full or the stream ends; keeps what did not fit. */
class PartFiller {
  private pending: Buffer | null = null;
  private ended = false;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  get done(): boolean {
    return this.ended && this.pending === null;
  }

  async fill(buf: Buffer): Promise<number> {
    let n = 0;
    while (n < buf.length) {
      if (this.pending === null) {
        if (this.ended) break;
        const r = await this.it.next();
        if (r.done) {
          this.ended = true;
          break;
        }
        this.pending = r.value;
      }
      const take = Math.min(this.pending.length, buf.length - n);
      this.pending.copy(buf, n, 0, take);
      n += take;
      this.pending = take < this.pending.length ? this.pending.subarray(take) : null;
    }
    return n;
  }
}

/** Uploads the stream as a multipart object; resolves with its ETag. */
export async function multipartUpload(t: MultipartTarget, it: AsyncIterator<Buffer>): Promise<string | undefined> {
  const created = await t.client.send(
    new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, ContentType: t.contentType, Metadata: t.metadata }),
  );
  const UploadId = created.UploadId;
  try {
    const parts = await uploadParts(t, UploadId, new PartFiller(it));
    const done = await t.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: t.bucket,
        Key: t.key,
        UploadId,
        MultipartUpload: { Parts: parts },
        ...(t.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      }),
    );
    return done.ETag;
  } catch (e) {
    await t.client.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.key, UploadId })).catch(() => {});
    throw e;
  }
}

/** A part's Content-MD5, by which S3 also checks its bytes. */
const md5 = (part: Buffer): string => createHash('md5').update(part).digest('base64');

/**
 * S3's refusal of a write without Content-MD5 or a checksum, which a bucket with a default
 * Object Lock retention requires (400 InvalidRequest, "Content-MD5 OR x-amz-checksum- HTTP
 * header is required for Put Part requests with Object Lock parameters").
 */
export function wantsChecksum(e: unknown): boolean {
  const err = e as { name?: unknown; message?: unknown };
  return err?.name === 'InvalidRequest' && /Content-MD5/i.test(String(err.message));
}

/** One part: with Content-MD5 where the store asks for it, and sent again with one when refused for want of it. */
async function sendPart(t: MultipartTarget, UploadId: string | undefined, PartNumber: number, Body: Buffer): Promise<string | undefined> {
  const send = () =>
    t.client.send(
      new UploadPartCommand({ Bucket: t.bucket, Key: t.key, UploadId, PartNumber, Body, ContentLength: Body.length, ...(t.checksums.required ? { ContentMD5: md5(Body) } : {}) }),
    );
  try {
    return (await send()).ETag;
  } catch (e) {
    if (t.checksums.required || !wantsChecksum(e)) throw e;
    t.checksums.required = true;
    return (await send()).ETag;
  }
}

async function uploadParts(t: MultipartTarget, UploadId: string | undefined, filler: PartFiller) {
  const parts: { PartNumber: number; ETag: string | undefined }[] = [];
  const free: Buffer[] = [];
  const inflight = new Set<Promise<void>>();
  let failure: unknown = null;
  for (let PartNumber = 1; !filler.done && failure === null; PartNumber++) {
    const buf = free.pop() ?? Buffer.allocUnsafe(t.partSize);
    let n: number;
    try {
      n = await filler.fill(buf);
    } catch (e) {
      // The source failed: the parts in flight are waited for below, since S3 may store a
      // part still uploading when its upload is aborted, where no listing shows it.
      failure = e;
      break;
    }
    if (n === 0 && PartNumber > 1) break; // the stream ended exactly at a part boundary
    if (PartNumber > MAX_PARTS) {
      // A body of unknown length that outgrew the upload: S3 would refuse this part.
      failure = new StorageError('FATAL', `PUT s3://${t.bucket}/${t.key}: more than ${MAX_PARTS} parts of ${t.partSize / 2 ** 20} MiB; S3 takes at most ${MAX_PARTS} parts: a larger part size (--part-size) fits it`);
      break;
    }
    const sending = sendPart(t, UploadId, PartNumber, buf.subarray(0, n))
      .then((ETag) => void parts.push({ PartNumber, ETag }))
      .catch((e: unknown) => void (failure ??= e))
      .finally(() => {
        inflight.delete(sending);
        free.push(buf);
      });
    inflight.add(sending);
    if (inflight.size >= t.queueSize) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  if (failure !== null) throw failure;
  return parts.sort((a, b) => a.PartNumber - b.PartNumber);
}
