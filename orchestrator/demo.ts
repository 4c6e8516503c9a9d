/**
 * `ferry demo`: the embedded default. Starts a local origin of generated images (good
 * and deliberately bad), writes two example manifests, compiles them to a local folder
 * and shows where everything landed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseWorkerFlags } from '../protocol/index.js';
import { makeFolder } from '../storage/index.js';
import { compileAll } from './compile.js';
import { compileConfig, parseWith, CompileArgs } from './config.js';
import { startDemoOrigin } from './demo/origin.js';
import { type DemoRow, writeDemoManifest } from './demo/manifests.js';
import { EXIT, PlaceError, UsageError } from './errors.js';
import { Stores } from './io.js';
import { Board } from './progress.js';
import { replayLedger } from './replay.js';
import { printSummary, shellWord } from './summary.js';

function rows(origin: string): { products: DemoRow[]; catalog: DemoRow[] } {
  const t0 = Date.UTC(2024, 0, 1);
  const ext = ['jpg', 'png', 'webp', 'gif'];
  const row = (id: string, url: string | null, i: number): DemoRow => ({
    id,
    url,
    title: `item ${i}`,
    price: i % 5 === 0 ? null : 9.99 + i,
    tags: i % 2 ? ['sale', 'new'] : [],
    created: new Date(t0 + i * 3_600_123),
  });
  const products = Array.from({ length: 40 }, (_, i) => row(`p-${i}`, `${origin}/img/${i}.${ext[i % 4]}`, i));
  products.push(
    row('lying type', `${origin}/lying/photo.jpg`, 40),
    row('truncated', `${origin}/bad/truncated.jpg`, 41),
    row('html', `${origin}/bad/error-page.jpg`, 42),
    row('tiny', `${origin}/bad/tiny.png`, 43),
    row('empty', `${origin}/bad/empty.jpg`, 44),
    row('missing', `${origin}/img/none.jpg`, 45),
    row('flaky', `${origin}/flaky/once.webp`, 46),
    row('down', `${origin}/down/then-back.jpg`, 47),
    row('ftp', 'ftp://files.example/a.jpg', 48),
    row('p-1', `${origin}/img/1.png`, 49), // a duplicate id
    row('no url', null, 50),
  );
  const catalog = Array.from({ length: 8 }, (_, i) => row(`c/${i} ü`, `${origin}/img/${40 + i}.${ext[i % 4]}`, i));
  catalog.push(row('../escape', `${origin}/img/47.gif`, 9));
  return { products, catalog };
}

/** What the demo writes in its folder: all it ever removes there. */
const DEMO_ENTRIES = ['manifests', 'objects', 'out', '.ferry'] as const;
/** Marks a folder as the demo's, so a second run may clear what the first one wrote. */
const MARKER = '.ferry-demo';

/** True when `p` (symlinks followed) is a file; false when it, or a folder on its path, is missing or not one. */
async function isFile(p: string): Promise<boolean> {
  return (await fs.stat(p).catch(() => null))?.isFile() ?? false;
}

/**
 * Readies the demo's folder: a new or empty folder is used as it is; a folder an earlier
 * demo made (it holds the marker) loses what that demo wrote and nothing else; any other
 * folder is refused, for it may hold someone's files.
 */
async function prepareDemoDir(root: string): Promise<void> {
  let entries: string[];
  try {
    entries = await fs.readdir(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') entries = [];
    else if (code === 'ENOTDIR') throw new UsageError(`--dir ${root} ${(await isFile(root)) ? 'is a file' : 'has a file on its path'}, not a folder`);
    else throw new UsageError(`--dir ${root}: ${(e as Error).message}`);
  }
  if (entries.length > 0 && !entries.includes(MARKER)) {
    throw new UsageError(`--dir ${root} is not empty and was not made by ferry demo; name a new or empty folder (the demo clears its folder on each run)`);
  }
  try {
    await Promise.all(DEMO_ENTRIES.map((name) => fs.rm(path.join(root, name), { recursive: true, force: true })));
    // makeFolder, not fs.mkdir's recursive mode, which spins forever under /proc.
    await makeFolder(root);
    await fs.writeFile(path.join(root, MARKER), 'made by `ferry demo`: a second run clears manifests/, objects/, out/ and .ferry/ here\n');
  } catch (e) {
    throw new PlaceError(`--dir ${root} is not writable: ${(e as Error).message}`);
  }
}

export async function runDemo(dir: string): Promise<number> {
  // '' would resolve to the current folder: never the user's meaning.
  if (dir.trim() === '') throw new UsageError('--dir: must not be empty');
  const root = path.resolve(dir);
  await prepareDemoDir(root);
  const origin = await startDemoOrigin();
  try {
    const { products, catalog } = rows(origin.url);
    await writeDemoManifest(path.join(root, 'manifests', 'products.parquet'), products);
    await writeDemoManifest(path.join(root, 'manifests', '2024', 'catalog.parquet'), catalog);
    process.stderr.write(`ferry demo: origin at ${origin.url}; manifests in ${path.join(root, 'manifests')}\n`);
    const args = parseWith(CompileArgs, {
      manifests: path.join(root, 'manifests'),
      dest: path.join(root, 'objects'),
      out: path.join(root, 'out'),
      workDir: path.join(root, '.ferry'),
      jobs: 2,
      progress: 'plain',
    });
    // The demo origin is on loopback, which a real compile refuses by default.
    const cfg = compileConfig(args, parseWorkerFlags({ 'allow-private-network': true, retries: '2', timeout: '5000' }));
    const board = new Board(process.stderr.isTTY ? 'tty' : 'plain');
    const started = Date.now();
    const stores = new Stores({});
    const summary = await compileAll(cfg, stores, board, new AbortController().signal).finally(() => stores.close());
    board.stop();
    const code = printSummary(summary.reports, (Date.now() - started) / 1000, cfg);
    if (code !== EXIT.OK) return code;
    const ledger = path.join(root, 'out', 'products.ledger.tsv');
    process.stderr.write(`\nferry demo: the origin is back for "down"; replaying the transient failures of ${ledger}\n`);
    const replayed = await replayLedger(ledger, { 'allow-private-network': true, 'work-dir': cfg.workDir, retries: '2', timeout: '5000' }, new Board('plain'), new AbortController().signal);
    if (replayed !== EXIT.OK) return replayed;
    process.stderr.write(
      [
        '',
        'Where to look:',
        `  objects        ${path.join(root, 'objects')}/<unit>/<shard>/<id>.<ext>`,
        `  renewed        ${path.join(root, 'out', 'products.parquet')} (every input column + updated_media_path, bad_image)`,
        `  ledger         ${path.join(root, 'out', 'products.ledger.tsv')} (one row per failed id, with its reason)`,
        `  unit manifest  ${path.join(root, 'out', 'products.manifest.json')}`,
        `Run it again: npx ferry compile ${[path.join(root, 'manifests'), '--dest', path.join(root, 'objects'), '--out', path.join(root, 'out'), '--work-dir', cfg.workDir].map(shellWord).join(' ')}`,
        '  (complete units are skipped without a download)',
        '',
      ].join('\n'),
    );
    return EXIT.OK;
  } finally {
    await origin.close();
  }
}
