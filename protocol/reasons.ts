/**
 * Reason codes: every failed task ends with exactly one, and each code has exactly one
 * class, which decides what `ferry replay` does with it by default.
 */
export const REASON_CLASSES = {
  // permanent: dead or refused; fix the metadata
  NOT_FOUND: 'permanent',
  FORBIDDEN: 'permanent',
  BAD_URL: 'permanent',
  UNSUPPORTED_SCHEME: 'permanent',
  BLOCKED_ADDRESS: 'permanent',
  BLOCKED_PATH: 'permanent',
  TOO_MANY_REDIRECTS: 'permanent',
  NULL_ID: 'permanent',
  NULL_URL: 'permanent',
  INVALID_ID: 'permanent',
  DUPLICATE_ID: 'permanent',
  DEST_CONFLICT: 'permanent',
  HTTP_4XX: 'permanent',
  /** the destination key is longer than the store takes (1,024 bytes on S3 and GCS) */
  KEY_TOO_LONG: 'permanent',
  // invalid: the payload is not acceptable; sets bad_image
  EMPTY: 'invalid',
  TOO_SMALL: 'invalid',
  TOO_LARGE: 'invalid',
  NOT_ALLOWED_TYPE: 'invalid',
  TOO_FEW_PIXELS: 'invalid',
  PIXEL_BOMB: 'invalid',
  INCOMPLETE_IMAGE: 'invalid',
  UNDECODABLE: 'invalid',
  // transient: replayed by default
  TIMEOUT: 'transient',
  RESET: 'transient',
  SHORT_BODY: 'transient',
  THROTTLED: 'transient',
  HTTP_5XX: 'transient',
  DNS: 'transient',
  UPLOAD_FAILED: 'transient',
  WORKER_CRASH: 'transient',
  /** a bug in ferry caught at the task's edge: the other tasks go on, and a replay retries it */
  INTERNAL_ERROR: 'transient',
} as const;

export type Reason = keyof typeof REASON_CLASSES;
export type ReasonClass = (typeof REASON_CLASSES)[Reason];
export const REASON_CLASS_NAMES: readonly ReasonClass[] = ['permanent', 'invalid', 'transient'];
export const REASONS = Object.keys(REASON_CLASSES) as Reason[];

export function isReason(s: string): s is Reason {
  return Object.prototype.hasOwnProperty.call(REASON_CLASSES, s);
}

export function classOf(reason: Reason): ReasonClass {
  return REASON_CLASSES[reason];
}
