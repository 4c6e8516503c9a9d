import { describe, expect, it } from 'vitest';
import { encodeProgress, parseProgress } from './progress.js';
import { REASONS, classOf } from './reasons.js';
import { encodeTask, encodeUnitSwitch, idProblem, parseTask, parseTaskLine, tasksAhead } from './tasks.js';
import { parseRate, parseSize } from './units.js';
import { parseWorkerFlags } from './flags.js';

describe('tasks', () => {
  it('round-trips id<TAB>url', () => {
    const t = { id: 'ü d/../x', url: 'https://h/a b.jpg?x=1' };
    expect(parseTask(encodeTask(t).slice(0, -1))).toEqual(t);
  });
  it.each([
    ['', 'empty id'],
    ['a\tb', 'TAB'],
    ['a\nb', 'TAB, CR or LF'],
    ['x'.repeat(1025), 'longer than 1024'],
  ])('idProblem(%j) names %s', (id, why) => expect(idProblem(id)).toContain(why));
  it('accepts an id of exactly 1 KiB', () => expect(idProblem('é'.repeat(512))).toBeNull());
  it.each([['noturl'], ['\turl'], ['a\tb\tc']])('refuses task line %j', (line) => expect(() => parseTask(line)).toThrow());
  it('skips blank lines', () => expect(parseTask('')).toBeNull());
  it.each([['u1'], ['sub/u 2'], ['tab\there'], ['line\nbreak'], ['"quoted"'], ['..a']])('switches to unit %j on the stream', (unit) => {
    const line = encodeUnitSwitch(unit);
    expect(line.split('\n')).toHaveLength(2); // one line, whatever the name holds
    expect(parseTaskLine(line.slice(0, -1))).toEqual({ kind: 'unit', unit });
    expect(parseTaskLine(line.slice(0, -1) + '\r')).toEqual({ kind: 'unit', unit });
  });
  it('tells tasks from directives, and refuses unknown or malformed directives', () => {
    expect(parseTaskLine('a\thttp://h/x')).toEqual({ kind: 'task', task: { id: 'a', url: 'http://h/x' } });
    expect(parseTaskLine('')).toBeNull();
    for (const bad of ['\turl', '\tunit', '\tunit\tu1', '\tunit\t1', '\tunit\t"a"\tx', '\tstop\t"a"']) expect(() => parseTaskLine(bad), bad).toThrow();
    // Names whose empty segments would vanish in a folder: `a//b` writes where `a/b` does.
    for (const bad of ['""', '"/x"', '"a//b"', '"a/"']) expect(() => parseTaskLine(`\tunit\t${bad}`), bad).toThrow(/not a unit/);
    expect(() => parseTaskLine('\tstop\t"a"')).toThrow('unknown directive "stop"');
  });
  it('never quotes the URL of a task line whose id is empty (it may carry credentials)', () => {
    for (const line of ['\thttp://user:s3cretPW@cdn.example/a.jpg', '\thttps://b.s3.amazonaws.com/k?X-Amz-Signature=s3cretPW']) {
      expect(() => parseTaskLine(line)).toThrow('unknown directive (a task line needs a non-empty id)');
    }
  });
});

describe("tasksAhead (a worker's read-ahead, an orchestrator's window)", () => {
  it.each([
    [1, 16],
    [2, 16],
    [4, 32],
    [64, 512],
    [1024, 8192],
    [2048, 10_240],
    [100_000, 108_192],
  ])('concurrency %i: %i tasks', (c, n) => {
    expect(tasksAhead(c)).toBe(n);
  });
});

describe('progress', () => {
  it('round-trips and ignores unknown keys', () => {
    const line = encodeProgress({ t: 5.04, DlOk: 1, DlErr: 2, Bad: 3, UpOk: 4, UpErr: 5, Inflight: 6, Conc: 64, DownRate: 1e6, UpRate: 2e6 });
    expect(line).toBe('PROGRESS v=1 t=5.0 DlOk=1 DlErr=2 Bad=3 UpOk=4 UpErr=5 Inflight=6 Conc=64 DownRate=1000000 UpRate=2000000\n');
    expect(parseProgress(line.trim() + ' Extra=9')).toMatchObject({ v: 1, UpOk: 4, Conc: 64 });
  });
  it('returns null for log lines', () => {
    expect(parseProgress('(node:1) Warning: something')).toBeNull();
    expect(parseProgress('PROGRESS garbage')).toBeNull();
  });
});

describe('reasons', () => {
  it('gives every code exactly one known class', () => {
    for (const r of REASONS) expect(['permanent', 'invalid', 'transient']).toContain(classOf(r));
  });
});

describe('sizes', () => {
  it.each([
    ['4096', 4096],
    ['1KiB', 1024],
    ['100MiB', 100 * 2 ** 20],
    ['5TiB', 5 * 2 ** 40],
    ['1.5KB', 1500],
    ['2 gb', 2e9],
    ['abc', null],
    ['-1', null],
    ['1XB', null],
  ])('parseSize(%j) = %j', (text, want) => expect(parseSize(text)).toBe(want));
  it('parses rates', () => expect(parseRate('1KiB/s')).toBe(1024));
});

describe('size gates that contradict each other', () => {
  it.each([
    // an explicit ceiling below the floor: said with both sizes
    [{ 'min-bytes': '10', 'max-bytes': '5' }, '--max-bytes: 5 bytes is below --min-bytes (10 bytes)'],
    // the profile's default ceiling below the floor: every object was TOO_SMALL or TOO_LARGE, and the unit completed
    [{ 'min-bytes': '200MiB' }, "--min-bytes: 209715200 bytes is above --max-bytes, the image profile's 104857600 by default"],
  ])('%j', (raw, message) => {
    expect(() => parseWorkerFlags(raw)).toThrow(message);
  });

  it('a floor up to the ceiling is taken', () => {
    expect(parseWorkerFlags({ 'min-bytes': '100MiB' }).minBytes).toBe(100 * 2 ** 20);
    expect(parseWorkerFlags({ 'min-bytes': '200MiB', profile: 'any' }).minBytes).toBe(200 * 2 ** 20);
  });
});

describe('--origin-header given twice for one host and header', () => {
  it.each([
    [['a.example=X-K: 1', 'A.example.=x-k: 2'], {}, '--origin-header: a.example is given the header x-k twice (values 1 and 2 of --origin-header)'],
    [['a.example=X-K: 1'], { FERRY_ORIGIN_HEADERS: 'a.example=X-K: 2' }, '--origin-header: a.example is given the header x-k twice (value 1 of --origin-header and line 1 of FERRY_ORIGIN_HEADERS)'],
  ])('%j %j is refused, naming both (only the last was sent)', (list, env, message) => {
    expect(() => parseWorkerFlags({ 'origin-header': list }, env)).toThrow(message);
  });

  it('a host and its host:port, or two headers of one host, are not a repeat', () => {
    const list = ['a.example=X-K: 1', 'a.example:8443=X-K: 2', 'a.example=X-L: 3', 'b.example=X-K: 4'];
    expect(parseWorkerFlags({ 'origin-header': list }, {}).originHeader).toEqual(list);
  });

  it('the values are not quoted', () => {
    expect(() => parseWorkerFlags({ 'origin-header': ['h=Authorization: Bearer SECRET1', 'h=authorization: Bearer SECRET2'] }, {})).toThrow(/^(?!.*SECRET)/);
  });
});
