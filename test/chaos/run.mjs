// The long crash test (`npm run chaos`): a compile of a few thousand tasks, SIGKILLed with
// its workers at random moments dozens of times and resumed each time until it completes,
// must end exactly as an uninterrupted compile of the same corpus — row by row, ledger by
// ledger, object by object — with nothing of ferry's own left behind in --out, the work dir
// or --dest (temporary files, markers, staged copies, journals, open multipart uploads), each
// leftover reported with the kill that first left it.
//
//   node test/chaos/run.mjs [--kills N] [--seed S] [--small] [--s3] [--gcs] [--concurrency C] [--keep]
//
//   --kills N        SIGKILLs of the whole process group per destination (default 30)
//   --seed S         seeds the corpus, the kill moments and the proxy's faults (default: random,
//                    printed); kill moments also depend on timing, so a seed narrows, not replays
//   --small          a small corpus (2 units, 240 tasks), as run by test/e2e/chaos-smoke.test.ts
//   --s3             also compile from and to S3 (test/servers/s3.mjs: manifests, --dest and
//                    --out) through test/servers/fault-proxy.mjs,
//                    which injects random resets, SlowDown, 500s, 429s, slow first bytes and
//                    short stalls into the object uploads of the killed compile
//   --gcs            also compile from and to GCS (test/servers/gcs.mjs, the Storage emulator) through the
//                    same proxy, with the same kinds of faults in its uploads and metadata reads
//   --concurrency C  --concurrency of both compiles (default 16)
//   --keep           keep the temporary folder (printed) for inspection
//
// Everything listens on 127.0.0.1. Needs the built CLI (npm run build). Exits 1 on any
// mismatch or leftover, 2 on a usage error.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import sharp from 'sharp';
import { seeded } from '../helpers/seeded.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FERRY = path.join(ROOT, 'bin/ferry.js');
const SERVERS = path.join(ROOT, 'test/servers');
const RETRIES = 2;
/** No single run may take longer than this: a hang is a failure, not a wait forever. */
const RUN_TIMEOUT_MS = 10 * 60_000;
const BUCKET = 'chaos';

// ---------------------------------------------------------------------------------------
// Options and randomness

function parseArgs(argv) {
  const o = { kills: 30, seed: Math.floor(Math.random() * 2 ** 31), small: false, s3: false, gcs: false, concurrency: 16, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) usage(`${a} takes a whole number, not ${argv[i]}`);
      return v;
    };
    if (a === '--kills') o.kills = num();
    else if (a === '--seed') o.seed = num();
    else if (a === '--concurrency') o.concurrency = Math.max(1, num());
    else if (a === '--small') o.small = true;
    else if (a === '--s3') o.s3 = true;
    else if (a === '--gcs') o.gcs = true;
    else if (a === '--keep') o.keep = true;
    else usage(`unknown argument ${a}`);
  }
  return o;
}

function usage(message) {
  process.stderr.write(`chaos: ${message}\nusage: node test/chaos/run.mjs [--kills N] [--seed S] [--small] [--s3] [--gcs] [--concurrency C] [--keep]\n`);
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const log = (line) => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------------------------------
// Test servers, each its own process; they exit when our stdin pipe to them closes

const servers = [];

function startServer(file, args = [], env = {}) {
  const child = spawn(process.execPath, [path.join(SERVERS, file), ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  servers.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^PORT (\d+)$/m.exec(out);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    child.once('exit', (code) => reject(new Error(`${file} exited (${code}) before listening`)));
  });
}

async function stopServers() {
  await Promise.all(
    servers.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = once(c, 'exit');
      c.stdin.end();
      const t = setTimeout(() => c.kill('SIGTERM'), 3_000);
      await exited;
      clearTimeout(t);
    }),
  );
}

async function getJson(url, init) {
  const r = await globalThis.fetch(url, init);
  if (!r.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${r.status}`);
  return r.json();
}

// ---------------------------------------------------------------------------------------
// The corpus: images on disk, a plan of rows, one set of manifests per compile

/** Files the origin serves under /file/<key>/<name>: good images and payloads the gates refuse. */
async function writeImages(dir) {
  const good = [];
  for (let i = 0; i < 8; i++) {
    const fmt = ['png', 'jpeg', 'webp', 'gif'][i % 4];
    const img = sharp({ create: { width: 40 + i * 7, height: 36 + i * 5, channels: 3, background: { r: 30 * i, g: 120, b: 255 - 20 * i } } });
    const name = `good${i}.${fmt === 'jpeg' ? 'jpg' : fmt}`;
    await fs.writeFile(path.join(dir, name), await img.toFormat(fmt).toBuffer());
    good.push(name);
  }
  const whole = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer();
  await fs.writeFile(path.join(dir, 'half.png'), whole.subarray(0, Math.floor(whole.length / 2)));
  await fs.writeFile(path.join(dir, 'tiny.png'), await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } }).png().toBuffer());
  await fs.writeFile(path.join(dir, 'page.jpg'), '<!doctype html><title>not an image</title>');
  return good;
}

/**
 * Each row's kind, by weight. Every kind has one outcome whatever the kills: a flaky path
 * fails fewer times than the retries allow, counters of the origin persist across resumes,
 * and the dead ones fail on every try.
 */
const KINDS = [
  ['good', 62],
  ['slow', 8],
  ['flaky', 6],
  ['throttled', 4],
  ['missing', 6],
  ['dead', 1],
  ['reset', 1],
  ['half', 4],
  ['tiny', 3],
  ['html', 3],
  ['duplicate', 1],
  ['nullurl', 1],
];

function pickKind(rng) {
  const total = KINDS.reduce((n, [, w]) => n + w, 0);
  let x = rng() * total;
  for (const [kind, w] of KINDS) if ((x -= w) < 0) return kind;
  return 'good';
}

function planCorpus(rng, small, good) {
  const units = small ? [['u1', 120], ['sub/u2', 120]] : [['u1', 900], ['u2', 900], ['sub/u3', 900], ['u4', 900]];
  return units.map(([unit, n]) => {
    const rows = [];
    for (let i = 0; i < n; i++) {
      const kind = i === 0 ? 'good' : pickKind(rng);
      // Ids with spaces, slashes and non-ASCII now and then: the key layout must hold for them.
      const plain = `${unit.replace('/', '_')}-${i}`;
      const id = kind === 'duplicate' ? rows[Math.floor(rng() * rows.length)].id : i % 53 === 7 ? `${plain} é/x` : plain;
      rows.push({ i, id, kind, image: good[Math.floor(rng() * good.length)] });
    }
    return { unit, rows, rowGroup: small ? 16 : 64 };
  });
}

/** The URL of a row for one compile: keys carry the compile's name, so the origin's counters never mix. */
function urlOf(origin, run, unit, row) {
  const key = `${run}-${unit.replace('/', '_')}-${row.i}`;
  switch (row.kind) {
    case 'good':
    case 'duplicate':
      return `${origin}/file/${key}/${row.image}`;
    case 'slow':
      return `${origin}/file/${key}/${row.image}?delay=300`;
    case 'flaky':
      return `${origin}/file/${key}/${row.image}?fail=1&status=503`;
    case 'throttled':
      return `${origin}/file/${key}/${row.image}?fail=1&status=429`;
    case 'missing':
      return `${origin}/status/404/${key}`;
    case 'dead':
      return `${origin}/status/500/${key}`;
    case 'reset':
      return `${origin}/reset/${key}`;
    case 'half':
      return `${origin}/file/${key}/half.png`;
    case 'tiny':
      return `${origin}/file/${key}/tiny.png`;
    case 'html':
      return `${origin}/file/${key}/page.jpg?type=image/jpeg`;
    case 'nullurl':
      return null;
    default:
      throw new Error(`unknown kind ${row.kind}`);
  }
}

const lit = (s) => (s === null ? 'NULL' : `'${String(s).replace(/'/g, "''")}'`);

async function writeManifests(db, dir, origin, run, plan) {
  for (const { unit, rows, rowGroup } of plan) {
    const file = path.join(dir, `${unit}.parquet`);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const values = rows.map((r) => `(${lit(r.id)}, ${lit(urlOf(origin, run, unit, r))}, ${r.i})`).join(',');
    await db.run(`COPY (SELECT * FROM (VALUES ${values}) t(id, media_path, n)) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE ${rowGroup})`);
  }
}

// ---------------------------------------------------------------------------------------
// Destinations: where a compile's objects go, and how to list what it left there

function folderDestination(dir) {
  return {
    kind: 'folder',
    dest: (run) => path.join(dir, run, 'objects'),
    root: (run) => `${pathToFileURL(path.join(dir, run, 'objects')).href}/`,
    manifests: (run) => path.join(dir, run, 'manifests'),
    out: (run) => path.join(dir, run, 'out'),
    extraArgs: [],
    async putManifests() {},
    async outEntries(run) {
      const files = [];
      const leftovers = [];
      for (const { rel, file } of await walk(path.join(dir, run, 'out'))) {
        if (file) files.push(rel);
        else leftovers.push(`--out: empty folder ${rel}/`);
      }
      return { files, leftovers };
    },
    fetchOut: async (_dir, run) => path.join(dir, run, 'out'),
    async objects(run, hash = true) {
      const base = path.join(dir, run, 'objects');
      const objects = new Map();
      const leftovers = [];
      for (const { rel, file } of await walk(base)) {
        if (isFerryEntry(rel) || rel.endsWith('.tmp')) leftovers.push(`--dest: ${markerKind(rel)} ${rel}${file ? '' : '/'}`);
        else if (!file) leftovers.push(`--dest: empty folder ${rel}/`);
        else objects.set(rel, hash ? sha256(await fs.readFile(path.join(base, rel))) : '');
      }
      return { objects, leftovers };
    },
  };
}

/** A key or path with a segment ferry names for itself: `.ferry-tmp/`, `.ferry-write-check-…`, `.ferry-probe-…`. */
const isFerryEntry = (rel) => rel.split(/[/\\]/).some((seg) => seg.startsWith('.ferry'));

function markerKind(rel) {
  const last = rel.split(/[/\\]/).at(-1);
  if (last.startsWith('.ferry-write-check-')) return 'write-check marker';
  if (last.startsWith('.ferry-probe-')) return 'probe marker';
  return 'temporary file';
}

/**
 * Every file under `base`, and every folder holding nothing (a file's folders are not
 * listed: they hold it), each relative to `base`, sorted.
 */
async function walk(base) {
  const entries = await fs.readdir(base, { recursive: true, withFileTypes: true }).catch(() => []);
  const out = [];
  const parents = new Set(entries.map((e) => e.parentPath));
  for (const e of entries) {
    const full = path.join(e.parentPath, e.name);
    if (e.isDirectory() && parents.has(full)) continue;
    out.push({ rel: path.relative(base, full), file: !e.isDirectory() });
  }
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/**
 * A compile to an object store takes its manifests from it and writes its outputs to it too
 * (under `<run>-manifests/` and `<run>-out/`), so that the staged copies in the work dir
 * (a manifest read, a renewed Parquet written) and the --out side's markers and uploads are
 * in play. `store` lists a prefix as `{ rel, sha }` (sha only when asked), puts and gets files.
 */
function storeDestination(kind, scheme, store, extraArgs) {
  const listPlace = async (place, prefix, hash) => {
    const objects = new Map();
    const leftovers = [];
    for (const { rel, get } of await store.list(prefix)) {
      if (isFerryEntry(rel)) leftovers.push(`${place}: ${markerKind(rel)} ${rel}`);
      else objects.set(rel, hash ? sha256(await get()) : '');
    }
    for (const u of (await store.openUploads?.(prefix)) ?? []) leftovers.push(`${place}: open multipart upload ${u.rel} (${u.id})`);
    return { objects, leftovers };
  };
  return {
    kind,
    dest: (run) => `${scheme}://${BUCKET}/${run}`,
    root: (run) => `${scheme}://${BUCKET}/${run}/`,
    manifests: (run) => `${scheme}://${BUCKET}/${run}-manifests/`,
    out: (run) => `${scheme}://${BUCKET}/${run}-out/`,
    extraArgs,
    close: store.close,
    async putManifests(run, local) {
      for (const { rel, file } of await walk(local)) if (file) await store.put(`${run}-manifests/${rel.split(path.sep).join('/')}`, await fs.readFile(path.join(local, rel)));
    },
    objects: (run, hash = true) => listPlace('--dest', `${run}/`, hash),
    async outEntries(run) {
      const { objects, leftovers } = await listPlace('--out', `${run}-out/`, false);
      return { files: [...objects.keys()], leftovers };
    },
    /** The outputs, downloaded to a local folder for DuckDB. */
    async fetchOut(dir, run) {
      const local = path.join(dir, run, 'out-read');
      for (const { rel, get } of await store.list(`${run}-out/`)) {
        if (isFerryEntry(rel)) continue;
        await fs.mkdir(path.dirname(path.join(local, rel)), { recursive: true });
        await fs.writeFile(path.join(local, rel), await get());
      }
      return local;
    },
  };
}

async function s3Destination(s3Url, proxyUrl) {
  const { S3Client, CreateBucketCommand, ListObjectsV2Command, GetObjectCommand, PutObjectCommand, ListMultipartUploadsCommand } = await import('@aws-sdk/client-s3');
  // Reads go straight to the server, never through the faults.
  const client = new S3Client({ endpoint: s3Url, forcePathStyle: true, region: 'us-east-1' });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const store = {
    close: () => client.destroy(),
    async list(prefix) {
      const found = [];
      let token;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) {
          found.push({ rel: o.Key.slice(prefix.length), get: async () => (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key }))).Body.transformToByteArray() });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return found;
    },
    async openUploads(prefix) {
      const found = [];
      let keyMarker;
      let uploadIdMarker;
      do {
        const open = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        for (const u of open.Uploads ?? []) found.push({ rel: u.Key.slice(prefix.length), id: u.UploadId });
        [keyMarker, uploadIdMarker] = open.IsTruncated ? [open.NextKeyMarker, open.NextUploadIdMarker] : [undefined, undefined];
      } while (keyMarker !== undefined);
      return found;
    },
    put: (key, body) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body })),
  };
  return storeDestination('s3', 's3', store, ['--s3-endpoint', proxyUrl]);
}

/**
 * GCS: the Storage emulator, read back with @google-cloud/storage straight from it (never
 * through the faults). A resumable upload a kill interrupted leaves nothing to list (its
 * session expires), so what may be left behind is what can be listed: markers.
 */
async function gcsDestination(gcsUrl, proxyUrl) {
  const { Storage } = await import('@google-cloud/storage');
  // The emulator makes a bucket on its first write (creating one answers 501).
  const bucket = new Storage({ apiEndpoint: gcsUrl, projectId: 'ferry-chaos' }).bucket(BUCKET);
  const store = {
    async list(prefix) {
      const [files] = await bucket.getFiles({ prefix });
      return files.map((f) => ({ rel: f.name.slice(prefix.length), get: async () => (await f.download())[0] }));
    },
    put: (key, body) => bucket.file(key).save(body, { resumable: false }),
  };
  return storeDestination('gcs', 'gs', store, ['--gcs-endpoint', proxyUrl]);
}

// ---------------------------------------------------------------------------------------
// Running compiles: to the end, or killed

function compileArgs(dir, destination, run) {
  return [
    'compile', destination.manifests(run),
    '--dest', destination.dest(run),
    '--out', destination.out(run),
    '--work-dir', path.join(dir, run, 'work'),
    '--allow-private-network',
    '--retries', String(RETRIES),
    '--timeout', '10000',
    '--jobs', '2',
    '--progress', 'none',
    ...destination.extraArgs,
  ];
}

/** Compiles running now, so that an interrupted chaos run stops them too. */
const compiles = new Set();

/**
 * Starts a compile in its own process group (detached), so that one kill takes the
 * orchestrator, its workers and its Parquet thread together, as a crash or OOM kill would.
 */
function startCompile(args) {
  const child = spawn(process.execPath, [FERRY, ...args], { cwd: ROOT, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  compiles.add(child);
  child.once('exit', () => compiles.delete(child));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal, stderr }));
  return { child, exited };
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch (e) {
    if (e.code !== 'ESRCH') throw e;
  }
}

/** Waits until no process of the group is left (workers included), within a bound. */
async function groupGone(pid) {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(-pid, 0);
    } catch {
      return;
    }
    await sleep(25);
  }
  throw new Error(`process group ${pid} still alive 5 s after SIGKILL`);
}

/** Runs the reference compile to its end, timing it and its start-up; one that hangs past RUN_TIMEOUT_MS fails. */
async function runToEnd(dir, destination, run, plan, args) {
  const started = Date.now();
  const { child, exited } = startCompile(args);
  const timer = setTimeout(() => killGroup(child), RUN_TIMEOUT_MS);
  const startupMs = await firstFactMs(dir, destination, run, plan, exited);
  const r = await exited;
  clearTimeout(timer);
  if (r.code !== 0) throw new Error(`compile exited with ${r.code ?? r.signal}:\n${r.stderr}`);
  return { ms: Date.now() - started, startupMs };
}

/** Tasks a unit sends to workers: rows refused at compile time never reach one. */
const sentTasks = (rows) => rows.filter((r) => r.kind !== 'nullurl' && r.kind !== 'duplicate').length;

/**
 * How far a compile got: terminal facts in the journals of unfinished units, plus every
 * task of the units already complete (whose journals are gone).
 */
async function progressOf(dir, destination, run, plan) {
  return (await unitProgress(dir, destination, run, plan)).done;
}

/** progressOf, and whether some unit has every task journaled but no manifest.json yet: its outputs are being written. */
async function unitProgress(dir, destination, run, plan) {
  let done = 0;
  let writing = false;
  const work = path.join(dir, run, 'work');
  const { files } = await destination.outEntries(run);
  for (const { unit, rows } of plan) {
    const rel = path.join(...unit.split('/'));
    if (files.includes(`${rel}.manifest.json`)) {
      done += sentTasks(rows);
      continue;
    }
    // The unit's journal is <work>/<run key>/<unit>.events.
    for (const key of await fs.readdir(work).catch(() => [])) {
      const text = await fs.readFile(path.join(work, key, `${rel}.events`), 'utf8').catch(() => '');
      const facts = text.split('\n').filter((l) => /^(UP_OK|UP_ERR|DL_ERR|BAD_IMAGE)\t/.test(l)).length;
      done += facts;
      if (facts >= sentTasks(rows)) writing = true;
    }
  }
  return { done, writing };
}

/** Resolves once `ready()` holds or `exited` settles, polling; true when ready came first. */
async function until(ready, exited) {
  let over = false;
  void exited.then(() => (over = true));
  const end = Date.now() + RUN_TIMEOUT_MS;
  while (!over && Date.now() < end) {
    if (await ready()) return !over;
    await sleep(20);
  }
  return false;
}

/** How long a compile takes to journal its first fact (start-up, listing, planning, spawning). */
async function firstFactMs(dir, destination, run, plan, exited) {
  const started = Date.now();
  await until(async () => (await progressOf(dir, destination, run, plan)) > 0, exited);
  return Date.now() - started;
}

/**
 * When to kill this run: one time in six at a random moment of the start-up (listing,
 * planning, spawning, replaying the journal); one in six once a unit's tasks are all
 * journaled, up to 300 ms into the writing of its outputs (staged Parquet, temporary files,
 * uploads to --out); otherwise once a random share of the work left is journaled, sized so
 * the remaining kills spread over it, plus up to 200 ms so the moment does not line up with
 * a journal flush.
 */
function killMoment(rng, reference, done, total, killsLeft) {
  const pick = rng();
  if (pick < 1 / 6 || done >= total) return { afterMs: rng() * reference.startupMs, facts: 0 };
  if (pick < 2 / 6) return { afterMs: rng() * 300, facts: -1 };
  const share = Math.max(1, Math.floor((rng() * 2 * (total - done)) / (killsLeft + 1)));
  return { afterMs: rng() * 200, facts: Math.min(total, done + share) };
}

/**
 * What a compile left of its own beside its outputs: in --out, every entry but each unit's
 * renewed Parquet, ledger and manifest.json (and the folders holding them); in the work dir,
 * every entry (a complete unit's journal, task file, staged copies and run folder go with
 * it, README "Resume", "Object stores"); under --dest, what the destination lists (temporary
 * files, markers, open multipart uploads).
 */
async function leftoversOf(dir, destination, plan, run) {
  const outputs = new Set(plan.flatMap(({ unit }) => ['parquet', 'ledger.tsv', 'manifest.json'].map((ext) => `${path.join(...unit.split('/'))}.${ext}`)));
  const leftovers = [];
  const out = await destination.outEntries(run);
  leftovers.push(...out.leftovers);
  for (const rel of out.files) if (!outputs.has(rel)) leftovers.push(`--out: ${isFerryEntry(rel) ? markerKind(rel) : 'stray file'} ${rel}`);
  for (const { rel, file } of await walk(path.join(dir, run, 'work'))) leftovers.push(`work dir: ${workKind(rel, file)} ${rel}${file ? '' : '/'}`);
  leftovers.push(...(await destination.objects(run, false)).leftovers);
  return leftovers;
}

function workKind(rel, file) {
  if (!file) return 'empty folder';
  if (rel.endsWith('.events')) return 'journal';
  if (rel.endsWith('.tasks.tsv')) return 'task file';
  if (rel.split(path.sep).includes('staging')) return 'staged copy';
  if (isFerryEntry(rel)) return markerKind(rel);
  return 'file';
}

/** Kills the compile `kills` times and resumes it each time, then lets the last resume finish. */
async function killAndResume(dir, destination, run, plan, args, kills, rng, reference) {
  const total = plan.reduce((n, u) => n + sentTasks(u.rows), 0);
  // Each leftover seen after a kill, with the first kill that left it: what the final run must have removed.
  const tally = { kills: 0, midWork: 0, runs: 0, firstSeen: new Map() };
  for (;;) {
    const before = await progressOf(dir, destination, run, plan);
    const { child, exited } = startCompile(args);
    tally.runs++;
    const timer = setTimeout(() => killGroup(child), RUN_TIMEOUT_MS);
    let moment;
    if (tally.kills < kills) {
      moment = killMoment(rng, reference, before, total, kills - tally.kills);
      const ready = async () => {
        if (moment.facts === 0) return true;
        const now = await unitProgress(dir, destination, run, plan);
        return moment.facts < 0 ? now.writing : now.done >= moment.facts;
      };
      if (await until(ready, exited)) {
        await sleep(moment.afterMs);
        killGroup(child);
      }
    }
    const r = await exited;
    clearTimeout(timer);
    if (r.signal === 'SIGKILL') {
      if (tally.kills >= kills) throw new Error(`the last resume hung for ${RUN_TIMEOUT_MS} ms and was killed:\n${r.stderr}`);
      await groupGone(child.pid);
      tally.kills++;
      const after = await progressOf(dir, destination, run, plan);
      if (after !== before) tally.midWork++;
      const at = moment.facts === 0 ? 'in the start-up,' : moment.facts < 0 ? 'after a unit\'s last fact, writing its outputs,' : `after fact ${moment.facts},`;
      const when = `kill ${tally.kills} (${at} ${Math.round(moment.afterMs)} ms later; ${before} → ${after} of ${total} tasks done)`;
      for (const l of await leftoversOf(dir, destination, plan, run)) if (!tally.firstSeen.has(l)) tally.firstSeen.set(l, when);
      continue;
    }
    if (r.code !== 0) throw new Error(`a resumed compile exited with ${r.code}:\n${r.stderr}`);
    return tally;
  }
}

// ---------------------------------------------------------------------------------------
// Comparing what two compiles left

/**
 * Ledger rows as `id reason`; fields are escaped with backslashes, which is enough to compare.
 * The one reason that is not the row's own: the origin's reset mid-body (`/reset/`, the only
 * rows whose body ends early) reaches the client as ECONNRESET (RESET) or, now and then on a
 * loaded machine, as its socket's end before Content-Length (SHORT_BODY), whether or not
 * anything was killed (test/e2e/streamed.test.ts accepts either too): both are one
 * transient failure, so they compare as one.
 */
function ledgerRows(text) {
  return text
    .split('\n')
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => {
      const [id, reason] = l.split('\t');
      return `${id}\t${reason === 'SHORT_BODY' ? 'RESET' : reason}`;
    });
}

async function snapshot(db, dir, destination, plan, run) {
  const out = await destination.fetchOut(dir, run);
  const root = destination.root(run);
  const units = {};
  for (const { unit } of plan) {
    const file = path.join(out, `${unit}.parquet`);
    const rows = await db.rows(
      `SELECT id, updated_media_path AS p, bad_image AS bad FROM read_parquet(${lit(file)}, file_row_number = true) ORDER BY file_row_number`,
    );
    const manifest = JSON.parse(await fs.readFile(path.join(out, `${unit}.manifest.json`), 'utf8'));
    units[unit] = {
      status: manifest.status,
      rows: rows.map((r) => `${r.id}\t${r.p === null ? '∅' : String(r.p).startsWith(root) ? String(r.p).slice(root.length) : `outside:${r.p}`}\t${r.bad}`),
      ledger: ledgerRows(await fs.readFile(path.join(out, `${unit}.ledger.tsv`), 'utf8')),
    };
  }
  const { objects } = await destination.objects(run);
  return { units, objects, leftovers: await leftoversOf(dir, destination, plan, run) };
}

/** Lists of lines compared in order; returns a few readable differences. */
function diffLines(what, a, b) {
  const out = [];
  if (a.length !== b.length) out.push(`${what}: ${b.length} lines, reference ${a.length}`);
  for (let i = 0; i < Math.max(a.length, b.length) && out.length < 5; i++) {
    if (a[i] !== b[i]) out.push(`${what}[${i}]: ${JSON.stringify(b[i])}, reference ${JSON.stringify(a[i])}`);
  }
  return out;
}

function compare(ref, got, firstSeen = new Map()) {
  const mismatches = [];
  for (const [unit, r] of Object.entries(ref.units)) {
    const g = got.units[unit];
    if (g.status !== 'complete') mismatches.push(`${unit}: manifest.json status ${g.status}`);
    mismatches.push(...diffLines(`${unit} rows`, r.rows, g.rows), ...diffLines(`${unit} ledger`, r.ledger, g.ledger));
  }
  for (const [key, sum] of ref.objects) {
    if (!got.objects.has(key)) mismatches.push(`object ${key}: missing`);
    else if (got.objects.get(key) !== sum) mismatches.push(`object ${key}: sha256 ${got.objects.get(key)}, reference ${sum}`);
  }
  for (const key of got.objects.keys()) if (!ref.objects.has(key)) mismatches.push(`object ${key}: not in the reference`);
  mismatches.push(...ref.leftovers.map((l) => `left behind by the reference: ${l}`), ...got.leftovers.map((l) => `left behind: ${l}, ${firstSeen.has(l) ? `first seen after ${firstSeen.get(l)}` : 'by the final run (seen after no kill)'}`));
  return mismatches;
}

/** Origin requests made for one compile's paths (their keys start with its name). */
function originRequests(stats, run) {
  let n = 0;
  for (const [p, count] of Object.entries(stats)) if (p.split('/').some((s) => s.startsWith(`${run}-`))) n += count;
  return n;
}

// ---------------------------------------------------------------------------------------
// One destination: reference compile, killed compile, comparison

/**
 * Random faults on the objects' uploads (not the probe or cleanup calls), at most two per
 * object whichever rules fire, so every object still lands within 1 + retries tries: the
 * comparison with the fault-free reference stays exact.
 */
function uploadFaults(kind, run, seed) {
  if (kind === 'gcs') {
    // An object's upload is a POST naming it in the query (a streamed one: a session POST,
    // then a PUT to the session); its metadata read is a GET naming it in the path.
    const upload = `^/upload/storage/v1/b/${BUCKET}/o\\?.*name=${run}%2F[^.]`;
    const metadata = `^/(storage/v1/)?b/${BUCKET}/o/${run}%2F[^.][^?]*(\\?(?!.*alt=media)|$)`;
    return {
      seed,
      maxFaultsPerPath: RETRIES,
      objectKey: `(?:[?&]name=|/o/)(${run}%2F[^?&]+)`,
      rules: [
        { method: 'POST', path: upload, fault: 'reset-request', probability: 0.03 },
        { method: 'POST', path: upload, fault: 'reset-response', probability: 0.03 },
        { method: 'POST', path: upload, fault: 'status', status: 503, code: 'backendError', probability: 0.05 },
        { method: 'POST', path: upload, fault: 'internal', probability: 0.02 },
        { method: 'POST', path: upload, fault: 'throttle', retryAfter: '0', probability: 0.02 },
        { method: 'POST', path: upload, fault: 'delay', ms: 400, probability: 0.03 },
        { method: 'GET', path: metadata, fault: 'status', status: 503, code: 'backendError', probability: 0.02 },
        { method: 'GET', path: metadata, fault: 'stall', ms: 300, probability: 0.01 },
      ],
    };
  }
  const objects = `^/${BUCKET}/${run}/[^.]`;
  return {
    seed,
    maxFaultsPerPath: RETRIES,
    rules: [
      { method: 'PUT', path: objects, fault: 'reset-request', probability: 0.03 },
      { method: 'PUT', path: objects, fault: 'reset-response', probability: 0.03 },
      { method: 'PUT', path: objects, fault: 'slowdown', probability: 0.05 },
      { method: 'PUT', path: objects, fault: 'internal', probability: 0.02 },
      { method: 'PUT', path: objects, fault: 'throttle', retryAfter: '0', probability: 0.02 },
      { method: 'PUT', path: objects, fault: 'delay', ms: 400, probability: 0.03 },
      { method: 'HEAD', path: objects, fault: 'slowdown', probability: 0.02 },
      { method: 'HEAD', path: objects, fault: 'stall', ms: 300, probability: 0.01 },
    ],
  };
}

async function chaosOn(ctx, destination, names) {
  const { dir, db, origin, plan, opts, rng, proxy } = ctx;
  const [refName, runName] = names;
  for (const run of names) {
    await writeManifests(db, path.join(dir, run, 'manifests'), origin, run, plan);
    await destination.putManifests(run, path.join(dir, run, 'manifests'));
  }
  const concurrency = ['--concurrency', String(opts.concurrency)];
  if (proxy) await getJson(`${proxy}/__faults`, { method: 'DELETE' });
  const reference = await runToEnd(dir, destination, refName, plan, [...compileArgs(dir, destination, refName), ...concurrency]);
  const proxyBefore = proxy ? await getJson(`${proxy}/__stats`) : null;
  if (proxy) await getJson(`${proxy}/__faults`, { method: 'POST', body: JSON.stringify(uploadFaults(destination.kind, runName, opts.seed)) });
  const started = Date.now();
  const { kills, midWork, runs, firstSeen } = await killAndResume(dir, destination, runName, plan, [...compileArgs(dir, destination, runName), ...concurrency], opts.kills, rng, reference);
  const chaosMs = Date.now() - started;
  const stats = await getJson(`${origin}/__stats`);
  const proxyAfter = proxy ? await getJson(`${proxy}/__stats`) : null;
  const ref = await snapshot(db, dir, destination, plan, refName);
  const mismatches = compare(ref, await snapshot(db, dir, destination, plan, runName), firstSeen);
  const tasks = plan.reduce((n, u) => n + sentTasks(u.rows), 0);
  // Equal to a broken reference proves nothing: most objects must have landed, and some rows failed.
  const reasons = reasonTally(ref);
  if (ref.objects.size < tasks * 0.4 || Object.keys(reasons).length === 0) mismatches.push(`implausible reference: ${ref.objects.size} objects for ${tasks} tasks, ledger ${JSON.stringify(reasons)}`);
  const refRequests = originRequests(stats, refName);
  const chaosRequests = originRequests(stats, runName);
  // Each kill may redo what was in flight: about two windows of --concurrency, each with its tries.
  const bound = kills * 2 * opts.concurrency * (1 + RETRIES);
  if (chaosRequests - refRequests > bound) mismatches.push(`rework ${chaosRequests - refRequests} requests exceeds the bound ${bound}`);
  // What the kills left at some point (the final run must have removed it): proof the windows were hit.
  const seen = {};
  for (const l of firstSeen.keys()) {
    const what = l.replace(/ \S+$/, '').replace(/ [^ ]+ \([^)]*\)$/, '');
    seen[what] = (seen[what] ?? 0) + 1;
  }
  return { seen, kind: destination.kind, tasks, objects: ref.objects.size, reasons, reference, chaosMs, kills, midWork, runs, refRequests, chaosRequests, bound, mismatches, proxy: proxyAfter && faultSummary(proxyBefore, proxyAfter, destination.kind === 'gcs' ? 'POST' : 'PUT') };
}

function reasonTally(snap) {
  const tally = {};
  for (const u of Object.values(snap.units)) {
    for (const line of u.ledger) {
      const reason = line.split('\t')[1];
      tally[reason] = (tally[reason] ?? 0) + 1;
    }
  }
  return tally;
}

/** What the proxy saw of the killed compile, its writes counted by the method that uploads (S3: PUT; GCS: POST). */
function faultSummary(before, after, write) {
  const writes = (after.methods[write] ?? 0) - (before.methods[write] ?? 0);
  const faults = Object.values(after.faults).reduce((n, v) => n + v, 0) - Object.values(before.faults).reduce((n, v) => n + v, 0);
  return { requests: after.total - before.total, write, writes, referenceWrites: before.methods[write] ?? 0, faults };
}

function report(r) {
  const s = (ms) => `${(ms / 1000).toFixed(1)} s`;
  log(`chaos [${r.kind}]: ${r.tasks} tasks; reference compile ${s(r.reference.ms)} (first fact after ${s(r.reference.startupMs)})`);
  log(`  reference: ${r.objects} objects; ledger ${Object.entries(r.reasons).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  log(`  killed-and-resumed: ${r.kills} SIGKILLs (${r.midWork} with work in flight) over ${r.runs} runs in ${s(r.chaosMs)}`);
  log(`  origin requests: reference ${r.refRequests}, killed-and-resumed ${r.chaosRequests}: rework ${r.chaosRequests - r.refRequests} (bound ${r.bound}); beyond one per task: ${r.chaosRequests - r.tasks}`);
  if (r.proxy) log(`  destination (through fault-proxy): ${r.proxy.requests} requests, ${r.proxy.writes} ${r.proxy.write}s (reference ${r.proxy.referenceWrites}), ${r.proxy.faults} faults injected`);
  log(`  left by the kills at some point: ${Object.entries(r.seen).map(([k, v]) => `${k} ×${v}`).join(', ') || 'nothing'}`);
  log(`  mismatches: ${r.mismatches.length}`);
  for (const m of r.mismatches.slice(0, 20)) log(`    ${m}`);
}

// ---------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const rng = seeded(opts.seed);
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-chaos-'));
  const stores = ['folder', ...(opts.s3 ? ['S3'] : []), ...(opts.gcs ? ['GCS'] : [])];
  log(`chaos: seed ${opts.seed}, ${opts.kills} kills${opts.small ? ', small corpus' : ''}, ${stores.join(' and ')}; in ${dir}`);
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  const db = { run: (sql) => conn.run(sql), rows: async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJson() };
  const results = [];
  try {
    await fs.mkdir(path.join(dir, 'origin'));
    const good = await writeImages(path.join(dir, 'origin'));
    const origin = await startServer('fault-origin.mjs', [], { FERRY_ORIGIN_ROOT: path.join(dir, 'origin') });
    const plan = planCorpus(rng, opts.small, good);
    const ctx = { dir, db, origin, plan, opts, rng, proxy: null };
    results.push(await chaosOn(ctx, folderDestination(dir), ['ref', 'killed']));
    report(results.at(-1));
    if (opts.s3) {
      // The SDK signs, fauxqs does not check: fixed fake credentials, no metadata service.
      Object.assign(process.env, {
        AWS_ACCESS_KEY_ID: 'ferry-chaos',
        AWS_SECRET_ACCESS_KEY: 'ferry-chaos',
        AWS_REGION: 'us-east-1',
        AWS_EC2_METADATA_DISABLED: 'true',
        // noise on Node 20, which ferry supports
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      });
      delete process.env.AWS_SESSION_TOKEN;
      const s3 = await startServer('s3.mjs');
      const proxy = await startServer('fault-proxy.mjs', [s3, '--seed', String(opts.seed)]);
      const destination = await s3Destination(s3, proxy);
      try {
        results.push(await chaosOn({ ...ctx, proxy }, destination, ['s3ref', 's3killed']));
        report(results.at(-1));
      } finally {
        destination.close();
      }
    }
    if (opts.gcs) {
      // NODE_ENV=test: the emulator's web framework would print a stack for each upload the proxy cuts.
      const gcs = await startServer('gcs.mjs', [], { NODE_ENV: 'test' });
      const proxy = await startServer('fault-proxy.mjs', [gcs, '--seed', String(opts.seed)]);
      const destination = await gcsDestination(gcs, proxy);
      results.push(await chaosOn({ ...ctx, proxy }, destination, ['gcsref', 'gcskilled']));
      report(results.at(-1));
    }
  } finally {
    conn.closeSync();
    instance.closeSync();
    await stopServers();
    if (!opts.keep) await fs.rm(dir, { recursive: true, force: true });
  }
  const bad = results.reduce((n, r) => n + r.mismatches.length, 0);
  log(`chaos: ${results.reduce((n, r) => n + r.kills, 0)} kills, ${bad} mismatches${bad ? '' : ': every killed-and-resumed compile ended as the uninterrupted one'}`);
  return bad === 0 ? 0 : 1;
}

// Interrupted: a detached compile is not in our process group, so it must be stopped here.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    for (const c of compiles) killGroup(c);
    await stopServers().catch(() => {});
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  async (e) => {
    process.stderr.write(`chaos: ${e?.stack ?? e}\n`);
    await stopServers().catch(() => {});
    process.exit(1);
  },
);
