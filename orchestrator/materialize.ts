/**
 * Materializing a unit: the renewed Parquet, the ledger and manifest.json, each written
 * to a temporary name and renamed, manifest.json last: `status: "complete"` exists only
 * once the other two are in place.
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { encodeLedgerRow, ledgerHeaderLine } from '../ledger/index.js';
import { type Reason, classOf } from '../protocol/index.js';
import { redactUrl } from '../storage/redact.js';
import { renewManifest } from './parquet/index.js';
import type { UnitState } from './state.js';

export type UnitPaths = { parquet: string; ledger: string; manifest: string };

export function unitPaths(outDir: string, unit: string): UnitPaths {
  const base = path.join(outDir, ...unit.split('/'));
  return { parquet: `${base}.parquet`, ledger: `${base}.ledger.tsv`, manifest: `${base}.manifest.json` };
}

export type Counts = {
  rows: number;
  migrated: number;
  failed: number;
  bad: number;
  byReason: Partial<Record<Reason, number>>;
  byClass: Record<string, number>;
};

const tmpName = (p: string) => `${p}.${process.pid}.ferry-tmp`;

/** Writes the renewed Parquet and the ledger; returns what manifest.json records of them. */
export async function writeOutputs(
  source: string,
  paths: UnitPaths,
  state: UnitState,
  cols: { id: string; url: string; path: string; bad: string },
): Promise<{ counts: Counts; int96: { columns: string[]; subMicrosecondValues: number } }> {
  await fs.mkdir(path.dirname(paths.parquet), { recursive: true });
  const counts: Counts = { rows: 0, migrated: 0, failed: 0, bad: 0, byReason: {}, byClass: {} };
  const ledgerTmp = tmpName(paths.ledger);
  const parquetTmp = tmpName(paths.parquet);
  const ledger = createWriteStream(ledgerTmp, { mode: 0o644 });
  try {
    ledger.write(ledgerHeaderLine());
    state.rewind();
    const renewed = await renewManifest(source, parquetTmp, { id: cols.id, url: cols.url }, { path: cols.path, bad: cols.bad }, async (ids, urls) => {
      const o = state.outputs(ids, urls, redactUrl);
      counts.rows += ids.length;
      for (const p of o.paths) if (p !== null) counts.migrated++;
      for (const b of o.bad) if (b) counts.bad++;
      for (const row of o.ledger) {
        counts.failed++;
        counts.byReason[row.reason] = (counts.byReason[row.reason] ?? 0) + 1;
        const cls = classOf(row.reason);
        counts.byClass[cls] = (counts.byClass[cls] ?? 0) + 1;
        if (!ledger.write(encodeLedgerRow(row))) await new Promise<void>((r) => ledger.once('drain', () => r()));
      }
      return { paths: o.paths, bad: o.bad };
    });
    ledger.end();
    await finished(ledger);
    await fs.rename(parquetTmp, paths.parquet);
    await fs.rename(ledgerTmp, paths.ledger);
    return { counts, int96: renewed.int96 };
  } catch (e) {
    ledger.destroy();
    await fs.rm(ledgerTmp, { force: true });
    await fs.rm(parquetTmp, { force: true });
    throw e;
  }
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = tmpName(file);
  await fs.writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await fs.rename(tmp, file);
}
