/**
 * Bad input, as users produce it: each gets one clear line naming the flag, file or
 * column (never a stack trace), the documented exit code, and loses nothing already done.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { duck, lit } from '../helpers/duckdb.js';
import { FERRY, type Origin, type Run, ferry, startOrigin } from '../helpers/run.js';

let dir: string;
let origin: Origin;
let db: Awaited<ReturnType<typeof duck>>;

async function manifest(folder: string, name: string, sql: string) {
  await fs.mkdir(path.join(dir, folder), { recursive: true });
  await db.run(`COPY (${sql}) TO '${path.join(dir, folder, name)}' (FORMAT parquet)`);
}

function noStack(r: Run) {
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toContain('internal error');
}

const run = (folder: string, ...extra: string[]) =>
  ferry(['compile', path.join(dir, folder), '--dest', path.join(dir, folder + '-objects'), '--out', path.join(dir, folder + '-out'), '--work-dir', path.join(dir, 'work'), '--progress', 'none', ...extra]);

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-bad-'));
  await fs.mkdir(path.join(dir, 'origin'));
  await fs.writeFile(path.join(dir, 'origin', 'a.png'), await sharp({ create: { width: 40, height: 40, channels: 3, background: 'white' } }).png().toBuffer());
  origin = await startOrigin(path.join(dir, 'origin'));
  db = await duck();
  const good = `SELECT * FROM (VALUES ('a', ${lit(origin.url + '/file/g1/a.png')}), ('b', ${lit(origin.url + '/file/g2/a.png')})) t(id, media_path)`;
  await manifest('good', 'm.parquet', good);
  await manifest('mixed', 'ok.parquet', `SELECT * FROM (VALUES ('a', ${lit(origin.url + '/file/x1/a.png')})) t(id, media_path)`);
  await fs.writeFile(path.join(dir, 'mixed', 'text.parquet'), 'id,media_path\na,http://x/a.jpg\n');
  await fs.writeFile(path.join(dir, 'mixed', 'cut.parquet'), (await fs.readFile(path.join(dir, 'mixed', 'ok.parquet'))).subarray(0, 40));
  await manifest('mixed', 'noid.parquet', `SELECT 'a' AS key, 'http://x/a.jpg' AS media_path`);
  await manifest('mixed', 'clash.parquet', `SELECT 'a' AS id, 'http://x/a.jpg' AS media_path, true AS bad_image`);
  // A manifest behind a mount that is gone, and a link to itself; a link to a folder, and a
  // broken link that names no manifest, are not units.
  await fs.symlink(path.join(dir, 'no-such-mount', 'x.parquet'), path.join(dir, 'mixed', 'gone.parquet'));
  await fs.symlink('self.parquet', path.join(dir, 'mixed', 'self.parquet'));
  await fs.symlink(path.join(dir, 'origin'), path.join(dir, 'mixed', 'folder.parquet'));
  await fs.symlink(path.join(dir, 'no-such-mount', 'notes'), path.join(dir, 'mixed', 'notes.txt'));
  await manifest('guarded', 'm.parquet', `SELECT * FROM (VALUES ('a', ${lit(origin.url + '/file/n1/a.png')}), ('b', ${lit('http://localhost:' + new URL(origin.url).port + '/file/n2/a.png')})) t(id, media_path)`);
  await fs.mkdir(path.join(dir, 'empty'));
}, 60_000);

afterAll(async () => {
  db?.close();
  await origin?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('usage errors exit 2 and name the flag or path', () => {
  it.each([
    [['--concurrency', '0'], '--concurrency'],
    [['--concurrency', 'many'], '--concurrency'],
    [['--concurrency', '0x10'], '--concurrency'],
    [['--retries', '1e1'], '--retries'],
    [['--retries', '-1'], '--retries'],
    // Past 2^31 - 1 ms a Node timer fires after 1 ms: every idle cut would be at once.
    [['--timeout', '2147483648'], '--timeout'],
    [['--max-bytes', '12XB'], '--max-bytes'],
    [['--decode', 'sometimes'], '--decode'],
    [['--profile', 'video'], '--profile'],
    [['--jobs', '0'], '--jobs'],
    [['--jobs', '0x2'], '--jobs'],
    [['--bogus-flag'], 'bogus-flag'],
    [['--origin-header', 'nonsense'], '--origin-header'],
    [['--origin-header', '127.0.0.1=X(A): b'], '--origin-header'],
    [['--origin-header', '127.0.0.1=X-K: a', '--origin-header', '127.0.0.1=x-k: b'], '--origin-header: 127.0.0.1 is given the header x-k twice'],
    [['--part-size', '0'], '--part-size'],
    [['--part-size', '1MiB'], '--part-size'],
    [['--only', 'nope'], '--only'],
    [['--path-column', 'Flag', '--bad-column', 'flag'], '--bad-column'],
  ])('%j', async (extra, named) => {
    const r = await run('good', '--allow-private-network', ...extra);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(named);
    noStack(r);
  });

  it('a missing manifest folder', async () => {
    const r = await run('nowhere');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(path.join(dir, 'nowhere'));
    noStack(r);
  });

  it('skips hidden and in-progress names, as Spark and Hive do', async () => {
    const one = `SELECT 'a' AS id, ${lit(origin.url + '/file/h1/a.png')} AS media_path`;
    await manifest('hidden', 'ok.parquet', one);
    await manifest('hidden/_temporary/0', 'part-0.parquet', one);
    await manifest('hidden', '.draft.parquet', one);
    await manifest('hidden', '_part.parquet', one);
    const r = await run('hidden', '--allow-private-network');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('1 unit(s) compiled');
    expect(await fs.readdir(path.join(dir, 'hidden-out'))).toEqual(['ok.ledger.tsv', 'ok.manifest.json', 'ok.parquet']);
  });

  it('a folder without manifests', async () => {
    const r = await run('empty');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no *.parquet');
  });

  it('--out inside the manifest folder', async () => {
    const r = await ferry(['compile', path.join(dir, 'good'), '--dest', path.join(dir, 'o'), '--out', path.join(dir, 'good', 'out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--out');
  });

  it('--out above the manifest folder, where the outputs of a unit would land inside it', async () => {
    await manifest('above/q/q', 'x.parquet', `SELECT 'a' AS id, ${lit(origin.url + '/file/ab/a.png')} AS media_path`);
    const r = await ferry(['compile', path.join(dir, 'above', 'q'), '--dest', path.join(dir, 'above-objects'), '--out', path.join(dir, 'above'), '--work-dir', path.join(dir, 'work'), '--allow-private-network', '--progress', 'none']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`would write the outputs of unit q/x inside the manifest prefix ${path.join(dir, 'above', 'q')}`);
    noStack(r);
    expect(await fs.readdir(path.join(dir, 'above', 'q'))).toEqual(['q']);
    expect(await fs.stat(path.join(dir, 'above-objects')).catch(() => null)).toBeNull();
  });

  it('a missing --dest', async () => {
    const r = await ferry(['compile', path.join(dir, 'good'), '--out', path.join(dir, 'o')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dest');
  });

  it('a destination scheme this version cannot write', async () => {
    const r = await ferry(['compile', path.join(dir, 'good'), '--dest', 'ftp://host/x', '--out', path.join(dir, 'o')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dest');
  });

  it('an unwritable --out fails before any download, exit 1', async () => {
    await fs.writeFile(path.join(dir, 'a-file'), 'x');
    const before = await origin.stats();
    const r = await ferry(['compile', path.join(dir, 'good'), '--dest', path.join(dir, 'o3'), '--out', path.join(dir, 'a-file', 'out'), '--allow-private-network']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--out .*a-file\/out is not writable/);
    expect(await origin.stats()).toEqual(before);
    noStack(r);
  });

  it.each([
    ['--work-dir', 'a file', (f: string) => ['--work-dir', f], /--work-dir .*a-file-w is not writable: .*not a directory/],
    ['--dest', 'a file', (f: string) => ['--dest', f], /--dest .*a-file-w is not writable: .*a file stands where a folder should be/],
    // Node's recursive mkdir spins for ever where a folder cannot be made under an existing parent.
    ['--work-dir', 'under /proc', () => ['--work-dir', '/proc/ferry-nope/w'], /--work-dir \/proc\/ferry-nope\/w is not writable: ENOENT/],
  ])('%s that is %s fails before any download, exit 1', async (_, __, flags, message) => {
    const file = path.join(dir, 'a-file-w');
    await fs.writeFile(file, 'x');
    const before = await origin.stats();
    const places: Record<string, string> = { '--dest': path.join(dir, 'o4'), '--out': path.join(dir, 'o4-out'), '--work-dir': path.join(dir, 'w4') };
    const [flag, value] = flags(file) as [string, string];
    places[flag] = value;
    const r = await ferry(['compile', path.join(dir, 'good'), ...Object.entries(places).flat(), '--allow-private-network']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(await origin.stats()).toEqual(before);
    noStack(r);
  });

  it.each([
    ['a file', (f: string) => f, /^ferry worker: --dest .*a-file-wd cannot be used: .*a file stands where a folder should be/],
    ['under /proc', () => '/proc/ferry-nope/wd', /^ferry worker: --dest \/proc\/ferry-nope\/wd cannot be used: .*not found/],
  ])('ferry worker with a --dest that is %s fails before any download, exit 1', async (_, dest, message) => {
    // It downloaded every task, then ledgered each as DEST_CONFLICT or UPLOAD_FAILED, and exited 0.
    const file = path.join(dir, 'a-file-wd');
    await fs.writeFile(file, 'x');
    const before = await origin.stats();
    const input = `a\t${origin.url}/file/wd/a.png\n`;
    const r = await ferry(['worker', '--tasks', '-', '--dest', dest(file), '--allow-private-network', '--retries', '0'], { input });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim()).toMatch(message);
    expect(r.stdout).toBe('');
    expect(await origin.stats()).toEqual(before);
    noStack(r);
  });

  it('a proxy variable that is not a URL, for compile and for the worker (its value is not printed)', async () => {
    const env = { HTTP_PROXY: 'not a url:secret', http_proxy: '' };
    const compile = await ferry(['compile', path.join(dir, 'good'), '--dest', path.join(dir, 'o5'), '--out', path.join(dir, 'o5-out'), '--work-dir', path.join(dir, 'w5'), '--allow-private-network'], { env });
    const worker = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, 'o5')], { env, input: 'a\thttp://127.0.0.1:9/a.png\n' });
    for (const r of [compile, worker]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('HTTP_PROXY is not a URL');
      expect(r.stderr).not.toContain('secret');
      noStack(r);
    }
  });

  it.each([
    ['AWS_ENDPOINT_URL_S3', 'localhost:9000', 's3://src/k'],
    ['AWS_ENDPOINT_URL', 'not a url', 's3://src/k'],
    ['STORAGE_EMULATOR_HOST', 'localhost::9023', 'gs://src/k'],
  ])('%s=%j is a usage error naming it, for compile and the worker, before any row is ledgered', async (name, value, url) => {
    // Every s3:// (gs://) row was ledgered HTTP_4XX, permanent ('TypeError, ERR_INVALID_URL',
    // 'EndpointError'), and the unit completed, exit 0; a --dest on S3 failed exit 1 naming no variable.
    const env = { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: '', AWS_ENDPOINT_URL: '', STORAGE_EMULATOR_HOST: '', [name]: value };
    const folder = `env-${name}`;
    await manifest(folder, 'm.parquet', `SELECT 'a' AS id, ${lit(url)} AS media_path`);
    const compile = await ferry(['compile', path.join(dir, folder), '--dest', path.join(dir, folder + '-objects'), '--out', path.join(dir, folder + '-out'), '--work-dir', path.join(dir, 'work'), '--retries', '0'], { env });
    const worker = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, folder + '-w'), '--retries', '0'], { env, input: `a\t${url}\n` });
    for (const r of [compile, worker]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${name} is not`);
      expect(r.stdout).toBe('');
      noStack(r);
    }
    await expect(fs.access(path.join(dir, folder + '-out'))).rejects.toThrow();
  });

  it('a worker tasks file that does not exist, or is a folder', async () => {
    for (const [tasks, says] of [[path.join(dir, 'no-tasks.tsv'), 'no such file'], [dir, 'a folder, not a file']]) {
      const r = await ferry(['worker', '--tasks', tasks!, '--dest', path.join(dir, 'w-objects')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--tasks ${tasks}: ${says}`);
      noStack(r);
    }
  });

  it.each([
    ['', '--dest: empty location'],
    ['ftp://x/y', '--dest: unsupported location scheme "ftp:"'],
  ])('a worker --dest of %j is a usage error naming --dest', async (dest, says) => {
    const r = await ferry(['worker', '--tasks', '-', '--dest', dest], { input: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`ferry worker: ${says}`);
    noStack(r);
  });

  it.each([['BOGUS'], [''], [',']])('replay --reasons %j is a usage error', async (reasons) => {
    const r = await ferry(['replay', path.join(dir, 'none.ledger.tsv'), '--reasons', reasons]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--reasons');
    noStack(r);
  });

  it('a worker tasks file that starts with a byte-order mark: the mark is not part of the first id', async () => {
    const tasks = path.join(dir, 'bom-tasks.tsv');
    await fs.writeFile(tasks, '\uFEFFfirst\thttp://127.0.0.1:9/a.png\r\nsecond\thttp://127.0.0.1:9/b.png\r\n');
    const r = await ferry(['worker', '--tasks', tasks, '--dest', path.join(dir, 'w-bom'), '--allow-private-network', '--retries', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[1]).sort()).toEqual(['first', 'second']);
  });

  it('a worker skips a task line holding a lone CR or bytes that are not UTF-8, whole, instead of running a part of it or a decoded id', async () => {
    const tasks = path.join(dir, 'odd-bytes.tsv');
    const url = (k: string) => `${origin.url}/file/${k}/a.png`;
    const lines = [`a\rb\t${url('ob1')}`, `x\xff\t${url('ob2')}`, `x\xfe\t${url('ob3')}`, `u\t${url('ob4')}\xff`, `ok\t${url('ob5')}`];
    await fs.writeFile(tasks, Buffer.from(lines.join('\n') + '\n', 'latin1'));
    const r = await ferry(['worker', '--tasks', tasks, '--dest', path.join(dir, 'w-odd'), '--allow-private-network', '--retries', '0']);
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t').slice(0, 2).join(' '))).toEqual(['DL_OK ok', 'UP_OK ok']);
    expect(r.stderr).toContain(`${tasks}:1: id contains TAB, CR or LF; line skipped`);
    for (const n of [2, 3, 4]) expect(r.stderr).toContain(`${tasks}:${n}: the line is not UTF-8 text; line skipped`);
    expect((await origin.stats())['/file/ob5/a.png']).toBe(1);
    expect(Object.keys(await origin.stats()).filter((p) => /ob[1-4]/.test(p))).toEqual([]);
  });

  it('a manifest whose name is too long for the file names ferry derives from it fails its unit, saying so; the others complete', async () => {
    const long = 'u'.repeat(240);
    await fs.mkdir(path.join(dir, 'long-name'));
    await fs.copyFile(path.join(dir, 'good', 'm.parquet'), path.join(dir, 'long-name', `${long}.parquet`));
    await fs.copyFile(path.join(dir, 'good', 'm.parquet'), path.join(dir, 'long-name', 'short.parquet'));
    const r = await run('long-name', '--allow-private-network');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ENAMETOOLONG \(a file name longer than the file system allows: rename the manifest\)/);
    expect(r.stderr).toContain('1 unit(s) compiled');
    noStack(r);
  });

  it('says the same when only the folder --out refuses the name (its temporary file\'s is the longest), whatever the pid', async () => {
    // 225 bytes: the work dir's names (`<unit>.<pid>.ledger.tsv`, at most 244) fit, --out's temporary file's (~270) does not.
    await fs.mkdir(path.join(dir, 'long-out'));
    await fs.copyFile(path.join(dir, 'good', 'm.parquet'), path.join(dir, 'long-out', `${'v'.repeat(225)}.parquet`));
    const r = await run('long-out', '--allow-private-network');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot write \S+\.tmp: ENAMETOOLONG \(a file name longer than the file system allows: rename the manifest\)/);
    noStack(r);
  });

  it('a worker skips the tasks after a refused unit directive instead of writing them under the unit before it', async () => {
    const dest = path.join(dir, 'w-directive');
    const url = (k: string) => `${origin.url}/file/${k}/a.png`;
    const input = ['\tunit\t"a"', `x\t${url('d1')}`, '\tunit\t"b//c"', `y\t${url('d2')}`, `z\t${url('d3')}`, '\tunit\t"d"', `w\t${url('d4')}`, ''].join('\n');
    const r = await ferry(['worker', '--tasks', '-', '--dest', dest, '--allow-private-network', '--retries', '0'], { input });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('-:3: the unit directive names "b//c", not a unit');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('UP_OK')).map((l) => l.split('\t')[1]).sort()).toEqual(['w', 'x']);
    const files = (await fs.readdir(dest, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    expect(files.map((f) => path.relative(dest, f.parentPath).split(path.sep)[0]).sort()).toEqual(['a', 'd']);
  });

  it('a worker skips a task line whose id is empty, or an unknown directive, alone: the tasks after it run', async () => {
    const dest = path.join(dir, 'w-empty-id');
    const url = (k: string) => `${origin.url}/file/${k}/a.png`;
    const input = [`\t${url('e1')}`, `x\t${url('e2')}`, '\tnext\t"q"', `y\t${url('e3')}`, ''].join('\n');
    const r = await ferry(['worker', '--tasks', '-', '--dest', dest, '--allow-private-network', '--retries', '0'], { input });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('-:1: unknown directive (a task line needs a non-empty id); line skipped');
    expect(r.stderr).toContain('-:3: unknown directive "next" (a task line needs a non-empty id); line skipped');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('UP_OK')).map((l) => l.split('\t')[1]).sort()).toEqual(['x', 'y']);
  });

  it('a worker refuses a unit directive naming a folder destination\'s temporary folder, and skips its tasks', async () => {
    const dest = path.join(dir, 'w-reserved');
    const input = ['\tunit\t"x/.ferry-tmp"', `y\t${origin.url}/file/r1/a.png`, '\tunit\t"d"', `w\t${origin.url}/file/r2/a.png`, ''].join('\n');
    const r = await ferry(['worker', '--tasks', '-', '--dest', dest, '--allow-private-network', '--retries', '0'], { input });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('-:1: the unit directive names unit "x/.ferry-tmp": .ferry-tmp is the name of a destination folder\'s temporary folder');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('UP_OK')).map((l) => l.split('\t')[1])).toEqual(['w']);
  });

  // A name no resolver answers, looked up in a network namespace of its own (only `lo`):
  // the lookup can reach no server, whatever this machine's resolver is.
  it.skipIf(spawnSync('unshare', ['-n', 'true']).status !== 0)('an s3:// source whose endpoint does not resolve is DNS, not RESET', () => {
    const env = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_S3: '', AWS_ENDPOINT_URL: '' };
    const worker = [FERRY, 'worker', '--tasks', '-', '--dest', path.join(dir, 'w-dns'), '--retries', '0', '--profile', 'any'];
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...worker], { input: 'a\ts3://src/k\n', env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^DL_ERR\ta\tDNS\t1\t/m);
  });

  it.each([
    ['does not exist', (d: string) => path.join(d, 'no-such-root'), 'does not exist'],
    ['is a file', (d: string) => path.join(d, 'origin', 'a.png'), 'is not a folder'],
  ])('a --local-source-root that %s is a usage error, for compile and the worker, before any row is ledgered', async (_, root, says) => {
    // Every file:// row was ledgered BLOCKED_PATH (permanent) and the unit completed, exit 0:
    // a run with the right root then skipped it as complete.
    const local = pathToFileURL(path.join(dir, 'origin', 'a.png')).href;
    await manifest('local', 'm.parquet', `SELECT 'a' AS id, ${lit(local)} AS media_path`);
    const compile = await run('local', '--local-source-root', root(dir));
    const worker = await ferry(['worker', '--tasks', '-', '--dest', path.join(dir, 'w-local'), '--local-source-root', root(dir)], { input: `a\t${local}\n` });
    for (const r of [compile, worker]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`--local-source-root: ${root(dir)} ${says}`);
      expect(r.stdout).toBe('');
      noStack(r);
    }
    await expect(fs.access(path.join(dir, 'local-out'))).rejects.toThrow();
  });

  it('replay with an empty --work-dir (it resolved to the current folder)', async () => {
    const r = await ferry(['replay', path.join(dir, 'none.ledger.tsv'), '--work-dir=']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('ferry: --work-dir: must not be empty');
  });

  it.each([[''], [' ']])('replay of the ledger %j', async (ledger) => {
    // ' ' was a ledger named ' ' in the current folder, said as 'ferry:  : empty location'.
    const r = await ferry(['replay', ledger]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim()).toBe('ferry: replay: the ledger must not be empty');
  });

  it('replay of a ledger that is a folder', async () => {
    // It printed an internal error's stack (EISDIR) and exited 70.
    const folder = path.join(dir, 'folder.ledger.tsv');
    await fs.mkdir(folder, { recursive: true });
    const r = await ferry(['replay', folder]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim()).toBe(`ferry: ${folder}: no such ledger`);
    noStack(r);
  });

  it('replay of a ledger that does not exist', async () => {
    const r = await ferry(['replay', path.join(dir, 'none.ledger.tsv')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('none.ledger.tsv');
    noStack(r);
  });
});

describe('broken manifests beside good ones', () => {
  let r: Run;
  beforeAll(async () => {
    r = await run('mixed', '--allow-private-network');
  }, 60_000);

  it('exit 1, one line per broken unit naming its file and cause', () => {
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/text\.parquet/);
    expect(r.stderr).toMatch(/cut\.parquet/);
    expect(r.stderr).toMatch(/noid.*\bid\b.*--id-column|--id-column.*noid/s);
    expect(r.stderr).toMatch(/bad_image.*--bad-column|--bad-column.*bad_image/s);
    expect(r.stderr).toContain(`ferry: unit gone failed: ${pathToFileURL(path.join(dir, 'mixed', 'gone.parquet')).href}: a symbolic link to ${path.join(dir, 'no-such-mount', 'x.parquet')}, which does not exist`);
    expect(r.stderr).toContain(`ferry: unit self failed: ${pathToFileURL(path.join(dir, 'mixed', 'self.parquet')).href}: a symbolic link to self.parquet, which loops`);
    expect(r.stderr).not.toMatch(/folder|notes/);
    expect(r.stderr).toContain('1 unit(s) compiled, 0 already complete, 6 failed');
    noStack(r);
  });

  it('the good unit still completes', async () => {
    const m = JSON.parse(await fs.readFile(path.join(dir, 'mixed-out', 'ok.manifest.json'), 'utf8'));
    expect(m.status).toBe('complete');
    await expect(fs.stat(path.join(dir, 'mixed-out', 'text.manifest.json'))).rejects.toThrow();
  });
});

describe('the network guard', () => {
  it('a loopback origin without --allow-private-network sees zero requests', async () => {
    const before = await origin.stats();
    const r = await run('guarded');
    expect(r.code).toBe(0);
    expect(await origin.stats()).toEqual(before);
    const ledger = parseLedger(await fs.readFile(path.join(dir, 'guarded-out', 'm.ledger.tsv'), 'utf8'));
    expect(ledger.map((l) => `${l.id}:${l.reason}`)).toEqual(['a:BLOCKED_ADDRESS', 'b:BLOCKED_ADDRESS']);
  });
});
