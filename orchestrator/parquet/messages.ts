// The messages between the main thread (client.ts) and the codec thread (codec-thread.ts).
// A thread serves one call at a time: `run` starts it; the thread sends one row group's
// keys at a time and waits for the reply before reading on, so memory holds one row group
// whatever the file's size; `done` or `fail` ends the call.

/** `flags`: the flags that name the two columns, for messages (default `--id-column`, `--url-column`). */
export type KeyColumns = { id: string; url: string; flags?: { id: string; url: string } };
export type OutputColumns = { path: string; bad: string };

export type ManifestInfo = {
  rows: number;
  rowGroups: number;
  /** Top-level columns and their Arrow types as renewal writes them, e.g. `Utf8`, `Timestamp<MICROSECOND>`. */
  columns: { name: string; type: string }[];
  /** Parquet paths (dotted) of INT96 leaves, written as INT64 microsecond timestamps. */
  int96Columns: string[];
};

export type RenewResult = { rows: number; int96: { columns: string[]; subMicrosecondValues: number } };

/** `keys: null` (tests only): no key columns, every id and url comes as null. */
export type ThreadRequest =
  | { op: 'scan'; file: string; keys: KeyColumns | null; out: OutputColumns }
  | { op: 'renew'; file: string; outFile: string; keys: KeyColumns | null; out: OutputColumns };

export type FromThread =
  | { kind: 'rowGroup'; index: number; ids: (string | null)[]; urls: (string | null)[] }
  /** `wasmBytes`: the wasm memory's size now (it never shrinks), to decide on reuse. */
  | { kind: 'done'; result: ManifestInfo | RenewResult; wasmBytes: number }
  /** `reusable`: the failure came before or outside the wasm decoder, the thread is sound. */
  | { kind: 'fail'; message: string; manifest: boolean; reusable: boolean; stack?: string }
  /** What the thread's code printed: kept to explain a crash, never printed. */
  | { kind: 'log'; text: string };

export type ToThread =
  | { kind: 'run'; request: ThreadRequest }
  | { kind: 'ack' }
  | { kind: 'outputs'; paths: (string | null)[]; bad: Uint8Array };
