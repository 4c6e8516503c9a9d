// The codec thread: every call to parquet-wasm happens here, so that a panic in the wasm
// (`RuntimeError: unreachable`, which can surface as an uncaught exception from inside
// its async closures) ends this thread only; client.ts turns that into a ManifestError.
// The thread serves one scan or renew call at a time, each started by a `run` message.
import { parentPort } from 'node:worker_threads';
import { wasmMemory } from './wasm.js';
import { oneLine } from './errors.js';
import { FooterError, int96Paths, rowGroupRows } from './footer.js';
import { Int96RangeError } from './int96.js';
import type { Int96Tally } from './int96.js';
import type { FromThread, ManifestInfo, RenewResult, ThreadRequest, ToThread } from './messages.js';
import { ReadError, checkColumns, checkRowGroupSizes, convertInt96, keysOf, openManifest, projection, readRowGroup, renewedField } from './reader.js';
import type { Manifest } from './reader.js';
import { renew } from './writer.js';

function threadPort(): NonNullable<typeof parentPort> {
  if (!parentPort) throw new Error('codec-thread.ts must run in a worker thread');
  return parentPort;
}
const port = threadPort();
// The orchestrator owns stdout and stderr (progress view, event lines): whatever the
// libraries here print goes to the main thread as messages instead. (Piping the worker's
// stdio would do too, but a piped stream keeps an idle thread, and the process, alive.)
for (const stream of [process.stdout, process.stderr]) {
  stream.write = ((chunk: string | Uint8Array) => {
    port.postMessage({ kind: 'log', text: typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8') } satisfies FromThread);
    return true;
  }) as typeof stream.write;
}

let reply: ((m: ToThread) => void) | undefined;
port.on('message', (m: ToThread) => {
  if (m.kind === 'run') void serve(m.request);
  else reply?.(m);
});

function ask(m: FromThread): Promise<ToThread> {
  return new Promise((resolve) => {
    reply = resolve;
    port.postMessage(m);
  });
}

async function scan(m: Manifest, req: Extract<ThreadRequest, { op: 'scan' }>): Promise<ManifestInfo> {
  checkColumns(m, req.keys, req.out);
  const groups = rowGroupRows(m.footer.meta);
  // INT96 columns are read too, so that a value ferry cannot write fails the unit now,
  // before any object is migrated, rather than at renewal.
  const columns = [...new Set([...(req.keys ? [req.keys.id, req.keys.url] : []), ...m.int96.keys()])];
  checkRowGroupSizes(m, columns);
  const tally: Int96Tally = { subMicrosecondValues: 0 };
  let rowBase = 0;
  for (let g = 0; g < groups.length; g++) {
    const rows = groups[g]!;
    if (columns.length > 0) {
      const table = convertInt96(m, await readRowGroup(m, g, projection(columns)), rowBase, tally);
      await ask({ kind: 'rowGroup', index: g, ...keysOf(table, req.keys) });
    } else {
      const none = new Array<null>(rows).fill(null);
      await ask({ kind: 'rowGroup', index: g, ids: none, urls: [...none] });
    }
    rowBase += rows;
  }
  return {
    rows: rowBase,
    rowGroups: groups.length,
    columns: m.schema.fields.map((f) => ({ name: f.name, type: String(renewedField(m, f).type) })),
    int96Columns: int96Paths(m.footer.meta),
  };
}

function failure(e: unknown): FromThread {
  if (e instanceof ReadError || e instanceof FooterError || e instanceof Int96RangeError) {
    return { kind: 'fail', manifest: true, reusable: !(e instanceof ReadError && e.inDecoder), message: e.message };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { kind: 'fail', manifest: false, reusable: false, message: oneLine(err), ...(err.stack ? { stack: err.stack } : {}) };
}

async function serve(req: ThreadRequest): Promise<void> {
  try {
    const m = await openManifest(req.file);
    let result: ManifestInfo | RenewResult;
    try {
      result = req.op === 'scan' ? await scan(m, req) : await renew(m, req, ask);
    } finally {
      m.file.free(); // its wasm memory, now rather than at some later GC
    }
    port.postMessage({ kind: 'done', result, wasmBytes: wasmMemory().buffer.byteLength } satisfies FromThread);
  } catch (e) {
    port.postMessage(failure(e));
  }
}
