/**
 * `<unit>.manifest.json`: the truth of what is complete. `status: "complete"` is written
 * only after the renewed Parquet and the ledger are in place. A replay about to replace
 * them first rewrites it as `status: "replaying"`: between its publishes the Parquet and
 * the ledger disagree, so the unit is not complete until the replay (run again) finishes.
 */
import { z } from 'zod';
import type { StorageAdapter } from '../storage/index.js';
import type { Counts } from './materialize.js';
import { publishFile, publishText, readText } from './io.js';

/**
 * A run that contributed: one that finished the unit (`finishedAt`, `sent`: tasks it sent),
 * or one interrupted before that (`interrupted`, `outcomes`: the tasks it finished).
 */
const RunRecord = z.looseObject({
  runId: z.string(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  sent: z.number().optional(),
  interrupted: z.boolean().optional(),
  outcomes: z.number().optional(),
});

export const UnitManifest = z.looseObject({
  ferry: z.literal(1),
  status: z.enum(['complete', 'replaying']),
  unit: z.string(),
  source: z.looseObject({ uri: z.string(), fingerprint: z.string(), rows: z.number() }),
  options: z.record(z.string(), z.union([z.string(), z.number()])),
  optionsFingerprint: z.string(),
  counts: z.looseObject({}),
  runs: z.array(RunRecord),
});
export type UnitManifest = z.infer<typeof UnitManifest>;
export type RunRecord = z.infer<typeof RunRecord>;

/** The output keys of a unit under --out. */
export function outputKeys(unit: string) {
  return { parquet: `${unit}.parquet`, ledger: `${unit}.ledger.tsv`, manifest: `${unit}.manifest.json` };
}

/**
 * A unit's manifest.json when it says complete or replaying, else null (absent, partial or
 * foreign). Only `complete` means the outputs agree: callers check `status`.
 */
export async function readUnitManifest(out: StorageAdapter, unit: string, timeoutMs: number): Promise<UnitManifest | null> {
  const text = await readText(out, outputKeys(unit).manifest, timeoutMs);
  if (text === null) return null;
  try {
    const r = UnitManifest.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Marks a complete unit as being replayed, before its outputs are replaced (see the top). */
export async function markReplaying(out: StorageAdapter, at: string, m: UnitManifest): Promise<void> {
  await publishText(out, outputKeys(at).manifest, JSON.stringify({ ...m, status: 'replaying' }, null, 2) + '\n', 'application/json');
}

export type UnitManifestFields = {
  unit: string;
  source: { uri: string; fingerprint: string; rows: number };
  options: Record<string, string | number>;
  optionsFingerprint: string;
  counts: Counts & Record<string, unknown>;
  int96: { columns: string[]; subMicrosecondValues: number };
  runs: RunRecord[];
};

/**
 * Publishes a unit's outputs: the renewed Parquet and the ledger; then removes what
 * interrupted publishes of them left (a killed run's temporary file or multipart upload),
 * before its manifest.json says they agree, so a cleanup that fails fails a unit that no
 * manifest.json calls complete. `at` is the unit's name relative to `out` (a replay opens
 * the ledger's own folder, so a unit `2024/b` is `b` there). Resolves with the cleanup's
 * notes (what the store would not let it remove), for the caller to log.
 */
export async function publishOutputs(out: StorageAdapter, at: string, staged: { parquet: string; ledger: string }, m: UnitManifestFields): Promise<string[]> {
  const keys = outputKeys(at);
  await publishFile(out, keys.parquet, staged.parquet, 'application/vnd.apache.parquet');
  await publishFile(out, keys.ledger, staged.ledger, 'text/tab-separated-values');
  const notes: string[] = [];
  for (const key of [keys.parquet, keys.ledger, keys.manifest]) {
    const note = await out.discardPartial(key);
    if (note) notes.push(note);
  }
  await writeUnitManifest(out, at, m);
  return notes;
}

/** Writes a complete unit's manifest.json at `at`; the document names the outputs relative to --out. */
async function writeUnitManifest(out: StorageAdapter, at: string, m: UnitManifestFields): Promise<void> {
  const keys = outputKeys(m.unit);
  const doc = {
    ferry: 1,
    status: 'complete',
    unit: m.unit,
    source: m.source,
    outputs: { parquet: keys.parquet, ledger: keys.ledger },
    options: m.options,
    optionsFingerprint: m.optionsFingerprint,
    counts: m.counts,
    int96: { columns: m.int96.columns, writtenAs: 'INT64 timestamp (microseconds)', subMicrosecondValues: m.int96.subMicrosecondValues },
    runs: m.runs,
  };
  await publishText(out, outputKeys(at).manifest, JSON.stringify(doc, null, 2) + '\n', 'application/json');
}
