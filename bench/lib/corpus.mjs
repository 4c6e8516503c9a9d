// The corpus: real images (JPEG, PNG, WebP; ~20 KB on average, every one different), made
// with sharp from a few seeded textures (crop, hue, brightness, size and quality vary), in
// `units` manifests. Cached under the bench work dir: `index.json` is written last, so a
// corpus is either complete or regenerated. The served tree is world-readable (nginx's
// workers drop root).
import { once } from 'node:events';
import { createWriteStream, existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { seeded as rng } from '../../test/helpers/seeded.mjs';

const VERSION = 2;
const TEXTURE = 400;

function textures(n) {
  const out = [];
  for (let b = 0; b < n; b++) {
    const r = rng(b + 1);
    const px = new Uint8Array(TEXTURE * TEXTURE * 3);
    const fx = 0.01 + r() * 0.1;
    const fy = 0.01 + r() * 0.1;
    const ph = r() * 6;
    for (let y = 0; y < TEXTURE; y++)
      for (let x = 0; x < TEXTURE; x++) {
        const i = (y * TEXTURE + x) * 3;
        const v = Math.sin(x * fx + ph) * Math.cos(y * fy) * 60;
        px[i] = 128 + v + r() * 40;
        px[i + 1] = 100 + v * 0.5 + r() * 40;
        px[i + 2] = 90 - v + r() * 40;
      }
    out.push(px);
  }
  return out;
}

async function image(i, bases) {
  const r = rng(1_000_003 + i);
  const format = ['jpg', 'jpg', 'png', 'webp'][i % 4];
  const side = format === 'png' ? 70 + Math.floor(r() * 40) : 205 + Math.floor(r() * 150);
  const quality = 68 + Math.floor(r() * 25);
  let p = sharp(bases[i % bases.length], { raw: { width: TEXTURE, height: TEXTURE, channels: 3 } })
    .extract({ left: Math.floor(r() * (TEXTURE - side)), top: Math.floor(r() * (TEXTURE - side)), width: side, height: side })
    .modulate({ hue: Math.floor(r() * 360), brightness: 0.8 + r() * 0.4 });
  p = format === 'jpg' ? p.jpeg({ quality }) : format === 'png' ? p.png({ compressionLevel: 6 }) : p.webp({ quality });
  return { format, body: await p.toBuffer() };
}

/**
 * Makes (or finds) `count` images in `units` units under `workDir/corpus-<count>x<units>/`.
 * Returns { dir, www, count, units, totalBytes, files: [{ id, unit, rel, bytes }] }, where
 * `rel` is the path under `www` (and under the origin's URL).
 */
export async function ensureCorpus(workDir, { count, units = 4, log = () => {} }) {
  const dir = join(workDir, `corpus-${count}x${units}`);
  const indexFile = join(dir, 'index.json');
  if (existsSync(indexFile)) {
    const index = JSON.parse(await readFile(indexFile, 'utf8'));
    if (index.version === VERSION) return index;
  }
  await rm(dir, { recursive: true, force: true });
  const www = join(dir, 'www');
  log(`generating ${count.toLocaleString('en')} images in ${units} units under ${dir} (cached for later runs)`);
  const bases = textures(16);
  const perUnit = Math.ceil(count / units);
  const files = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      const unit = Math.floor(i / perUnit);
      const id = `img-${unit}-${String(i).padStart(6, '0')}`;
      const { format, body } = await image(i, bases);
      const rel = `u${unit}/${String(i % 100).padStart(2, '0')}/${id}.${format}`;
      await mkdir(join(www, dirname(rel)), { recursive: true });
      await writeFile(join(www, rel), body, { mode: 0o644 });
      files[i] = { id, unit, rel, bytes: body.length };
      if (i % 5000 === 4999) log(`  ${i + 1} images`);
    }
  };
  await Promise.all(Array.from({ length: 6 }, lane));
  await worldReadable(dir);
  const totalBytes = files.reduce((a, f) => a + f.bytes, 0);
  const index = { version: VERSION, dir, www, count, units, totalBytes, files };
  await writeFile(indexFile, JSON.stringify(index));
  return index;
}

/** nginx's workers run as nobody: every directory above and in the corpus must let them through. */
async function worldReadable(dir) {
  const { execFileSync } = await import('node:child_process');
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  for (let d = dirname(dir); d !== dirname(d); d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) throw new Error(`${d} is not traversable by others (o+x): nginx's workers could not reach the corpus; use --work-dir elsewhere`);
  }
}

/** A list file of the corpus's relative paths (rclone's --files-from, the bare loop's input). */
export async function writeList(corpus, file, filter = () => true) {
  await writeFile(file, corpus.files.filter(filter).map((f) => f.rel).join('\n') + '\n');
  return file;
}

/**
 * One DuckDB-written Parquet manifest per unit (`id`, `media_path` = origin URL + rel)
 * under `dir`; `unitsWanted` picks units, `filter` files. Returns the dir.
 */
export async function writeManifests(corpus, baseUrl, dir, unitsWanted = null, filter = () => true) {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    for (let u = 0; u < corpus.units; u++) {
      if (unitsWanted && !unitsWanted.includes(u)) continue;
      const csv = join(dir, `u${u}.csv`);
      const out = createWriteStream(csv);
      out.write('id,media_path\n');
      for (const f of corpus.files) if (f.unit === u && filter(f)) out.write(`${f.id},${baseUrl}/${f.rel}\n`);
      out.end();
      await once(out, 'close');
      await conn.run(`COPY (SELECT * FROM read_csv('${csv}', header = true, columns = {'id': 'VARCHAR', 'media_path': 'VARCHAR'})) TO '${join(dir, `batch-${u}.parquet`)}' (FORMAT parquet)`);
      await rm(csv);
    }
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  return dir;
}
