import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal } from './journal.js';

const HEADER = '#ferry-journal v1 source=fp1\n';

describe('journal', () => {
  it('replays whole lines, cuts a torn tail before appending, and counts bad lines', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    await writeFile(file, HEADER + 'DL_OK\ta\t5\nUP_OK\ta\tfile:///x/a.png\tpng\t5\th\t1\t1\t0\nGARBAGE LINE\nDL_ERR\tb\tTIME');
    const { journal, replayed } = Journal.open(file, 'fp1');
    expect(replayed.events.map((e) => `${e.kind}:${e.id}`)).toEqual(['DL_OK:a', 'UP_OK:a']);
    expect(replayed.badLines).toBe(1);
    journal.append('DL_ERR\tb\tTIMEOUT\t4\tidle\n');
    journal.close();
    const text = await readFile(file, 'utf8');
    expect(text.endsWith('GARBAGE LINE\nDL_ERR\tb\tTIMEOUT\t4\tidle\n')).toBe(true);
    expect(Journal.open(file, 'fp1').replayed.events.map((e) => e.kind)).toEqual(['DL_OK', 'UP_OK', 'DL_ERR']);
  });

  it('starts afresh for another version of the manifest', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    await writeFile(file, HEADER + 'DL_OK\ta\t5\n');
    const { journal, replayed } = Journal.open(file, 'fp2');
    journal.close();
    expect(replayed.events).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe('#ferry-journal v1 source=fp2\n');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('writes what it buffered on close, in order', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'sub', 'u.events');
    const { journal } = Journal.open(file, 'fp');
    for (let i = 0; i < 5000; i++) journal.append(`DL_OK\tid${i}\t${i}\n`);
    journal.close();
    const { replayed } = Journal.open(file, 'fp');
    expect(replayed.events).toHaveLength(5000);
    expect(replayed.events[4999]).toEqual({ kind: 'DL_OK', id: 'id4999', bytes: 4999 });
  });
});
