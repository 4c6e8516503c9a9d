/**
 * The end-of-run summary, read as an operator reads it: its numbers against the outputs
 * (DuckDB over the renewed Parquet and the ledgers), and the replay command it suggests,
 * run as printed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duck, lit } from '../helpers/duckdb.js';
import { FERRY, type Origin, ferry, startOrigin } from '../helpers/run.js';

let dir: string;
let origin: Origin;
let db: Awaited<ReturnType<typeof duck>>;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-summary-'));
  origin = await startOrigin();
  db = await duck();
});

afterAll(async () => {
  db?.close();
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** Three units: good rows, and rows that fail at compile time, at the origin, and for good. */
async function manifests(root: string): Promise<void> {
  await fs.mkdir(path.join(root, 'b'), { recursive: true });
  const u = (k: string) => lit(`${origin.url}/ok/${k}`);
  const units: Record<string, string> = {
    'a.parquet': `SELECT 'a' || i AS id, '${origin.url}/ok/sum-a' || i AS media_path FROM range(7) t(i)`,
    'b/c.parquet': `SELECT * FROM (VALUES ('c1', ${u('sum-c1')}), ('c1', ${u('sum-c1b')}), (NULL, ${u('sum-cn')}), ('c3', NULL), ('c4', ${lit(`${origin.url}/status/500/sum-c4`)}), ('c5', ${lit(`${origin.url}/status/404/sum-c5`)})) t(id, media_path)`,
    'd.parquet': `SELECT * FROM (VALUES ('d1', ${lit(`${origin.url}/status/503/sum-d1`)}), ('d2', ${u('sum-d2')})) t(id, media_path)`,
  };
  for (const [file, sql] of Object.entries(units)) await db.run(`COPY (${sql}) TO '${path.join(root, file)}' (FORMAT parquet)`);
}

describe('the summary', () => {
  it('counts what the outputs hold, and suggests a replay command that runs as printed, whatever the --out path spells', async () => {
    const root = path.join(dir, 'm');
    await manifests(root);
    // A space and a '%' in --out: a file: URL spells them %20 and %25.
    const out = path.join(dir, "o 7/r%25s it's");
    const r = await ferry(['compile', root, '--dest', path.join(dir, 'objects'), '--out', out, '--work-dir', path.join(dir, 'work'), '--profile', 'any', '--allow-private-network', '--retries', '0', '--progress', 'none', '--jobs', '3']);
    expect(r.code, r.stderr).toBe(0);
    const [truth] = (await db.rows(
      `SELECT count(*)::INT AS rows, count(updated_media_path)::INT AS migrated FROM read_parquet([${['a', 'b/c', 'd'].map((u) => lit(`${out}/${u}.parquet`)).join(', ')}])`,
    )) as [{ rows: number; migrated: number }];
    const [ledgered] = (await db.rows(
      `SELECT count(*)::INT AS n FROM read_csv([${['a', 'b/c', 'd'].map((u) => lit(`${out}/${u}.ledger.tsv`)).join(', ')}], delim='\t', header=true, quote='', escape='', all_varchar=true)`,
    )) as [{ n: number }];
    expect(truth).toEqual({ rows: 15, migrated: 9 });
    expect(ledgered.n).toBe(6);
    expect(r.stderr).toMatch(new RegExp(`ferry: 3 unit\\(s\\) compiled, 0 already complete, 0 failed in [\\d.]+ s — ${truth.rows} rows, ${truth.migrated} migrated, ${ledgered.n} in ledgers\n`));
    // The ledger it names is there, and its replay command, pasted into a shell, replays it.
    const named = /failures are in the ledgers, e\.g\. (.*?); re-run the transient ones with: ferry replay (.*)\n/.exec(r.stderr);
    expect(named, r.stderr).not.toBeNull();
    await expect(fs.stat(named![1]!)).resolves.toBeTruthy();
    const pasted = spawnSync('sh', ['-c', `"$0" "$1" replay ${named![2]} --allow-private-network --retries 0 --progress none --work-dir "$2"`, process.execPath, FERRY, path.join(dir, 'work')], { encoding: 'utf8' });
    expect(pasted.status, pasted.stderr).toBe(0);
    expect(pasted.stderr).toMatch(/ferry replay: 0 of 1 repaired; \d row\(s\) remain in /);
    const c = JSON.parse(await fs.readFile(path.join(out, 'b', 'c.manifest.json'), 'utf8')) as { counts: Record<string, unknown> };
    expect(c.counts).toMatchObject({ failed: 5, byStage: { compile: 3, download: 2 } });
  }, 120_000);

  it('does not point at replay when every ledger row was refused before any fetch', async () => {
    const root = path.join(dir, 'refused');
    await fs.mkdir(root, { recursive: true });
    await db.run(`COPY (SELECT * FROM (VALUES (NULL, ${lit(`${origin.url}/ok/sum-r1`)}), ('r', NULL), ('r', ${lit(`${origin.url}/ok/sum-r2`)})) t(id, media_path)) TO '${path.join(root, 'r.parquet')}' (FORMAT parquet)`);
    const out = path.join(dir, 'refused-out');
    const r = await ferry(['compile', root, '--dest', path.join(dir, 'objects'), '--out', out, '--work-dir', path.join(dir, 'work'), '--allow-private-network', '--progress', 'none']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('r.ledger.tsv (each was refused before any fetch — null, invalid or duplicate ids, bad URLs — which no replay re-sends: fix the manifests)');
    expect(r.stderr).not.toContain('--reasons');
    const m = JSON.parse(await fs.readFile(path.join(out, 'r.manifest.json'), 'utf8')) as { counts: Record<string, unknown> };
    expect(m.counts).toMatchObject({ failed: 3, byStage: { compile: 3 } });
  }, 60_000);

  it('shows a unit named with a newline and an escape sequence escaped, on the lines about it', async () => {
    const root = path.join(dir, 'named');
    await fs.mkdir(root, { recursive: true });
    const name = 'evil\nname\u001b[31mred';
    await db.run(`COPY (SELECT 'n1' AS id, ${lit(`${origin.url}/status/500/sum-n1`)} AS media_path) TO ${lit(path.join(root, `${name}.parquet`))} (FORMAT parquet)`);
    const out = path.join(dir, 'named-out');
    const r = await ferry(['compile', root, '--dest', path.join(dir, 'objects'), '--out', out, '--work-dir', path.join(dir, 'work'), '--allow-private-network', '--retries', '0', '--progress', 'plain']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('\u001b');
    expect(r.stderr).toContain('evil\\nname\\x1b[31mred: complete — 1 rows, 0 migrated, 1 in the ledger (0 bad)\n');
    for (const line of r.stderr.split('\n')) expect(line.startsWith('name'), line).toBe(false);
    // Its replay command, in the $'…' form, is read back by bash as the ledger's path.
    const command = /re-run the transient ones with: ferry replay (.*)\n/.exec(r.stderr)?.[1];
    expect(command, r.stderr).toBeDefined();
    const echoed = spawnSync('bash', ['-c', `printf %s ${command}`], { encoding: 'utf8' });
    expect(echoed.stdout).toBe(path.join(out, `${name}.ledger.tsv`));
  }, 60_000);
});
