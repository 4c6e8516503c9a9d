/**
 * The spine, end to end, as a user meets it: manifests written by another Parquet
 * implementation (DuckDB), a real origin process, the built CLI. Checks every row's
 * outcome, the bytes and keys of the objects, that input columns survive unchanged, the
 * ledger, a re-run that downloads nothing, replay, and --only/--force.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { parseEvent } from '../../protocol/index.js';
import { writerTag } from '../../storage/process.js';
import { objectKey } from '../../storage/layout.js';
import { duck, lit } from '../helpers/duckdb.js';
import { type Origin, ferry, startOrigin } from '../helpers/run.js';

let dir: string;
let origin: Origin;
let db: Awaited<ReturnType<typeof duck>>;
const files: Record<string, Buffer> = {};

type Row = { id: string | null; path: string | null; want: 'ok' | string; ext?: string };

function rowsU1(): Row[] {
  return [
    { id: 'jpg 1', path: '/file/a/good.jpg', want: 'ok', ext: 'jpg' },
    { id: 'ünï/cödé', path: '/file/b/good.png', want: 'ok', ext: 'png' },
    { id: 'w/../../x', path: '/file/c/good.webp', want: 'ok', ext: 'webp' },
    { id: 'lying', path: '/file/d/lie.jpg?type=text/plain', want: 'ok', ext: 'png' },
    { id: 'tiny', path: '/file/e/tiny.png', want: 'TOO_FEW_PIXELS' },
    { id: 'trunc', path: '/file/f/trunc.jpg', want: 'INCOMPLETE_IMAGE' },
    { id: 'html', path: '/file/g/page.jpg?type=image/jpeg', want: 'NOT_ALLOWED_TYPE' },
    { id: 'empty', path: '/file/h/empty.jpg', want: 'EMPTY' },
    { id: 'missing', path: '/status/404/m', want: 'NOT_FOUND' },
    { id: 'ftp', path: 'ftp://example.invalid/x.jpg', want: 'UNSUPPORTED_SCHEME' },
    { id: 'flaky', path: '/file/i/good.jpg?fail=1&status=503', want: 'ok', ext: 'jpg' },
    { id: 'down', path: '/file/j/good.png?fail=4&status=500', want: 'HTTP_5XX' },
    { id: null, path: '/file/k/good.png', want: 'NULL_ID' },
    { id: 'nourl', path: null, want: 'NULL_URL' },
    { id: 'jpg 1', path: '/file/l/good.png', want: 'DUPLICATE_ID' },
    { id: 'tab\there', path: '/file/m/good.png', want: 'INVALID_ID' },
    { id: '..', path: '/file/n/good.gif', want: 'ok', ext: 'gif' },
  ];
}

const fullUrl = (p: string | null) => (p === null ? null : p.startsWith('/') ? origin.url + p : p);
const fileOf = (p: string) => p.split('?')[0]!.split('/').pop()!;
const common = () => ['--allow-private-network', '--retries', '3', '--timeout', '5000', '--concurrency', '8', '--jobs', '2', '--progress', 'plain', '--work-dir', path.join(dir, '.ferry')];
const compileArgs = () => ['compile', path.join(dir, 'manifests'), '--dest', path.join(dir, 'objects'), '--out', path.join(dir, 'out'), ...common()];

async function writeU1(rows: Row[]) {
  const values = rows
    .map((r, i) => `(${lit(r.id)}, ${lit(fullUrl(r.path))}, 'title ${i}', ${i}, ${i % 3 === 0 ? 'NULL' : i * 1.5}, ${9007199254740993n + BigInt(i)}, ['t${i}', 'x'], TIMESTAMP '2024-01-01 00:00:00.123456' + INTERVAL (${i}) HOUR, ${i}.25::DECIMAL(12,2))`)
    .join(',\n');
  await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path, title, n, score, big, tags, created, price)) TO '${path.join(dir, 'manifests', 'u1.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 4)`);
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-e2e-'));
  const root = path.join(dir, 'origin');
  await fs.mkdir(root);
  await fs.mkdir(path.join(dir, 'manifests', 'sub'), { recursive: true });
  const make = (fmt: 'jpeg' | 'png' | 'webp' | 'gif', w: number, h: number) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: 200, g: 30, b: 60 } } }).toFormat(fmt).toBuffer();
  files['good.jpg'] = await make('jpeg', 64, 48);
  files['good.png'] = await make('png', 50, 40);
  files['good.webp'] = await make('webp', 40, 40);
  files['good.gif'] = await make('gif', 33, 33);
  files['lie.jpg'] = await make('png', 70, 70);
  files['tiny.png'] = await make('png', 8, 8);
  files['trunc.jpg'] = (await make('jpeg', 300, 200)).subarray(0, 600);
  files['page.jpg'] = Buffer.from('<!DOCTYPE html><html><body>gone</body></html>');
  files['empty.jpg'] = Buffer.alloc(0);
  for (const [name, body] of Object.entries(files)) await fs.writeFile(path.join(root, name), body);
  origin = await startOrigin(root);
  db = await duck();
  await writeU1(rowsU1());
  await db.run(
    `COPY (SELECT * FROM (VALUES (1::BIGINT, ${lit(origin.url + '/file/u2a/good.jpg')}), (9007199254740993::BIGINT, ${lit(origin.url + '/file/u2b/good.png')})) t(id, media_path)) TO '${path.join(dir, 'manifests', 'sub', 'u2.parquet')}' (FORMAT parquet)`,
  );
}, 60_000);

afterAll(async () => {
  db?.close();
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('ferry compile, end to end', () => {
  let first: Awaited<ReturnType<typeof ferry>>;

  beforeAll(async () => {
    first = await ferry(compileArgs());
  }, 120_000);

  it('exits 0 and says what it did', () => {
    expect(first.stderr).toContain('2 unit(s) compiled');
    expect(first.code).toBe(0);
  });

  it('gives every row its outcome, in input order', async () => {
    const out = await db.rows(`SELECT id, updated_media_path AS p, bad_image AS bad FROM '${path.join(dir, 'out', 'u1.parquet')}'`);
    const rows = rowsU1();
    expect(out).toHaveLength(rows.length);
    const invalid = ['TOO_FEW_PIXELS', 'INCOMPLETE_IMAGE', 'NOT_ALLOWED_TYPE', 'EMPTY'];
    rows.forEach((r, i) => {
      const o = out[i]!;
      expect(o.id).toBe(r.id);
      if (r.want === 'ok') expect(o.p, `row ${i} ${r.id}`).toMatch(/^file:\/\//);
      else expect(o.p, `row ${i} ${r.id}`).toBeNull();
      expect(o.bad, `row ${i} ${r.id}`).toBe(invalid.includes(r.want));
    });
  });

  it('writes the bytes it fetched under the deterministic key, with the real extension', async () => {
    const out = await db.rows(`SELECT id, updated_media_path AS p FROM '${path.join(dir, 'out', 'u1.parquet')}' WHERE p IS NOT NULL`);
    for (const r of rowsU1().filter((x) => x.want === 'ok')) {
      const o = out.find((x) => x.id === r.id)!;
      const file = fileURLToPath(String(o.p));
      expect(path.relative(path.join(dir, 'objects'), file)).toBe(objectKey(r.id!, r.ext!, 'u1'));
      expect(createHash('sha256').update(await fs.readFile(file)).digest('hex')).toBe(createHash('sha256').update(files[fileOf(r.path!)]!).digest('hex'));
    }
    const all = await fs.readdir(path.join(dir, 'objects'), { recursive: true });
    expect(all.filter((f) => f.includes('ferry-tmp'))).toEqual([]);
    expect((await fs.readdir(path.join(dir, 'out'), { recursive: true })).filter((f) => f.includes('ferry-tmp'))).toEqual([]);
  });

  it('keeps every input column, type and value', async () => {
    const input = path.join(dir, 'manifests', 'u1.parquet');
    const renewed = path.join(dir, 'out', 'u1.parquet');
    const types = async (f: string) => (await db.rows(`DESCRIBE SELECT * FROM '${f}'`)).map((r) => `${r.column_name}:${r.column_type}`);
    expect(await types(renewed)).toEqual([...(await types(input)), 'updated_media_path:VARCHAR', 'bad_image:BOOLEAN']);
    const before = await db.rows(`SELECT * FROM '${input}'`);
    const after = await db.rows(`SELECT * EXCLUDE (updated_media_path, bad_image) FROM '${renewed}'`);
    expect(after).toEqual(before);
    const u2 = await db.rows(`SELECT id::VARCHAR AS id, updated_media_path AS p FROM '${path.join(dir, 'out', 'sub', 'u2.parquet')}'`);
    expect(u2.map((r) => r.id)).toEqual(['1', '9007199254740993']);
    expect(String(u2[1]!.p)).toContain('/sub/u2/');
    expect(String(u2[1]!.p)).toContain('/9007199254740993.png');
  });

  it('ledgers every failure with its reason, class and stage', async () => {
    const ledger = parseLedger(await fs.readFile(path.join(dir, 'out', 'u1.ledger.tsv'), 'utf8'));
    const want = rowsU1().filter((r) => r.want !== 'ok');
    expect(ledger.map((r) => [r.id, r.reason])).toEqual(want.map((r) => [r.id, r.want]));
    const byId = new Map(ledger.map((r) => [r.id, r]));
    expect(byId.get('down')).toMatchObject({ stage: 'download', attempts: 4 });
    expect(byId.get('tiny')).toMatchObject({ stage: 'validate' });
    expect(byId.get('nourl')).toMatchObject({ stage: 'compile', attempts: 0, url: null });
    const text = await fs.readFile(path.join(dir, 'out', 'u1.ledger.tsv'), 'utf8');
    expect(text.split('\n')[0]).toBe('id\treason\tclass\tstage\tattempts\turl\tdetail');
    expect(text).toContain('tab\\there\tINVALID_ID\tpermanent\tcompile\t0\t');
    expect(text).toMatch(/\nmissing\tNOT_FOUND\tpermanent\tdownload\t1\t/);
    const m = JSON.parse(await fs.readFile(path.join(dir, 'out', 'u1.manifest.json'), 'utf8'));
    expect(m).toMatchObject({ status: 'complete', unit: 'u1', counts: { rows: 17, migrated: 6 } });
  });

  it('re-runs with zero downloads', async () => {
    const before = await origin.stats();
    const again = await ferry(compileArgs());
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('2 already complete');
    expect(await origin.stats()).toEqual(before);
  });

  it('--strict fails a re-run whose complete units hold ledger rows, as it failed the first run', async () => {
    const r = await ferry([...compileArgs(), '--strict']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--strict: the ledgers of units already complete hold \d+ row\(s\)/);
  });

  it('replays only the transient failure and merges the repair', async () => {
    const before = await origin.stats();
    const r = await ferry(['replay', path.join(dir, 'out', 'u1.ledger.tsv'), ...common().filter((a, i, all) => a !== '--jobs' && all[i - 1] !== '--jobs')]);
    expect(r.stderr).toContain('1 of 1 repaired');
    expect(r.code).toBe(0);
    const after = await origin.stats();
    const changed = Object.keys(after).filter((k) => after[k] !== before[k]);
    expect(changed).toEqual(['/file/j/good.png']);
    const ledger = parseLedger(await fs.readFile(path.join(dir, 'out', 'u1.ledger.tsv'), 'utf8'));
    expect(ledger.map((x) => x.id)).not.toContain('down');
    expect(ledger.map((x) => x.id)).toContain('missing');
    const row = await db.rows(`SELECT updated_media_path AS p FROM '${path.join(dir, 'out', 'u1.parquet')}' WHERE id = 'down'`);
    expect(String(row[0]!.p)).toMatch(/^file:.*\/u1\/..\/down\.png$/);
  });

  it('refuses, before any fetch, a ledger edited so that a row has no outcome', async () => {
    const edited = path.join(dir, 'out-edited');
    await fs.cp(path.join(dir, 'out'), edited, { recursive: true });
    const file = path.join(edited, 'u1.ledger.tsv');
    await fs.writeFile(file, (await fs.readFile(file, 'utf8')).split('\n').filter((l) => !l.startsWith('missing\t')).join('\n'));
    const before = await origin.stats();
    const r = await ferry(['replay', file, '--reasons', 'all', ...common().filter((a, i, all) => a !== '--jobs' && all[i - 1] !== '--jobs')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/row \d+ \(id "missing"\) has neither a destination in u1\.parquet nor a ledger row/);
    expect(r.stderr).not.toContain('internal error');
    expect(await origin.stats()).toEqual(before);
  });

  it('--only X --force recompiles X alone, rewriting no object', async () => {
    const u1Before = await fs.readFile(path.join(dir, 'out', 'u1.manifest.json'), 'utf8');
    const obj = path.join(dir, 'objects', objectKey('1', 'jpg', 'sub/u2'));
    const mtime = (await fs.stat(obj)).mtimeMs;
    const before = await origin.stats();
    const r = await ferry([...compileArgs(), '--only', 'sub/u2', '--force']);
    expect(r.code).toBe(0);
    const after = await origin.stats();
    expect(Object.keys(after).filter((k) => after[k] !== before[k]).sort()).toEqual(['/file/u2a/good.jpg', '/file/u2b/good.png']);
    expect(await fs.readFile(path.join(dir, 'out', 'u1.manifest.json'), 'utf8')).toBe(u1Before);
    expect((await fs.stat(obj)).mtimeMs).toBe(mtime);
    const m = JSON.parse(await fs.readFile(path.join(dir, 'out', 'sub', 'u2.manifest.json'), 'utf8'));
    expect(m.runs).toHaveLength(2);
  });
});

describe('ferry worker, standalone', () => {
  it('prints only event lines on stdout, one terminal event per task', async () => {
    const tasks = [`a\t${origin.url}/file/w1/good.jpg`, `b b\t${origin.url}/status/404/w2`, `c\t${origin.url}/file/w3/tiny.png`].join('\n') + '\n';
    const r = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, 'wdest'), '--allow-private-network'], { input: tasks });
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split('\n').map(parseEvent);
    const terminal = events.filter((e) => e.kind !== 'DL_OK');
    expect(terminal.map((e) => `${e.id}:${e.kind}`).sort()).toEqual(['a:UP_OK', 'b b:DL_ERR', 'c:BAD_IMAGE']);
    const up = events.find((e) => e.kind === 'UP_OK');
    expect(up).toMatchObject({ ext: 'jpg', width: 64, height: 48, existed: false, bytes: files['good.jpg']!.length });
    expect(r.stderr).toMatch(/^PROGRESS v=1 .*UpOk=1/m);
  });

  it('removes at exit what killed writers left under every unit it served, not only the last', async () => {
    const dest = path.join(dir, 'wunits');
    // A killed writer's temporary file in each unit's temporary folder (`<shard>-<name>.<writer>-<n>.tmp`).
    const leftovers = ['ua', 'ub'].map((u) => path.join(dest, '.ferry-tmp', u, `ab-old.png.${writerTag(4_194_305)}-0.tmp`));
    for (const f of leftovers) {
      await fs.mkdir(path.dirname(f), { recursive: true });
      await fs.writeFile(f, 'half an object');
    }
    const tasks = ['\tunit\t"ua"', `a\t${origin.url}/file/wu1/good.png`, '\tunit\t"ub"', `b\t${origin.url}/file/wu2/good.png`].join('\n') + '\n';
    const r = await ferry(['worker', '--tasks', '-', '--dest', dest, '--allow-private-network'], { input: tasks });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('UP_OK')).length).toBe(2);
    expect((await fs.readdir(dest, { recursive: true })).filter((f) => f.includes('ferry-tmp'))).toEqual([]);
  });

  it('reads file:// URLs only under --local-source-root, and never outside it', async () => {
    const root = path.join(dir, 'origin');
    const tasks = [`in\tfile://${root}/good.png`, `out\tfile://${dir}/manifests/u1.parquet`, `esc\tfile://${root}/../manifests/u1.parquet`].join('\n') + '\n';
    const without = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, 'wlocal')], { input: tasks });
    expect(without.stdout.trim().split('\n').map((l) => l.split('\t').slice(0, 4).join(' ')).sort()).toEqual([
      'DL_ERR esc UNSUPPORTED_SCHEME 0',
      'DL_ERR in UNSUPPORTED_SCHEME 0',
      'DL_ERR out UNSUPPORTED_SCHEME 0',
    ]);
    const r = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, 'wlocal'), '--local-source-root', root], { input: tasks });
    const terminal = r.stdout.trim().split('\n').filter((l) => !l.startsWith('DL_OK')).map((l) => l.split('\t').slice(0, 3).join(' ')).sort();
    expect(terminal).toEqual(['DL_ERR esc BLOCKED_PATH', 'DL_ERR out BLOCKED_PATH', 'UP_OK in file://' + path.join(dir, 'wlocal', objectKey('in', 'png'))]);
  });
});
