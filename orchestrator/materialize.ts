/**
 * Materializing a unit into staged files: the renewed Parquet and the ledger, written
 * together in one pass over the manifest's row groups (rows in input order). Publishing
 * them (and manifest.json, last) is the caller's.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { type Stage, encodeLedgerRow, ledgerHeaderLine } from '../ledger/index.js';
import { type Reason, classOf } from '../protocol/index.js';
import { redactUrl } from '../storage/redact.js';
import { renewManifest } from './parquet/index.js';
import type { RowOutcomes } from './state.js';

export type Counts = {
  rows: number;
  migrated: number;
  failed: number;
  bad: number;
  byReason: Partial<Record<Reason, number>>;
  byClass: Record<string, number>;
  /** Ledger rows by the stage that failed them: `compile` ones were refused before any fetch (replay never re-sends them). */
  byStage: Partial<Record<Stage, number>>;
};

export type Staged = { parquet: string; ledger: string; done(): Promise<void> };

/** Staging file names for a unit (removed by `done`). */
export async function stagedFiles(staging: string, unit: string): Promise<Staged> {
  const base = path.join(staging, ...unit.split('/'));
  await fs.mkdir(path.dirname(base), { recursive: true });
  const files = { parquet: `${base}.${process.pid}.parquet`, ledger: `${base}.${process.pid}.ledger.tsv` };
  return { ...files, done: async () => void (await Promise.all([fs.rm(files.parquet, { force: true }), fs.rm(files.ledger, { force: true })])) };
}

/** Writes the renewed Parquet and the ledger; returns what manifest.json records of them. */
export async function writeOutputs(
  source: string,
  staged: Pick<Staged, 'parquet' | 'ledger'>,
  state: RowOutcomes,
  cols: { id: string; url: string; path: string; bad: string },
): Promise<{ counts: Counts; int96: { columns: string[]; subMicrosecondValues: number } }> {
  const counts: Counts = { rows: 0, migrated: 0, failed: 0, bad: 0, byReason: {}, byClass: {}, byStage: {} };
  const ledger = createWriteStream(staged.ledger, { mode: 0o644 });
  // Its error (a full disk, a folder removed) is thrown by the next await on it, or by
  // finished(); without a listener it would be an uncaught 'error' event.
  let failed: Error | null = null;
  ledger.on('error', (e) => (failed ??= e));
  try {
    ledger.write(ledgerHeaderLine());
    state.rewind();
    const renewed = await renewManifest(source, staged.parquet, { id: cols.id, url: cols.url }, { path: cols.path, bad: cols.bad }, async (ids, urls) => {
      const o = state.outputs(ids, urls, redactUrl);
      counts.rows += ids.length;
      for (const p of o.paths) if (p !== null) counts.migrated++;
      for (const b of o.bad) if (b) counts.bad++;
      for (const row of o.ledger) {
        counts.failed++;
        counts.byReason[row.reason] = (counts.byReason[row.reason] ?? 0) + 1;
        const cls = classOf(row.reason);
        counts.byClass[cls] = (counts.byClass[cls] ?? 0) + 1;
        counts.byStage[row.stage] = (counts.byStage[row.stage] ?? 0) + 1;
        if (!ledger.write(encodeLedgerRow(row))) await once(ledger, 'drain'); // rejects on the stream's error
      }
      return { paths: o.paths, bad: o.bad };
    });
    if (failed) throw failed;
    ledger.end();
    await finished(ledger);
    return { counts, int96: renewed.int96 };
  } catch (e) {
    ledger.destroy();
    throw e;
  }
}
