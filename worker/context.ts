/** What every task of a worker shares: its flags, its stores, its limits and its event sink. */
import { type Event, type WorkerFlags, maxBytesOf } from '../protocol/index.js';
import type { StorageAdapter } from '../storage/index.js';
import type { Lease } from './aimd.js';
import type { DownloadOptions } from './download.js';
import type { GateOptions } from './gates.js';
import type { Semaphore } from './limit.js';

export type TaskContext = {
  flags: WorkerFlags;
  /** streamed (large) objects in flight at once (--large-concurrency) */
  largeSlots: Semaphore;
  store: StorageAdapter;
  unit: string | undefined;
  runId: string;
  /** Its `admit`, when set, holds an origin host's slot per try; its `slots`, a request slot (--concurrency). */
  download: DownloadOptions;
  /** A slot of the destination (adaptive concurrency), held while a task talks to it. */
  destSlot?: () => Promise<Lease>;
  emit: (e: Event) => void;
  /**
   * Bytes of task `id`'s streamed (large) body as they pass, for PROGRESS's rates:
   * downloaded, and uploaded (0 while the body is only hashed). Its DL_OK and UP_OK do not
   * count them again.
   */
  flowed?: (id: string, down: number, up: number) => void;
  /**
   * The keys this worker streamed to (its only multipart uploads): standalone, its cleanup
   * aborts the open uploads of those keys alone, which a killed run of the same tasks left
   * (another migration may be streaming its own objects under the same unit). One per large
   * object, so few.
   */
  streamedKeys?: Set<string>;
};

export function gateOptions(f: WorkerFlags): GateOptions {
  return { profile: f.profile, minBytes: f.minBytes, maxBytes: maxBytesOf(f), minDim: f.minDim, maxPixels: f.maxPixels, decode: f.decode };
}
