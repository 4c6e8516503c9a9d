/**
 * Finding the units of a migration: every `*.parquet` under the manifest prefix,
 * recursively; a unit's name is its path relative to the prefix without `.parquet`.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { isUnitName } from '../protocol/index.js';
import { type ObjectInfo, type Place, StorageError, describePlace, placeContains } from '../storage/index.js';
import { PlaceError, UsageError } from './errors.js';
import type { Stores } from './io.js';

/** `unreadable`: why the listing already knows the manifest cannot be read (its unit fails, saying so). */
export type Unit = { name: string; key: string; size: number; version: string; unreadable?: string };

export async function listUnits(prefix: Place, stores: Stores): Promise<Unit[]> {
  if (prefix.scheme === 'file') {
    const s = await stat(prefix.path).catch(() => null);
    if (!s) throw new UsageError(`manifest folder ${prefix.path} does not exist`);
    if (!s.isDirectory()) throw new UsageError(`manifest prefix ${prefix.path} is not a folder`);
  }
  const units: Unit[] = [];
  for await (const o of listed(prefix, stores)) {
    // Hidden or in-progress names are skipped, as Spark and Hive skip them (`.x`, `_temporary/`).
    if (!o.key.endsWith('.parquet') || o.key.split('/').some((seg) => seg.startsWith('.') || seg.startsWith('_'))) continue;
    units.push({ name: o.key.slice(0, -'.parquet'.length), key: o.key, size: o.size, version: o.version, ...(o.unreadable ? { unreadable: o.unreadable } : {}) });
  }
  if (units.length === 0) throw new UsageError(`no *.parquet manifest under ${describePlace(prefix)}`);
  return units.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Why a unit's name cannot name its files, or undefined. An object store key may hold an
 * empty path segment (`m//x.parquet`, as string concatenation leaves them); in a folder
 * (--out, --dest, the work dir) that segment vanishes, so the unit's outputs, objects and
 * journal would be those of `m/x.parquet`, each unit overwriting the other's.
 */
export function unitNameProblem(name: string): string | undefined {
  if (isUnitName(name)) return undefined;
  return `its key has an empty path segment (a leading or doubled "/"), so in a folder its files would be those of unit "${name.split('/').filter(Boolean).join('/')}": rename the manifest`;
}

/** Restricts to `--only` units, refusing names that do not exist. */
export function selectUnits(units: Unit[], only: readonly string[]): Unit[] {
  if (only.length === 0) return units;
  const names = new Set(units.map((u) => u.name));
  for (const o of only) {
    const name = o.endsWith('.parquet') ? o.slice(0, -'.parquet'.length) : o;
    if (!names.has(name)) throw new UsageError(`--only: no unit named "${o}" (units are manifest paths relative to the prefix, without .parquet)`);
  }
  const wanted = new Set(only.map((o) => (o.endsWith('.parquet') ? o.slice(0, -'.parquet'.length) : o)));
  return units.filter((u) => wanted.has(u.name));
}

/**
 * Refuses an --out whose outputs for some unit would land inside the manifest prefix: with
 * --out above the prefix (`--out gs://m/` for manifests under `gs://m/q/`), unit `q/x`
 * (`gs://m/q/q/x.parquet`) writes `gs://m/q/x.parquet`, which the next run reads as a
 * manifest of its own and fails (it already has the output columns). Checked before
 * anything is written, as --out inside the prefix is.
 */
export function checkOutputsOutsidePrefix(units: readonly Unit[], prefix: Place, out: Place): void {
  for (const u of units) {
    const outputs: Place = out.scheme === 'file' ? { scheme: 'file', path: path.join(out.path, u.name) } : { ...out, prefix: out.prefix + u.name };
    if (placeContains(prefix, outputs)) {
      throw new UsageError(`--out ${describePlace(out)} would write the outputs of unit ${u.name} inside the manifest prefix ${describePlace(prefix)} (${describePlace(outputs)}.parquet), where the next run would take them for a manifest: choose another place`);
    }
  }
}

/**
 * The objects under the prefix. A store that refuses the listing (no such bucket, wrong
 * credentials, a busy endpoint) is the user's to fix, said in one line: a missing bucket
 * is a prefix that does not exist (exit 2), anything else a place that cannot be used.
 */
async function* listed(prefix: Place, stores: Stores): AsyncIterable<ObjectInfo> {
  try {
    yield* (await stores.get(prefix)).list('');
  } catch (e) {
    if (!(e instanceof StorageError)) throw e;
    if (e.code === 'NOT_FOUND') throw new UsageError(`manifest prefix ${describePlace(prefix)} does not exist: ${e.message}`);
    throw new PlaceError(`manifest prefix ${describePlace(prefix)} cannot be listed: ${e.message}`);
  }
}
