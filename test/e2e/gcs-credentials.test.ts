/**
 * gs:// URLs in a manifest when the run has no Google credentials at all. The library then
 * sends its requests unauthenticated, and a private object's 401 came back as a permanent
 * refusal per row: the unit completed with a ledger of them, and a run with credentials
 * skipped it. As for s3:// URLs (cloud.test.ts), the unit now fails before any task, in one
 * line naming the cause and the flag for public buckets.
 *
 * Nothing leaves this machine: no metadata server is asked, and the proxy every request
 * would go through refuses connections on loopback.
 */
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLedger } from '../../ledger/index.js';
import { NO_GOOGLE_CREDENTIALS } from '../helpers/backend-gcs.js';
import { duck } from '../helpers/duckdb.js';
import { ferry } from '../helpers/run.js';

let dir: string;
let manifests: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-gcs-creds-'));
  manifests = path.join(dir, 'manifests');
  await fs.mkdir(manifests);
  const db = await duck();
  try {
    await db.run(`COPY (SELECT * FROM (VALUES ('g1', 'gs://private-src/img/a.jpg'), ('g2', 'gs://private-src/img/b.png')) t(id, media_path)) TO '${path.join(manifests, 'priv.parquet')}' (FORMAT parquet)`);
  } finally {
    db.close();
  }
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const compile = (name: string, ...extra: string[]) =>
  ferry(['compile', manifests, '--dest', path.join(dir, name, 'objects'), '--out', path.join(dir, name, 'out'), '--work-dir', path.join(dir, name, 'work'), '--progress', 'none', '--retries', '0', ...extra], {
    env: NO_GOOGLE_CREDENTIALS,
  });

describe('gs:// sources when the run has no Google credentials', () => {
  it('fail their unit in one line naming the cause and the flag, before any task, so a run with credentials compiles it', async () => {
    const r = await compile('denied');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('ferry: unit priv failed: its gs:// URLs cannot be fetched: no Google credentials (Could not load the default credentials.');
    expect(r.stderr).toContain('give the run Google credentials (GOOGLE_APPLICATION_CREDENTIALS');
    expect(r.stderr).toContain('or pass --gcs-no-sign-request to read public buckets without');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    // Not a unit completed with a ledger of refused rows, which a later run would skip.
    await expect(fs.readdir(path.join(dir, 'denied', 'out'))).resolves.toEqual([]);
  }, 60_000);

  it('are fetched with no credentials under --gcs-no-sign-request (here: sent to a proxy that refuses)', async () => {
    const r = await compile('anonymous', '--gcs-no-sign-request');
    expect(r.code, r.stderr).toBe(0);
    const ledger = parseLedger(await fs.readFile(path.join(dir, 'anonymous', 'out', 'priv.ledger.tsv'), 'utf8'));
    expect(ledger.map((row) => [row.id, row.reason])).toEqual([
      ['g1', 'RESET'],
      ['g2', 'RESET'],
    ]);
    // Sent, unauthenticated, to the refusing proxy on loopback: the check did not stop them.
    expect(ledger.map((row) => row.detail)).toEqual([expect.stringContaining('ECONNREFUSED'), expect.stringContaining('ECONNREFUSED')]);
  }, 60_000);
});
