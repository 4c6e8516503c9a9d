// Manifests ferry cannot use fail their unit with one clear line naming the file (and the
// column and flag); a crash of the wasm decoder is one of them and leaves the process up.
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Oracle } from './duckdb-oracle.js';
import { footerTail, readFooter } from './footer.js';
import { ManifestError, renewManifest, scanManifest } from './index.js';
import type { KeyColumns, OutputColumns } from './index.js';
import { FIXTURES, OUT, recorder } from './testing.js';
import { TType, field, setField, str, struct, structs } from './thrift.js';

let oracle: Oracle;
let dir: string;
let good: string;
const KEYS: KeyColumns = { id: 'id', url: 'url' };

beforeAll(async () => {
  oracle = await Oracle.open();
  dir = await mkdtemp(join(tmpdir(), 'ferry-parquet-errors-'));
  good = join(dir, 'good.parquet');
  await oracle.run(
    `COPY (SELECT 'id-' || i AS id, 'https://x/' || i AS url, i * 0.5 AS score, i AS n, ` +
      `NULL::VARCHAR AS updated_media_path_x FROM range(100) r(i)) TO '${good}' (FORMAT parquet)`,
  );
});
afterAll(async () => {
  oracle.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs scan and renew on the file; both must fail alike; renew must leave no output. */
async function expectRefused(file: string, message: RegExp, keys: KeyColumns = KEYS, out: OutputColumns = OUT): Promise<void> {
  const output = join(dir, `out-${Math.random().toString(36).slice(2)}.parquet`);
  for (const call of [() => scanManifest(file, keys, out, () => {}), () => renewManifest(file, output, keys, out, recorder().outputsFor)]) {
    const error = await call().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).code).toBe('MANIFEST');
    expect((error as ManifestError).file).toBe(file);
    expect((error as Error).message.startsWith(`${file}: `)).toBe(true);
    expect((error as Error).message).not.toContain('\n');
    expect((error as Error).message).toMatch(message);
  }
  expect(await readdir(dir)).not.toContain(output.slice(dir.length + 1));
}

describe('columns', () => {
  it('a missing id column names it and --id-column', () =>
    expectRefused(good, /has no column "ident" \(--id-column\); its columns: id, url, score, n/, { id: 'ident', url: 'url' }));

  it('a missing url column names it and --url-column', () => expectRefused(good, /has no column "link" \(--url-column\)/, { id: 'id', url: 'link' }));

  it('an id column of an unusable type names it, its type and --id-column', () =>
    expectRefused(good, /column "score" \(--id-column\) has type decimal\(\d+, 1\); it must be a string, binary or integer \(or decimal of scale 0\) column/, { id: 'score', url: 'url' }));

  it('a url column that is not text names it and --url-column', () =>
    expectRefused(good, /column "n" \(--url-column\) has type Int64; it must be a string or binary column/, { id: 'id', url: 'n' }));

  it('an input column named like the path output names it and --path-column', () =>
    expectRefused(good, /already has a column named "score", an output column; rename the output with --path-column/, KEYS, { path: 'score', bad: 'bad_image' }));

  it('an input column named like the bad output names it and --bad-column', () =>
    expectRefused(good, /already has a column named "n", an output column; rename the output with --bad-column/, KEYS, { path: 'updated_media_path', bad: 'n' }));

  // DuckDB would rename the output and answer `SELECT score` with the input's column; Spark
  // would refuse the file for a duplicate column.
  it.each([
    [{ path: 'SCORE', bad: 'bad_image' }, /already has a column named "score", which DuckDB and Spark \(ignoring case\) take for the output column "SCORE"; rename the output with --path-column/],
    [{ path: 'updated_media_path', bad: 'N' }, /already has a column named "n", which DuckDB and Spark \(ignoring case\) take for the output column "N"; rename the output with --bad-column/],
  ])('an input column named like an output but for case: %j', (out, message) => expectRefused(good, message, KEYS, out));

  it('two columns named like the id column (Parquet allows it; which one holds the ids is unclear)', async () => {
    const file = join(dir, 'two-ids.parquet');
    const id = { t: TType.Binary, v: new TextEncoder().encode('id') } as const;
    // Column "n" renamed "id", in the schema and in its column chunks' paths.
    await writeFile(file, await withFooter(good, (meta) => {
      setField(structs(meta, 2).find((e) => str(e, 4) === 'n')!, 4, id);
      const chunks = structs(meta, 4).flatMap((rowGroup) => structs(rowGroup, 1).map((chunk) => struct(chunk, 3)!));
      for (const cmd of chunks.filter((c) => Buffer.from(path(c)).toString() === 'n')) setField(cmd, 3, { t: TType.List, elem: TType.Binary, items: [id] });
    }));
    expect((await oracle.columns(file)).map((c) => c.name)).toEqual(['id', 'url', 'score', 'id_1', 'updated_media_path_x']);
    await expectRefused(file, /has 2 columns named "id" \(--id-column\): which one holds the keys is ambiguous/);
  });
});

describe('files that are not (whole) Parquet', () => {
  it('a text file named .parquet', async () => {
    const file = join(dir, 'notes.parquet');
    await writeFile(file, 'id,url\n1,https://x/1\n'.repeat(10));
    await expectRefused(file, /not a Parquet file \(no PAR1 magic at the start\)/);
  });

  it('a truncated file', async () => {
    const file = join(dir, 'truncated.parquet');
    const bytes = await readFile(good);
    await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectRefused(file, /no PAR1 magic at the end: truncated or not a Parquet file/);
  });

  it('an empty file', async () => {
    const file = join(dir, 'empty.parquet');
    await writeFile(file, '');
    await expectRefused(file, /empty file, not a Parquet file/);
  });

  it('a file too short to be Parquet', async () => {
    const file = join(dir, 'short.parquet');
    await writeFile(file, 'PAR1PAR1');
    await expectRefused(file, /only 8 bytes, too short for a Parquet file/);
  });

  it('a missing file', () => expectRefused(join(dir, 'absent.parquet'), /cannot open: ENOENT/));

  it('a footer length that does not fit the file', async () => {
    const file = join(dir, 'bad-length.parquet');
    const bytes = Buffer.from(await readFile(good));
    bytes.writeUInt32LE(0x7fffffff, bytes.length - 8);
    await writeFile(file, bytes);
    await expectRefused(file, /footer length 2147483647 does not fit a file of \d+ bytes/);
  });

  it('a corrupt footer', async () => {
    const file = join(dir, 'bad-footer.parquet');
    const garbage = Buffer.alloc(64, 0xee);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(garbage.length);
    await writeFile(file, Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(100), garbage, len, Buffer.from('PAR1')]));
    await expectRefused(file, /corrupt footer/);
  });
});

describe('a footer whose row counts lie (DuckDB and parquet-wasm would read different rows)', () => {
  type Meta = Parameters<typeof footerTail>[0];
  const rowGroup = (meta: Meta) => structs(meta, 4)[0]!;
  const rows = (meta: Meta, n: bigint) => setField(rowGroup(meta), 3, { t: TType.I64, v: n });
  const values = (meta: Meta, n: bigint) => {
    for (const chunk of structs(rowGroup(meta), 1)) setField(struct(chunk, 3)!, 5, { t: TType.I64, v: n });
  };
  it.each([
    ['fewer rows than its columns hold values', (m: Meta) => rows(m, 40n), /corrupt footer: row group 0 says it has 40 rows, but its column "id" holds 100 values/],
    ['more rows than its columns hold values', (m: Meta) => rows(m, 200n), /corrupt footer: row group 0 says it has 200 rows, but its column "id" holds 100 values/],
    ['no rows, hiding its pages', (m: Meta) => rows(m, 0n), /corrupt footer: row group 0 says it has 0 rows, but its column "id" holds 100 values/],
    ['a negative row count', (m: Meta) => rows(m, -5n), /corrupt footer: row group 0 has no valid row count/],
    ['rows and values that agree, but not with the pages', (m: Meta) => (rows(m, 40n), values(m, 40n)), /row group 0: the footer says 40 rows, its pages hold 100: corrupt file/],
  ])('%s', async (_, edit, message) => {
    const file = join(dir, `lying-${Math.random().toString(36).slice(2)}.parquet`);
    await writeFile(file, await withFooter(good, edit));
    await expectRefused(file, message);
  });
});

describe('a crash of the wasm decoder', () => {
  it('becomes a ManifestError, and the codec keeps working', async () => {
    // Column chunks pointing at byte 4 make parquet-wasm panic (RuntimeError: unreachable)
    // inside an async closure: an uncaught exception that would end a whole process.
    const file = join(dir, 'panics.parquet');
    const input = join(FIXTURES, 'alltypes_plain.parquet');
    await writeFile(file, await withFooter(input, (meta) => {
      for (const chunk of structs(structs(meta, 4)[0]!, 1)) setField(struct(chunk, 3)!, 9, { t: TType.I64, v: 4n });
    }));
    const keys = { id: 'id', url: 'string_col' };
    const error = await renewManifest(file, join(dir, 'never.parquet'), keys, OUT, recorder().outputsFor).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toMatch(
      new RegExp(`^${file}: cannot read the Parquet file: the codec crashed: RuntimeError: unreachable \\(a damaged page or footer, or a text column that is not UTF-8, stops the decoder so\\)$`),
    );
    const info = await scanManifest(input, { id: 'id', url: 'string_col' }, OUT, () => {});
    expect(info.rows).toBe(8);
  });
});

describe('a damaged page past the first row groups', () => {
  it('says after how many row groups the decoder stopped, and what usually stops it', async () => {
    const file = join(dir, 'damaged-page.parquet');
    await oracle.run(`COPY (SELECT 'c' || i AS id, NULL::VARCHAR AS url FROM range(20000) r(i)) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 5000)`);
    const bytes = await readFile(file);
    bytes.write('\xde\xad\xbe\xef', 60_000, 'latin1'); // inside the third row group's id pages
    await writeFile(file, bytes);
    const error = await scanManifest(file, { id: 'id', url: 'url' }, OUT, () => {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toBe(
      `${file}: cannot read the Parquet file: the codec crashed: RuntimeError: unreachable, after 2 row group(s) were read (a damaged page or footer, or a text column that is not UTF-8, stops the decoder so)`,
    );
  });
});

describe('callers', () => {
  it('an error thrown by outputsFor is passed through and the output removed', async () => {
    const output = join(dir, 'callback-throws.parquet');
    const boom = new Error('ledger full');
    await expect(renewManifest(good, output, KEYS, OUT, () => Promise.reject(boom))).rejects.toBe(boom);
    expect(await readdir(dir)).not.toContain('callback-throws.parquet');
  });

  it('an error thrown by onRowGroup is passed through', async () => {
    const boom = new Error('disk full');
    await expect(scanManifest(good, KEYS, OUT, () => { throw boom; })).rejects.toBe(boom);
  });

  it('outputs of the wrong length are a bug, not a manifest error', async () => {
    const output = join(dir, 'short-outputs.parquet');
    const error = await renewManifest(good, output, KEYS, OUT, (ids) => ({ paths: ids.slice(1), bad: ids.map(() => false) })).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(ManifestError);
    expect((error as Error).message).toMatch(/outputsFor returned 99 paths and 100 bad flags for a row group of 100 rows/);
    expect(await readdir(dir)).not.toContain('short-outputs.parquet');
  });

  it('several calls at once, served in turn', async () => {
    const copies = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const file = join(dir, `copy-${i}.parquet`);
        await copyFile(good, file);
        return file;
      }),
    );
    const results = await Promise.all(copies.map((f) => renewManifest(f, `${f}.renewed`, KEYS, OUT, recorder().outputsFor)));
    expect(results.map((r) => r.rows)).toEqual([100, 100, 100, 100]);
    for (const f of copies) expect(await oracle.count(`${f}.renewed`)).toBe(100);
  });
});

/** A column chunk's path_in_schema, when it is one name long. */
function path(cmd: ReturnType<typeof struct> & object): Uint8Array {
  const p = field(cmd, 3);
  return p?.t === TType.List && p.items.length === 1 && p.items[0]!.t === TType.Binary ? p.items[0]!.v : new Uint8Array();
}

/** The file's bytes with its footer edited. */
async function withFooter(file: string, edit: (meta: Parameters<typeof footerTail>[0]) => void): Promise<Buffer> {
  const { open } = await import('node:fs/promises');
  const fh = await open(file);
  const footer = await readFooter(fh).finally(() => fh.close());
  edit(footer.meta);
  const bytes = await readFile(file);
  return Buffer.concat([bytes.subarray(0, footer.start), footerTail(footer.meta)]);
}
