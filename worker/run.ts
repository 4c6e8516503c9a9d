/**
 * One task's path through the data plane: download → validate → upload, ending in exactly
 * one terminal event. Failures are data (img2dataset): nothing thrown inside a task can
 * escape it, so a bug in one task never kills the others.
 */
import { hash } from 'node:crypto';
import { type Task, oneLine } from '../protocol/index.js';
import { objectKey, shortestObjectKey } from '../storage/index.js';
import { redactText } from '../storage/redact.js';
import { NO_LEASE } from './aimd.js';
import { MAX_BACKOFF_MS, retryWaitMs, sleep, waitPastBound } from './backoff.js';
import { type Buffered, type Streamed, download } from './download.js';
import { type TaskContext, gateOptions } from './context.js';
import { validate } from './gates.js';
import { type StreamFailure, streamObject } from './stream.js';
import { sourceTag, uploadPayload } from './upload.js';

export async function runTask(task: Task, ctx: TaskContext): Promise<void> {
  let downloaded = false;
  try {
    // A key the store can never hold whatever the payload's type: refused before any download.
    const tooLong = ctx.store.keyError(shortestObjectKey(task.id, ctx.unit));
    if (tooLong) {
      ctx.emit({ kind: 'UP_ERR', id: task.id, reason: 'KEY_TOO_LONG', attempts: 0, detail: oneLine(`whatever its extension, ${tooLong.message}`) });
      return;
    }
    // At most 1 + retries tries of the download stage, whole streamed transfers included;
    // each streamed transfer is also one try of the upload stage.
    for (let left = 1 + ctx.flags.retries, used = 0, uploads = 0; ; ) {
      const dl = await download(task.url, { ...ctx.download, retries: left - 1 });
      used += dl.attempts;
      left -= dl.attempts;
      if (!dl.ok) {
        ctx.emit({ kind: dl.invalid ? 'BAD_IMAGE' : 'DL_ERR', id: task.id, reason: dl.reason, attempts: used, detail: oneLine(dl.detail) });
        return;
      }
      downloaded = true;
      if (dl.kind === 'buffer') {
        try {
          return await afterDownload(task, dl, ctx);
        } finally {
          dl.release();
        }
      }
      await ctx.largeSlots.acquire();
      uploads++;
      let f = await streamToStore(task.id, dl, ctx).finally(() => ctx.largeSlots.release());
      if (!f) return;
      if (f.retriable) {
        const asked = f.retryAfterMs ?? null;
        const throttled = waitPastBound(asked, f.detail);
        if (throttled !== null) f = { ...f, reason: 'THROTTLED', detail: throttled };
        else if (left > 0) {
          await sleep(retryWaitMs(used, asked, 250, MAX_BACKOFF_MS));
          continue;
        }
      }
      const kind = f.side === 'download' ? 'DL_ERR' : f.side === 'validate' ? 'BAD_IMAGE' : 'UP_ERR';
      ctx.emit({ kind, id: task.id, reason: f.reason, attempts: f.side === 'upload' ? uploads : used, detail: f.detail });
      return;
    }
  } catch (e) {
    // A bug, caught at the task's edge: this task ends, the others go on.
    // A stack is free text: each URL in it is redacted, not the whole read as one URL (which cut it at its first '?' or '#').
    const detail = oneLine(`internal error: ${redactText((e as Error)?.stack ?? String(e))}`);
    ctx.emit({ kind: downloaded ? 'UP_ERR' : 'DL_ERR', id: task.id, reason: 'INTERNAL_ERROR', attempts: 1, detail });
  }
}

/**
 * A streamed transfer talks to its origin (the body holds that host's slot) and to the
 * destination (a slot of it, taken here) at once; both go back when it ends.
 */
async function streamToStore(id: string, dl: Streamed, ctx: TaskContext): Promise<StreamFailure | null> {
  const lease = ctx.destSlot ? await ctx.destSlot() : NO_LEASE;
  let f: StreamFailure | null | undefined;
  try {
    return (f = await streamObject(id, dl, ctx));
  } finally {
    lease.release(f === null ? 'ok' : f?.side === 'upload' && f.reason === 'THROTTLED' ? 'throttled' : 'neutral');
    dl.release();
  }
}

/** Validate and upload a downloaded payload: DL_OK, then exactly one terminal event. */
async function afterDownload(task: Task, dl: Buffered, ctx: TaskContext): Promise<void> {
  ctx.emit({ kind: 'DL_OK', id: task.id, bytes: dl.body.length });
  const verdict = await validate(task.id, dl.body, gateOptions(ctx.flags));
  if (!verdict.ok) {
    ctx.emit({ kind: 'BAD_IMAGE', id: task.id, reason: verdict.reason, attempts: dl.attempts, detail: oneLine(verdict.detail) });
    return;
  }
  const sha256 = hash('sha256', dl.body, 'hex');
  const key = objectKey(task.id, verdict.ext, ctx.unit);
  const up = await uploadPayload(
    ctx.store,
    { id: task.id, key, body: dl.body, contentType: verdict.contentType, sha256, source: sourceTag(dl.body.length, dl.etag), runId: ctx.runId },
    { overwrite: ctx.flags.overwrite, retries: ctx.flags.retries, ...(ctx.destSlot ? { admit: ctx.destSlot } : {}) },
  );
  if (!up.ok) {
    ctx.emit({ kind: 'UP_ERR', id: task.id, reason: up.reason, attempts: up.attempts, detail: oneLine(up.detail) });
    return;
  }
  ctx.emit({
    kind: 'UP_OK',
    id: task.id,
    uri: ctx.store.uri(key),
    ext: verdict.ext,
    bytes: dl.body.length,
    sha256,
    width: verdict.width,
    height: verdict.height,
    existed: up.existed,
  });
}
