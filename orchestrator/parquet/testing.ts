// Test support only (imported by *.test.ts, never by the codec): the outputs tests hand
// to renewManifest, and a renewal without key columns for fixtures that have none.
import { fileURLToPath } from 'node:url';
import { runCodec } from './client.js';
import type { OutputColumns, RenewResult } from './messages.js';

export const OUT: OutputColumns = { path: 'updated_media_path', bad: 'bad_image' };

/** parquet-testing files, from `shared/` beside the repository (as in CI). */
export const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/parquet-testing/', import.meta.url));

/** Deterministic outputs by row number: every third path null, every other row bad. */
export function plannedPath(row: number): string | null {
  return row % 3 === 2 ? null : `file:///dest/row-${row}.jpg`;
}

export function plannedBad(row: number): boolean {
  return row % 2 === 1;
}

/** An outputsFor that records the keys it was given and answers with the planned outputs. */
export function recorder(): {
  ids: (string | null)[];
  urls: (string | null)[];
  groups: number[];
  outputsFor: (ids: (string | null)[], urls: (string | null)[]) => { paths: (string | null)[]; bad: boolean[] };
} {
  const seen = { ids: [] as (string | null)[], urls: [] as (string | null)[], groups: [] as number[] };
  const outputsFor = (ids: (string | null)[], urls: (string | null)[]) => {
    const base = seen.ids.length;
    seen.ids.push(...ids);
    seen.urls.push(...urls);
    seen.groups.push(ids.length);
    return { paths: ids.map((_, i) => plannedPath(base + i)), bad: ids.map((_, i) => plannedBad(base + i)) };
  };
  return { ...seen, outputsFor };
}

/** Renewal with no key columns (every id and url null): for files without a text column. */
export function renewWithoutKeys(file: string, outFile: string): Promise<RenewResult> {
  let row = 0;
  return runCodec({ op: 'renew', file, outFile, keys: null, out: OUT }, async (m) => {
    const n = m.ids.length;
    const paths = Array.from({ length: n }, (_, i) => plannedPath(row + i));
    const bad = Uint8Array.from({ length: n }, (_, i) => (plannedBad(row + i) ? 1 : 0));
    row += n;
    return { kind: 'outputs', paths, bad };
  });
}
