import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LedgerReader, encodeLedgerRow, ledgerHeaderLine } from '../ledger/index.js';
import { FileStore, WRITE_CHECK_MARKER, writerTag } from '../storage/index.js';
import { checkWorkDir, readLines } from './io.js';

describe('readLines', () => {
  it('reads a ledger line by line over many chunks, into the rows parseLedger gives', async () => {
    // replay read a ledger whole, as one string: past 2^29 characters (a unit of a few
    // million failed rows) it stopped with an internal error; it is read line by line now.
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-io-'));
    const row = (i: number) => ({ id: `id-ü-${i}`, reason: 'TIMEOUT' as const, stage: 'download' as const, attempts: 4, url: `https://h/${i}`, detail: 'idle '.repeat(20) });
    await fs.writeFile(path.join(dir, 'u.ledger.tsv'), ledgerHeaderLine() + Array.from({ length: 5000 }, (_, i) => encodeLedgerRow(row(i))).join(''));
    const store = new FileStore(dir);
    const reader = new LedgerReader('u.ledger.tsv');
    expect(await readLines(store, 'u.ledger.tsv', 30_000, (line) => reader.push(line))).toBe(true);
    const rows = reader.end();
    expect(rows).toHaveLength(5000);
    expect(rows[4999]).toEqual(row(4999));
    expect(await readLines(store, 'missing.tsv', 30_000, () => {})).toBe(false);
  });

  it('stops at the first line its caller refuses, with that error', async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-io-'));
    await fs.writeFile(path.join(dir, 'bad.ledger.tsv'), ledgerHeaderLine() + 'x\tNOPE\tpermanent\tdownload\t1\tu\td\n'.repeat(10_000));
    const reader = new LedgerReader('bad.ledger.tsv');
    let seen = 0;
    await expect(readLines(new FileStore(dir), 'bad.ledger.tsv', 30_000, (line) => (seen++, reader.push(line)))).rejects.toThrow('bad.ledger.tsv: line 2: unknown reason "NOPE"');
    expect(seen).toBe(2);
  });
});

describe('checkWorkDir', () => {
  it("removes the marker a check killed midway left (its writer gone), and keeps a live check's", async () => {
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'ferry-workdir-check-'));
    const dead = `${WRITE_CHECK_MARKER}${writerTag(4_194_305)}-${Date.now()}-0`;
    // Not counter 0: this process's check names its own marker so, and in the same millisecond it would be this one.
    const live = `${WRITE_CHECK_MARKER}${writerTag(process.pid)}-${Date.now()}-999`;
    for (const name of [dead, live]) await fs.writeFile(path.join(dir, name), 'ferry');
    await checkWorkDir(dir, '--work-dir');
    expect(await fs.readdir(dir)).toEqual([live]);
    await fs.rm(dir, { recursive: true });
  });
});
