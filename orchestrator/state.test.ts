import { describe, expect, it } from 'vitest';
import { type Event, type TerminalEvent, notUtf8 } from '../protocol/index.js';
import { redactUrl } from '../storage/redact.js';
import { UnitRows, UnitState, outcomeOf } from './state.js';

const redact = (url: string) => url.replace(/\?.*/, '?…');

// Rows with every verdict: a null id, an invalid one, duplicates (of a task, and of a row
// refused for its url), a null and a bad url, and tasks with each kind of outcome.
const ids = ['a', null, 'b', 'a', 'c', 'c', 'bad\tid', 'd', 'e', 'b', 'f'];
const urls = ['http://h/a?sig=1', 'http://h/x', 'http://h/b', 'http://h/a2', null, 'http://h/c', 'http://h/t', 'http://h/d\n', 'http://h/e', null, 'http://h/f'];
const outcomes: Record<string, TerminalEvent> = {
  a: { kind: 'UP_OK', id: 'a', uri: 'file:///d/a.png', ext: 'png', bytes: 5, sha256: 'h', width: 1, height: 1, existed: false },
  b: { kind: 'DL_ERR', id: 'b', reason: 'NOT_FOUND', attempts: 1, detail: 'HTTP 404' },
  e: { kind: 'BAD_IMAGE', id: 'e', reason: 'TOO_FEW_PIXELS', attempts: 1, detail: '1x1' },
  f: { kind: 'UP_ERR', id: 'f', reason: 'UPLOAD_FAILED', attempts: 3, detail: 'EIO' },
};

describe('UnitRows', () => {
  it('gives the outputs an in-memory state gives, reading outcomes back by journal offset, a row group at a time', () => {
    const rows = new UnitRows();
    const tasks = ids.map((id, i) => (rows.judge(id, urls[i]!) === null ? id : null)).filter((id) => id !== null);
    rows.planned();
    expect(tasks).toEqual(['a', 'b', 'e', 'f']);
    expect(rows.tasks).toBe(4);

    // A journal: lines at offsets; an earlier outcome of 'b' is superseded by the last one.
    const journal = new Map<number, Event>();
    const at = (n: number, e: Event) => {
      journal.set(n, e);
      rows.record(e.id, n, e.kind === 'UP_OK');
    };
    at(10, { kind: 'DL_ERR', id: 'b', reason: 'TIMEOUT', attempts: 2, detail: 'idle' });
    at(20, outcomes.a!);
    at(30, outcomes.b!);
    at(40, outcomes.f!);
    at(50, { kind: 'DL_ERR', id: 'c', reason: 'TIMEOUT', attempts: 1, detail: 'not a task: ignored' });
    expect(rows.settled).toBe(3);
    expect(rows.failed).toBe(2); // b once (its later outcome replaces the earlier), f
    expect(rows.settledTask('b')).toBe(true);
    expect(rows.settledTask('e')).toBe(false);
    expect(rows.settledTask('c')).toBe(false);
    at(60, outcomes.e!);
    expect(rows.settled).toBe(4);
    expect(rows.failed).toBe(3);

    const asked: number[][] = [];
    const fromJournal = rows.outcomes({ eventsAt: (offsets) => (asked.push([...offsets]), offsets.map((n) => journal.get(n)!)) });
    const state = new UnitState();
    for (const e of Object.values(outcomes)) state.set(e.id, outcomeOf(e));
    for (const outputs of [fromJournal, state]) outputs.rewind();
    const groups = [[0, 4], [4, 9], [9, 11]] as const;
    for (const [from, to] of groups) {
      const got = fromJournal.outputs(ids.slice(from, to), urls.slice(from, to), redact);
      expect(got).toEqual(state.outputs(ids.slice(from, to), urls.slice(from, to), redact));
    }
    expect(asked).toEqual([[20, 30], [60], [40]]);
    // A second pass gives the same again.
    fromJournal.rewind();
    expect(fromJournal.outputs(ids.slice(0, 4), urls.slice(0, 4), redact).paths).toEqual(['file:///d/a.png', null, null, null]);
  });

  it('reads a large row group back a slice at a time, rows in order', () => {
    const rows = new UnitRows();
    const n = 10_000;
    const big = Array.from({ length: n }, (_, i) => `id-${i}`);
    for (const id of big) rows.judge(id, `http://h/${id}`);
    rows.planned();
    // Journaled in reverse: offsets decrease as rows go on.
    big.forEach((id, i) => rows.record(id, n - i, true));
    const calls: number[] = [];
    const upOk = (n2: number): Event => ({ ...outcomes.a!, id: `id-${n - n2}`, uri: `file:///d/id-${n - n2}.png` }) as Event;
    const outputs = rows.outcomes({ eventsAt: (offsets) => (calls.push(offsets.length), offsets.map(upOk)) });
    outputs.rewind();
    const got = outputs.outputs(big, big.map((id) => `http://h/${id}`), redact);
    expect(got.paths).toEqual(big.map((id) => `file:///d/${id}.png`));
    expect(calls.reduce((a, b) => a + b, 0)).toBe(n);
    expect(Math.max(...calls)).toBeLessThan(n);
  });

  it('counts a task failed by its last outcome only', () => {
    const rows = new UnitRows();
    rows.judge('a', 'http://h/a');
    rows.planned();
    rows.record('a', 0, false);
    expect({ settled: rows.settled, failed: rows.failed }).toEqual({ settled: 1, failed: 1 });
    rows.record('a', 9, true); // a later run's outcome of the same task
    expect({ settled: rows.settled, failed: rows.failed }).toEqual({ settled: 1, failed: 0 });
    rows.record('a', 20, false);
    expect({ settled: rows.settled, failed: rows.failed }).toEqual({ settled: 1, failed: 1 });
  });

  it('refuses a row unlike the one judged (the manifest changed), and a task without an outcome', () => {
    const rows = new UnitRows();
    rows.judge('a', 'http://h/a');
    rows.judge('b', 'http://h/b');
    rows.planned();
    rows.record('a', 0, true);
    const outputs = rows.outcomes({ eventsAt: (offsets) => offsets.map(() => outcomes.a!) });
    expect(() => outputs.outputs(['x'], ['http://h/x'], redact)).toThrow('internal: no outcome for id "x" at row 1');
    outputs.rewind();
    expect(() => outputs.outputs(['a', 'b'], ['http://h/a', 'http://h/b'], redact)).toThrow('internal: no outcome for id "b" at row 2');
    outputs.rewind();
    expect(() => outputs.outputs(['a', 'b'], ['http://h/a', null], redact)).toThrow('internal: no outcome for id "b" at row 2');
  });
});

describe('a url that is not UTF-8 (a binary url column)', () => {
  it('reaches the ledger as text the redactor read: its secrets redacted, never its bytes in hex', () => {
    const url = notUtf8(Buffer.concat([Buffer.from('http://user:pw@h/'), Buffer.from([0xff]), Buffer.from('?X-Amz-Signature=SECRET')]));
    const state = new UnitState();
    const { ledger } = state.outputs(['a'], [url], redactUrl);
    expect(ledger).toMatchObject([{ id: 'a', reason: 'BAD_URL', url: 'http://***@h/\uFFFD?X-Amz-Signature=REDACTED' }]);
    expect(JSON.stringify(ledger)).not.toMatch(/SECRET|5345435245|7077/);
  });
});
