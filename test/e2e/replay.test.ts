/**
 * Replay as an operator meets it over time: interrupted, resumed, after the unit was
 * recompiled, and checked each time against the invariants of the three outputs (every
 * path names an object, every failed id has one ledger row, manifest.json counts them).
 */
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, ferry, ferrySpawn, startOrigin } from '../helpers/run.js';

const N = 12;
let dir: string;
let origin: Origin;
let db: Awaited<ReturnType<typeof duck>>;
let img: Buffer;

const place = (name: string) => ({ manifests: path.join(dir, name, 'manifests'), out: path.join(dir, name, 'out'), work: path.join(dir, name, 'work')});
const common = (name: string) => ['--allow-private-network', '--work-dir', place(name).work, '--progress', 'none', '--retries', '0'];
const compile = (name: string, dest: string, ...more: string[]) => ferry(['compile', place(name).manifests, '--dest', path.join(dir, name, dest), '--out', place(name).out, ...common(name), ...more]);
const replayArgs = (name: string, ...more: string[]) => ['replay', path.join(place(name).out, `${unitOf(name)}.ledger.tsv`), ...common(name), ...more];
/** Each scenario's one unit: `m`, or `2024/m` for names starting with `nested`. */
const unitOf = (name: string) => (name.startsWith('nested') ? '2024/m' : 'm');

/** A unit of N rows whose files are served from the scenario's own origin folder, absent until `serve`. */
async function scenario(name: string): Promise<void> {
  const p = place(name);
  const manifest = path.join(p.manifests, `${unitOf(name)}.parquet`);
  await fs.mkdir(path.dirname(manifest), { recursive: true });
  const values = Array.from({ length: N }, (_, i) => `(${lit(`r${i}`)}, ${lit(`${origin.url}/file/${name}-${i}/${name}-${i}.png?delay=150`)})`).join(',');
  await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path)) TO '${manifest}' (FORMAT parquet)`);
}

/** The origin serves files from one folder: a scenario's files appear and go by name. */
async function serve(name: string, on: boolean): Promise<void> {
  for (let i = 0; i < N; i++) {
    const file = path.join(dir, 'origin', `${name}-${i}.png`);
    if (on) await fs.writeFile(file, img);
    else await fs.rm(file, { force: true });
  }
}

/** The three outputs agree with each other and with the objects; returns the renewed paths. */
async function consistent(name: string): Promise<Map<string, string | null>> {
  const base = path.join(place(name).out, unitOf(name));
  const rows = (await db.rows(`SELECT id, updated_media_path AS p FROM '${base}.parquet' ORDER BY id`)) as { id: string; p: string | null }[];
  const ledger = parseLedger(await fs.readFile(`${base}.ledger.tsv`, 'utf8'));
  const m = JSON.parse(await fs.readFile(`${base}.manifest.json`, 'utf8')) as { status: string; counts: { migrated: number; failed: number } };
  expect(m.status).toBe('complete');
  const failed = ledger.map((r) => r.id);
  for (const r of rows) {
    if (r.p !== null) await expect(fs.stat(fileURLToPath(r.p)), `${r.id}: ${r.p}`).resolves.toBeTruthy();
    expect(failed.filter((id) => id === r.id)).toHaveLength(r.p === null ? 1 : 0);
  }
  expect(m.counts).toMatchObject({ migrated: rows.filter((r) => r.p !== null).length, failed: ledger.length });
  return new Map(rows.map((r) => [r.id, r.p]));
}

async function journaledOk(name: string): Promise<number> {
  let n = 0;
  const work = place(name).work;
  for (const f of await fs.readdir(work, { recursive: true }).catch(() => [] as string[]))
    if (String(f).endsWith('.events')) n += (await fs.readFile(path.join(work, String(f)), 'utf8')).split('\n').filter((l) => l.startsWith('UP_OK')).length;
  return n;
}

async function until(cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-replay-'));
  await fs.mkdir(path.join(dir, 'origin'));
  img = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 9, g: 8, b: 7 } } }).png().toBuffer();
  origin = await startOrigin(path.join(dir, 'origin'));
  db = await duck();
}, 120_000);

afterAll(async () => {
  db?.close();
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('replay after the unit changed', () => {
  it('an interrupted replay does not resume into a unit recompiled since with another --dest', async () => {
    await scenario('redest');
    expect((await compile('redest', 'dest1')).code).toBe(0); // every file missing: N × NOT_FOUND
    await serve('redest', true);
    const child = ferrySpawn(replayArgs('redest', '--reasons', 'all', '--concurrency', '1'));
    await until(async () => (await journaledOk('redest')) >= 2);
    process.kill(child.pid!, 'SIGINT');
    expect((await once(child, 'exit'))[0]).toBe(130);
    // The operator moves the unit to another destination while the files are gone again.
    await serve('redest', false);
    const forced = await compile('redest', 'dest2', '--force');
    expect(forced.code, forced.stderr).toBe(0);
    await serve('redest', true);
    const r = await ferry(replayArgs('redest', '--reasons', 'all'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('the journal of an interrupted replay is for another selection, source or compile of the unit: every selected row is sent again');
    const paths = await consistent('redest');
    for (const [id, p] of paths) expect(p, id).toContain(`/redest/dest2/m/`);
  }, 120_000);
});

describe('a renewed Parquet that is not one', () => {
  it('is named as itself, with the flag naming its missing column, not as the source manifest', async () => {
    await scenario('swapped');
    expect((await compile('swapped', 'dest')).code).toBe(0); // every file missing: N × NOT_FOUND
    // The operator (or a sync job) put the original manifest where the renewed one was.
    const renewed = path.join(place('swapped').out, 'm.parquet');
    await fs.copyFile(path.join(place('swapped').manifests, 'm.parquet'), renewed);
    const r = await ferry(replayArgs('swapped', '--reasons', 'all'));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${pathToFileURL(renewed).href}: has no column "updated_media_path" (--path-column)`);
    expect(r.stderr).toContain('recompile the unit');
    expect(r.stderr).not.toContain(place('swapped').manifests);
  }, 120_000);
});

describe('an interrupted replay', () => {
  it('is listed in manifest.json by the replay that finishes, with the tasks it finished', async () => {
    await scenario('listed');
    expect((await compile('listed', 'dest')).code).toBe(0); // every file missing: N × NOT_FOUND
    await serve('listed', true);
    const child = ferrySpawn(replayArgs('listed', '--reasons', 'all', '--concurrency', '1'));
    await until(async () => (await journaledOk('listed')) >= 2);
    process.kill(child.pid!, 'SIGINT');
    expect((await once(child, 'exit'))[0]).toBe(130);
    const finished = await journaledOk('listed');
    const r = await ferry(replayArgs('listed', '--reasons', 'all'));
    expect(r.code, r.stderr).toBe(0);
    await consistent('listed');
    type Run = { runId: string; interrupted?: boolean; outcomes?: number; sent?: number; replay?: boolean; finishedAt?: string };
    const m = JSON.parse(await fs.readFile(path.join(place('listed').out, 'm.manifest.json'), 'utf8')) as { runs: Run[]; counts: { resumedFromJournal: number; sentThisRun: number } };
    expect(m.runs).toHaveLength(3);
    const [compiled, stopped, last] = m.runs as [Run, Run, Run];
    expect(compiled).toMatchObject({ sent: N });
    expect(stopped).toMatchObject({ interrupted: true, outcomes: finished, replay: true });
    expect(last).toMatchObject({ sent: N - finished, replay: true });
    expect(new Set(m.runs.map((run) => run.runId)).size).toBe(3);
    expect(m.counts).toMatchObject({ resumedFromJournal: finished, sentThisRun: N - finished });
  }, 120_000);
});

describe('a replay killed after publishing', () => {
  it('leaves a journal that the next replay of the same rows does not take its outcomes from', async () => {
    await scenario('finished');
    expect((await compile('finished', 'dest')).code).toBe(0); // every file missing: N × NOT_FOUND
    const child = ferrySpawn(replayArgs('finished', '--reasons', 'all', '--concurrency', '1'));
    const journal = async () => (await fs.readdir(place('finished').work, { recursive: true }).catch(() => [] as string[])).map(String).find((f) => f.endsWith('.events'));
    const outcomes = async () => {
      const f = await journal();
      return f ? (await fs.readFile(path.join(place('finished').work, f), 'utf8')).split('\n').filter((l) => l.startsWith('DL_ERR')).length : 0;
    };
    await until(async () => (await outcomes()) >= 2);
    process.kill(-child.pid!, 'SIGKILL');
    await once(child, 'exit');
    const file = path.join(place('finished').work, (await journal())!);
    const killedRun = await fs.readFile(file);
    // The files are still missing: the replay ends with the same rows failed, so the same selection.
    const failing = await ferry(replayArgs('finished', '--reasons', 'all'));
    expect(failing.code, failing.stderr).toBe(0);
    expect(failing.stderr).toContain(`0 of ${N} repaired`);
    // What that replay leaves when killed between publishing and removing its journal: a
    // journal of runs its manifest.json lists (here, the killed one).
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, killedRun, { mode: 0o600 });
    await serve('finished', true);
    const r = await ferry(replayArgs('finished', '--reasons', 'all'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${N} of ${N} repaired`);
    const paths = await consistent('finished');
    expect([...paths.values()].filter((p) => p === null)).toEqual([]);
  }, 120_000);
});

describe('replay of rows refused at compile time', () => {
  it('says that the rows matching --reasons were refused before any fetch, not that none matches', async () => {
    const p = place('refused');
    await fs.mkdir(p.manifests, { recursive: true });
    const url = `${origin.url}/file/refused/refused.png`;
    await db.run(`COPY (SELECT * FROM (VALUES (NULL, ${lit(url)}), ('a', NULL), ('a', ${lit(url)})) t(id, media_path)) TO '${path.join(p.manifests, 'm.parquet')}' (FORMAT parquet)`);
    expect((await compile('refused', 'dest')).code).toBe(0);
    const all = await ferry(replayArgs('refused', '--reasons', 'all'));
    expect(all.code, all.stderr).toBe(0);
    expect(all.stderr).toContain('the 3 ledger row(s) matching --reasons all were refused before any fetch');
    expect(all.stderr).not.toContain('no ledger row matches');
    const dup = await ferry(replayArgs('refused', '--reasons', 'DUPLICATE_ID'));
    expect(dup.stderr).toContain('the 1 ledger row(s) matching --reasons DUPLICATE_ID were refused before any fetch');
    const none = await ferry(replayArgs('refused', '--reasons', 'TIMEOUT'));
    expect(none.stderr).toContain('no ledger row matches --reasons TIMEOUT; nothing to do');
  }, 60_000);
});

describe('replay of an id whose first row has an empty url', () => {
  it("sends that row's url, never a later duplicate row's", async () => {
    const p = place('emptyurl');
    await fs.mkdir(p.manifests, { recursive: true });
    await fs.writeFile(path.join(dir, 'origin', 'emptyurl.png'), img);
    const url = `${origin.url}/file/emptyurl/emptyurl.png`;
    await db.run(`COPY (SELECT * FROM (VALUES ('a', ''), ('a', ${lit(url)})) t(id, media_path)) TO '${path.join(p.manifests, 'm.parquet')}' (FORMAT parquet)`);
    expect((await compile('emptyurl', 'dest')).code).toBe(0);
    const before = parseLedger(await fs.readFile(path.join(p.out, 'm.ledger.tsv'), 'utf8')).map((r) => `${r.id}:${r.reason}:${r.stage}`);
    expect(before).toEqual(['a:BAD_URL:download', 'a:DUPLICATE_ID:compile']);
    const r = await ferry(replayArgs('emptyurl', '--reasons', 'all'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('0 of 1 repaired');
    const rows = await db.rows(`SELECT media_path, updated_media_path AS p FROM '${path.join(p.out, 'm.parquet')}'`);
    expect(rows).toEqual([{ media_path: '', p: null }, { media_path: url, p: null }]);
    expect(parseLedger(await fs.readFile(path.join(p.out, 'm.ledger.tsv'), 'utf8')).map((row) => `${row.id}:${row.reason}:${row.stage}`)).toEqual(before);
  }, 60_000);
});

describe('replay of a unit in a subfolder', () => {
  it('writes manifest.json beside the ledger it replayed, where compile reads it', async () => {
    await scenario('nested');
    expect((await compile('nested', 'dest')).code).toBe(0);
    await serve('nested', true);
    const r = await ferry(replayArgs('nested', '--reasons', 'all'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${N} of ${N} repaired`);
    const paths = await consistent('nested');
    expect([...paths.values()].filter((p) => p === null)).toEqual([]);
    await expect(fs.readdir(path.join(place('nested').out, '2024'))).resolves.toEqual(['m.ledger.tsv', 'm.manifest.json', 'm.parquet']);
    // The unit is complete with an empty ledger: --strict passes, and nothing is fetched.
    const before = await origin.stats();
    const again = await compile('nested', 'dest', '--strict');
    expect(again.code, again.stderr).toBe(0);
    expect(await origin.stats()).toEqual(before);
  }, 120_000);
});

describe('replay stopped while it publishes', () => {
  it('leaves no manifest.json saying complete over outputs that disagree, and a second replay finishes', async () => {
    await scenario('publish');
    expect((await compile('publish', 'dest')).code).toBe(0);
    await serve('publish', true);
    const ledger = path.join(place('publish').out, 'm.ledger.tsv');
    const before = await fs.readFile(ledger);
    const child = ferrySpawn(replayArgs('publish', '--reasons', 'all', '--concurrency', '1'));
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await until(async () => (await journaledOk('publish')) >= 1);
    // The ledger cannot be replaced (a folder stands in its way): the replay stops after the
    // Parquet is published and before the ledger is, as a kill there would.
    await fs.rm(ledger);
    await fs.mkdir(ledger);
    // A write refused is the unit's failure, named (exit 1), not a bug.
    expect((await once(child, 'exit'))[0], stderr).toBe(1);
    expect(stderr).toMatch(/^ferry: m: .*m\.ledger\.tsv.*EISDIR/m);
    expect(stderr).not.toContain('internal error');
    await fs.rmdir(ledger);
    await fs.writeFile(ledger, before);
    const m = JSON.parse(await fs.readFile(path.join(place('publish').out, 'm.manifest.json'), 'utf8')) as { status: string };
    expect(m.status).not.toBe('complete');
    const fetched = await origin.stats();
    const again = await ferry(replayArgs('publish', '--reasons', 'all'));
    expect(again.code, again.stderr).toBe(0);
    expect(await origin.stats()).toEqual(fetched); // every outcome came from the journal
    const paths = await consistent('publish');
    expect([...paths.values()].filter((p) => p === null)).toEqual([]);
    expect(await fs.readdir(place('publish').work, { recursive: true })).toEqual([]);
  }, 120_000);
});

describe('a ledger row for an id the renewed Parquet says is migrated', () => {
  it('a replay stopped between its publishes and run again with other --reasons keeps every destination it published', async () => {
    await scenario('reselect');
    expect((await compile('reselect', 'dest')).code).toBe(0); // every file missing: N × NOT_FOUND
    await serve('reselect', true);
    const ledger = path.join(place('reselect').out, 'm.ledger.tsv');
    const before = await fs.readFile(ledger);
    const child = ferrySpawn(replayArgs('reselect', '--reasons', 'all', '--concurrency', '1'));
    await until(async () => (await journaledOk('reselect')) >= 1);
    // The Parquet is published (every id migrated), the ledger is not, as a kill there leaves it.
    await fs.rm(ledger);
    await fs.mkdir(ledger);
    expect((await once(child, 'exit'))[0]).toBe(1);
    await fs.rmdir(ledger);
    await fs.writeFile(ledger, before);
    // The operator finishes with the summary's command, which selects the transient rows (none).
    const r = await ferry(replayArgs('reselect'));
    expect(r.code, r.stderr).toBe(0);
    const paths = await consistent('reselect');
    expect([...paths.entries()].filter(([, p]) => p === null)).toEqual([]);
  }, 120_000);

  it('in a complete unit is refused, naming the id, and the outputs stay as they are', async () => {
    await scenario('edited');
    expect((await compile('edited', 'dest')).code).toBe(0); // every file missing: N × NOT_FOUND
    for (let i = 0; i < 6; i++) await fs.writeFile(path.join(dir, 'origin', `edited-${i}.png`), img);
    expect((await ferry(replayArgs('edited', '--reasons', 'all'))).code).toBe(0);
    const migrated = await consistent('edited');
    expect(migrated.get('r0')).not.toBeNull();
    // A row of the ledger compile wrote, for r0, put back by hand beside today's.
    const ledger = path.join(place('edited').out, 'm.ledger.tsv');
    const rows = (await fs.readFile(ledger, 'utf8')).trimEnd().split('\n');
    const edited = [rows[0], rows[1]!.replace(/^r6\t/, 'r0\t'), ...rows.slice(1)].join('\n') + '\n';
    await fs.writeFile(ledger, edited);
    const outputs = async () => Promise.all(['m.parquet', 'm.manifest.json'].map((f) => fs.readFile(path.join(place('edited').out, f))));
    const kept = await outputs();
    const r = await ferry(replayArgs('edited', '--reasons', 'NOT_FOUND'));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/id "r0".*m\.parquet/);
    expect(r.stderr).toContain('the ledger was edited or comes from another compile');
    expect(await outputs()).toEqual(kept);
    expect(await fs.readFile(ledger, 'utf8')).toBe(edited);
  }, 120_000);
});

describe('two replays of one ledger at once', () => {
  it('the second is refused, naming the running one, and the first finishes as if alone', async () => {
    await scenario('twice');
    expect((await compile('twice', 'dest')).code).toBe(0); // every file missing: N × NOT_FOUND
    await serve('twice', true);
    const child = ferrySpawn(replayArgs('twice', '--reasons', 'all', '--concurrency', '1'));
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await until(async () => (await journaledOk('twice')) >= 1);
    const second = await ferry(replayArgs('twice', '--reasons', 'all'));
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^ferry: m: another replay of .*m\\.ledger\\.tsv is running \\(pid ${child.pid};`, 'm'));
    expect((await once(child, 'exit'))[0], stderr).toBe(0);
    expect(stderr).toContain(`${N} of ${N} repaired`);
    const paths = await consistent('twice');
    expect([...paths.values()].filter((p) => p === null)).toEqual([]);
    const m = JSON.parse(await fs.readFile(path.join(place('twice').out, 'm.manifest.json'), 'utf8')) as { runs: unknown[]; counts: { sentThisRun: number } };
    expect(m.runs).toHaveLength(2);
    expect(m.counts.sentThisRun).toBe(N);
    expect(await fs.readdir(place('twice').work, { recursive: true })).toEqual([]);
  }, 120_000);
});

describe('the ledger named in other ways', () => {
  it('a symlink to the ledger replays the unit the link points to', async () => {
    await scenario('linked');
    expect((await compile('linked', 'dest')).code).toBe(0);
    await serve('linked', true);
    const link = path.join(dir, 'linked', 'failures.ledger.tsv');
    await fs.symlink(path.join(place('linked').out, 'm.ledger.tsv'), link);
    const r = await ferry(['replay', link, ...common('linked'), '--reasons', 'all']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${N} of ${N} repaired`);
    await consistent('linked');
  }, 120_000);
});
