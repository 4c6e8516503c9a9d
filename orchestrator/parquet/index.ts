// The Parquet codec of the orchestrator: read a manifest's keys, write its renewed copy.
// All Parquet work runs in a worker thread (client.ts, codec-thread.ts); this module
// only validates what the caller hands back.
import { rm } from 'node:fs/promises';
import { runCodec } from './client.js';
import type { KeyColumns, ManifestInfo, OutputColumns, RenewResult } from './messages.js';

export { ManifestError } from './errors.js';
export type { KeyColumns, ManifestInfo, OutputColumns, RenewResult } from './messages.js';

export type RowGroupKeys = (ids: (string | null)[], urls: (string | null)[]) => void | Promise<void>;
export type RowGroupOutputs = { paths: (string | null)[]; bad: boolean[] };
export type OutputsFor = (ids: (string | null)[], urls: (string | null)[]) => RowGroupOutputs | Promise<RowGroupOutputs>;

/**
 * Reads the id and url columns, row group by row group, in order, and hands each row
 * group's keys to `onRowGroup` (awaited before the next is read). Ids become strings:
 * text as-is, integers (64-bit exact) in decimal, binary as UTF-8; null stays null.
 * INT96 columns are read and checked too, so a value that renewal would have to refuse
 * fails the unit before any object moves.
 * @throws ManifestError naming the file, and the column and flag when one is at fault.
 */
export async function scanManifest(file: string, keys: KeyColumns, out: OutputColumns, onRowGroup: RowGroupKeys): Promise<ManifestInfo> {
  return runCodec({ op: 'scan', file, keys, out }, async (m) => {
    await onRowGroup(m.ids, m.urls);
    return { kind: 'ack' };
  });
}

/**
 * Writes `outFile`: every input row, column, type and value, in input order, plus
 * `out.path` (nullable utf8) and `out.bad` (non-null boolean), whose values `outputsFor`
 * returns for each row group's keys (normalised as in scanManifest). INT96 timestamps are
 * written as INT64 microsecond timestamps. Memory holds about one row group. On failure
 * `outFile` is removed.
 * @throws ManifestError for a manifest that cannot be read or written; errors thrown by
 * `outputsFor` are passed through as they are.
 */
export async function renewManifest(
  file: string,
  outFile: string,
  keys: KeyColumns,
  out: OutputColumns,
  outputsFor: OutputsFor,
): Promise<RenewResult> {
  try {
    return await runCodec({ op: 'renew', file, outFile, keys, out }, async (m) => {
      const r = await outputsFor(m.ids, m.urls);
      checkOutputs(r, m.ids.length);
      return { kind: 'outputs', paths: r.paths, bad: Uint8Array.from(r.bad, (b) => (b ? 1 : 0)) };
    });
  } catch (e) {
    await rm(outFile, { force: true });
    throw e;
  }
}

function checkOutputs(r: RowGroupOutputs, rows: number): void {
  if (r.paths.length !== rows || r.bad.length !== rows) {
    throw new Error(`outputsFor returned ${r.paths.length} paths and ${r.bad.length} bad flags for a row group of ${rows} rows`);
  }
}
