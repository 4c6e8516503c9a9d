// The control plane's hot path: event lines from a worker parsed and journaled. Reports
// events per second for 1,000,000 lines (parse only, and parse + journal append with its
// batched writes and fsync cadence), and the process's peak RSS.
// Runs against the build: `npm run build && node bench/control-plane.mjs [events]`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const n = Number(process.argv[2] ?? 1_000_000);
const { encodeEvent, parseEvent } = await import('../dist/protocol/index.js');
const { Journal } = await import('../dist/orchestrator/journal.js');

const lines = [];
for (let i = 0; i < n; i++) {
  const id = `img-${i}`;
  lines.push(
    i % 2 === 0
      ? encodeEvent({ kind: 'DL_OK', id, bytes: 20_480 + (i % 1000) })
      : encodeEvent({ kind: 'UP_OK', id, uri: `file:///data/objects/unit/${(i % 256).toString(16).padStart(2, '0')}/${id}.jpg`, ext: 'jpg', bytes: 20_480, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', width: 640, height: 480, existed: false }),
  );
}

let t = performance.now();
let kinds = 0;
for (const line of lines) kinds += parseEvent(line.slice(0, -1)).kind.length;
const parseOnly = n / ((performance.now() - t) / 1000);

const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-journal-'));
try {
  const { journal } = Journal.open(join(dir, 'unit.events'), 'bench');
  t = performance.now();
  for (const line of lines) {
    parseEvent(line.slice(0, -1));
    journal.append(line);
  }
  journal.close();
  const withJournal = n / ((performance.now() - t) / 1000);
  const result = { events: n, parsePerSecond: Math.round(parseOnly), parseAndJournalPerSecond: Math.round(withJournal), peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), check: kinds > 0 };
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await rm(dir, { recursive: true, force: true });
}
