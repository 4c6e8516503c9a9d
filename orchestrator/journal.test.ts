import { rmSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, rmdir, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Event } from '../protocol/index.js';
import { WRITE_CHECK_MARKER, writerTag } from '../storage/index.js';
import { Journal, discardJournal, journalFiles, stagingDir, tidyWorkDir } from './journal.js';

/** Opens a journal and collects the events it gives back. */
function open(file: string, source: string) {
  const events: Event[] = [];
  const { journal, replayed } = Journal.open(file, source, (e) => events.push(e));
  return { journal, replayed, events };
}

const HEADER = '#ferry-journal v1 source=fp1\n';

describe('journal', () => {
  it('replays whole lines, leaves a torn tail in place (its own line, then bad), and counts bad lines', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    await writeFile(file, HEADER + 'DL_OK\ta\t5\nUP_OK\ta\tfile:///x/a.png\tpng\t5\th\t1\t1\t0\nGARBAGE LINE\nDL_ERR\tb\tTIME');
    const { journal, replayed, events } = open(file, 'fp1');
    expect(events.map((e) => `${e.kind}:${e.id}`)).toEqual(['DL_OK:a', 'UP_OK:a']);
    expect(replayed.badLines).toBe(1);
    const at = journal.append('DL_ERR\tb\tTIMEOUT\t4\tidle\n');
    expect(journal.eventsAt([at])).toEqual([{ kind: 'DL_ERR', id: 'b', reason: 'TIMEOUT', attempts: 4, detail: 'idle' }]);
    journal.close();
    const text = await readFile(file, 'utf8');
    // Never cut (another live run of the unit may be appending to the file): this run's first
    // line starts on a line of its own.
    expect(text.endsWith('GARBAGE LINE\nDL_ERR\tb\tTIME\nDL_ERR\tb\tTIMEOUT\t4\tidle\n')).toBe(true);
    const again = open(file, 'fp1');
    again.journal.close();
    expect(again.events.map((e) => e.kind)).toEqual(['DL_OK', 'UP_OK', 'DL_ERR']);
    expect(again.replayed.badLines).toBe(2);
  });

  it('starts afresh for another version of the manifest', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    await writeFile(file, HEADER + 'DL_OK\ta\t5\n');
    const { journal, events, replayed } = open(file, 'fp2');
    journal.close();
    expect(events).toEqual([]);
    expect(replayed.discarded).toBe(true); // so the run can say why nothing resumes
    const again = open(file, 'fp2');
    again.journal.close();
    expect(again.replayed.discarded).toBe(false);
    const fresh = open(path.join(path.dirname(file), 'new.events'), 'fp2');
    fresh.journal.close();
    expect(fresh.replayed.discarded).toBe(false);
    expect(await readFile(file, 'utf8')).toBe('#ferry-journal v1 source=fp2\n');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('writes what it buffered on close, in order', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'sub', 'u.events');
    const { journal } = open(file, 'fp');
    for (let i = 0; i < 5000; i++) journal.append(`DL_OK\tid${i}\t${i}\n`);
    journal.close();
    const again = open(file, 'fp');
    again.journal.close();
    expect(again.events).toHaveLength(5000);
    expect(again.events[4999]).toEqual({ kind: 'DL_OK', id: 'id4999', bytes: 4999 });
  });
  it('reads a journal larger than its read chunk line by line, up to a torn tail it leaves as it is', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    const line = (i: number) => `UP_OK\tid-${i}\tfile:///x/${'d'.repeat(i % 300)}/id-${i}.png\tpng\t5\t${'a'.repeat(64)}\t1\t1\t0\n`;
    const lines = Array.from({ length: 20_000 }, (_, i) => line(i)); // ~5 MiB: several chunks
    const torn = 'UP_OK\tid-torn\tfile:///x/';
    await writeFile(file, HEADER + lines.join('') + torn);
    expect(Journal.runsIn(file, 'fp1')).toEqual([]); // reading writes nothing
    expect(await readFile(file, 'utf8')).toBe(HEADER + lines.join('') + torn);
    const { journal, replayed, events } = open(file, 'fp1');
    journal.close();
    expect(replayed.events).toBe(20_000);
    expect(events.map((e) => e.id)).toEqual(lines.map((_, i) => `id-${i}`));
    expect(await readFile(file, 'utf8')).toBe(HEADER + lines.join('') + torn + '\n');
  });

  it('starts afresh when the file is shorter than a header', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    await writeFile(file, '#ferry-jou');
    const { journal, events } = open(file, 'fp1');
    journal.close();
    expect(events).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe(HEADER);
  });
});

describe('journal: outcomes read back by offset', () => {
  const upOk = (id: string, dir: string) => `UP_OK\t${id}\tfile:///x/${dir}/${id}.png\tpng\t5\th\t1\t1\t0\n`;

  it('gives each event with the offset of its line, this run\'s read back from the file, and reads lines at offsets in any order', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    const earlier = Array.from({ length: 3000 }, (_, i) => upOk(`e${i}`, 'd'.repeat(i % 200)));
    await writeFile(file, HEADER + earlier.join(''));
    const at = new Map<string, number>();
    const { journal } = Journal.open(file, 'fp1', (e, offset) => at.set(e.id, offset), { runId: 'r2', startedAt: 't' });
    expect(at.size).toBe(3000);
    for (let i = 0; i < 3000; i++) journal.append(upOk(`n${i}`, 'n'.repeat(i % 300)));
    // Another run of the unit, appending to the same file meanwhile.
    await appendFile(file, upOk('other', 'o'));
    journal.append('DL_ERR\tn0\tTIMEOUT\t4\tidle\n');
    const appended: string[] = [];
    journal.readAppended((e, offset) => {
      appended.push(e.kind === 'UP_OK' ? e.id : `${e.kind}:${e.id}`);
      at.set(e.kind === 'DL_ERR' ? 'n0-again' : e.id, offset);
    });
    // The other run's line lands between two of this run's flushes: where, is the file's to say.
    expect(appended.filter((id) => id !== 'other')).toEqual([...Array.from({ length: 3000 }, (_, i) => `n${i}`), 'DL_ERR:n0']);
    expect(appended).toContain('other');
    const ids = ['n2999', 'e0', 'other', 'e2999', 'n0-again', 'e1500', 'n10', 'e1500'];
    const events = journal.eventsAt(ids.map((id) => at.get(id)!));
    journal.close();
    expect(events.map((e) => e.id)).toEqual(['n2999', 'e0', 'other', 'e2999', 'n0', 'e1500', 'n10', 'e1500']);
    expect(events[0]).toMatchObject({ kind: 'UP_OK', uri: `file:///x/${'n'.repeat(2999 % 300)}/n2999.png` });
    expect(events[4]).toEqual({ kind: 'DL_ERR', id: 'n0', reason: 'TIMEOUT', attempts: 4, detail: 'idle' });
  });

  it("gives each appended line's offset as it appends, bytes not characters, and reads nothing back when no other run appended", async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    await writeFile(file, HEADER + upOk('e0', 'd'));
    const { journal } = Journal.open(file, 'fp1', () => {}, { runId: 'r2', startedAt: 't' });
    const at = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      at.set(`n${i}`, journal.append(upOk(`n${i}`, 'é☃'.repeat(i % 50))));
      if (i % 500 === 0) journal.flush();
    }
    let readBack = 0;
    journal.readAppended(() => readBack++);
    expect(readBack).toBe(0);
    const ids = ['n1999', 'n0', 'n1234', 'n49'];
    expect(journal.eventsAt(ids.map((id) => at.get(id)!)).map((e) => e.id)).toEqual(ids);
    journal.close();
  });

  it('reads back a line longer than its read chunk', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    const { journal } = Journal.open(file, 'fp1', () => {});
    const detail = 'x'.repeat(700_000);
    const at = [journal.append('DL_OK\ta\t5\n'), journal.append(`DL_ERR\tb\tHTTP_5XX\t3\t${detail}\n`), journal.append('DL_OK\tc\t5\n')];
    const events = journal.eventsAt([at[2]!, at[1]!, at[0]!]);
    journal.close();
    expect(events.map((e) => e.id)).toEqual(['c', 'b', 'a']);
    expect(events[1]).toMatchObject({ kind: 'DL_ERR', detail });
  });
});

describe('journal: lines no event can be', () => {
  it('skips a 600 MB line (a hole a crash left) without holding it, and reads the events after it', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-journal-')), 'u.events');
    const before = 'DL_OK\ta\t5\n';
    const after = 'UP_OK\ta\tfile:///x/a.png\tpng\t5\th\t1\t1\t0\n';
    await writeFile(file, HEADER + before);
    await truncate(file, HEADER.length + before.length + 600 * 2 ** 20); // sparse: no disk used
    await appendFile(file, '\n' + after);
    const { journal, replayed, events } = open(file, 'fp1');
    journal.close();
    expect(events.map((e) => `${e.kind}:${e.id}`)).toEqual(['DL_OK:a', 'UP_OK:a']);
    expect(replayed.badLines).toBe(1);
    await rm(file);
  });

  it('opens in a folder that a concurrent prune removes as it opens', async () => {
    // Another unit's discardJournal (or another command's tidy) removes the folders it
    // leaves empty, on libuv's thread pool, while this thread opens a unit in the same folder.
    const root = await mkdtemp(path.join(tmpdir(), 'ferry-journal-'));
    for (let i = 0; i < 100; i++) {
      const done = journalFiles(root, `2024/a${i}`);
      open(done.events, 'fp').journal.close();
      rmSync(done.events);
      const pruning = rmdir(path.dirname(done.events)).catch(() => {});
      const next = journalFiles(root, `2024/b${i}`);
      const opened = (() => {
        try {
          open(next.events, 'fp').journal.close();
          return 'opened';
        } catch (e) {
          return (e as NodeJS.ErrnoException).code;
        }
      })();
      await pruning;
      expect(opened).toBe('opened');
      const reopened = open(next.events, 'fp');
      reopened.journal.close();
      expect(reopened.events).toEqual([]);
      await discardJournal(next);
    }
  });

  it('discardJournal deletes the tasks before the journal, so that a kill in between leaves what the next run discards', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'ferry-discard-order-'));
    const files = journalFiles(root, 'u');
    await writeFile(files.tasks, 'a\thttp://h/a\n');
    // An events path that cannot be removed stops discardJournal where a kill would.
    await mkdir(files.events);
    await writeFile(path.join(files.events, 'x'), 'x');
    await expect(discardJournal(files)).rejects.toThrow();
    await expect(stat(files.tasks)).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(root, { recursive: true, force: true });
  });
});

describe('tidyWorkDir', () => {
  it("removes the staged copies killed commands left in the work dir's other run folders, and nothing of a live one or of anyone else", async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'ferry-tidy-'));
    const mine = path.join(root, '0123456789abcdef');
    const dead = writerTag(4_194_305); // a pid no process has
    const file = async (...at: string[]) => {
      await mkdir(path.join(root, ...at.slice(0, -1)), { recursive: true });
      await writeFile(path.join(root, ...at), 'x');
    };
    await file('0123456789abcdef', 'staging', dead, 'm.parquet');
    // A compile with other options, killed while it copied its manifest, and a killed replay.
    await file('fedcba9876543210', 'staging', dead, 'big.parquet');
    await file('replay-00112233445566ff', 'staging', dead, 'renewed.parquet');
    // A compile with other options, killed, whose journal waits to be resumed; a live command's staging.
    await file('aaaaaaaaaaaaaaaa', 'u.events');
    await file('aaaaaaaaaaaaaaaa', 'staging', dead, 'u.parquet');
    await file('bbbbbbbbbbbbbbbb', 'staging', writerTag(process.pid), 'live.parquet');
    // Not a run folder of ferry's.
    await file('mine-too', 'staging', dead, 'keep');
    await mkdir(stagingDir(mine), { recursive: true });
    await tidyWorkDir(mine);
    const left = (await readdirRecursive(root)).sort();
    expect(left).toEqual(['aaaaaaaaaaaaaaaa/u.events', `bbbbbbbbbbbbbbbb/staging/${writerTag(process.pid)}/live.parquet`, `mine-too/staging/${dead}/keep`]);
    expect((await readdir(root)).sort()).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb', 'mine-too']); // the run folders left empty are gone
    await rm(root, { recursive: true });
  });

  it("removes the write-check markers killed commands left in the other run folders, and those folders, but a live check's", async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'ferry-tidy-'));
    const mine = path.join(root, '0123456789abcdef');
    const now = Date.now();
    // A compile killed during its work dir's check, then run again with another --dest (another run key).
    const killed = path.join(root, 'fedcba9876543210');
    const live = path.join(root, 'aaaaaaaaaaaaaaaa');
    await mkdir(killed);
    await mkdir(live);
    await writeFile(path.join(killed, `${WRITE_CHECK_MARKER}${writerTag(4_194_305)}-${now}-0`), 'ferry');
    const liveMarker = `${WRITE_CHECK_MARKER}${writerTag(process.pid)}-${now}-999`;
    await writeFile(path.join(live, liveMarker), 'ferry');
    await mkdir(stagingDir(mine), { recursive: true });
    await tidyWorkDir(mine);
    expect(await readdirRecursive(root)).toEqual([`aaaaaaaaaaaaaaaa/${liveMarker}`]);
    expect(await readdir(root)).toEqual(['aaaaaaaaaaaaaaaa']);
    await rm(root, { recursive: true });
  });
});

async function readdirRecursive(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}
