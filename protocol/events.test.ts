import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type Event, ProtocolError, encodeEvent, isTerminal, oneLine, parseEvent } from './events.js';

// Golden files: protocol/golden/events.tsv holds event lines as a worker prints them and
// events.json the parsed events. Regenerate the JSON after a deliberate grammar change with
//   FERRY_UPDATE_GOLDEN=1 npx vitest run protocol
const goldenLines = readFileSync(new URL('./golden/events.tsv', import.meta.url), 'utf8').split('\n').filter(Boolean);
const goldenJson = new URL('./golden/events.json', import.meta.url);

describe('event grammar', () => {
  it('parses the golden lines into the golden events', () => {
    const parsed = goldenLines.map(parseEvent);
    if (process.env.FERRY_UPDATE_GOLDEN) writeFileSync(goldenJson, JSON.stringify(parsed, null, 2) + '\n');
    expect(parsed).toEqual(JSON.parse(readFileSync(goldenJson, 'utf8')));
  });

  it('re-encodes every golden event to its line (unknown trailing fields dropped)', () => {
    for (const line of goldenLines) {
      const known = line.startsWith('UP_OK') ? line.split('\t').slice(0, 9).join('\t') : line;
      expect(encodeEvent(parseEvent(line))).toBe(known + '\n');
    }
  });

  it.each([
    ['', 'missing id'],
    ['DL_OK', 'missing id'],
    ['DL_OK\tid\t', 'missing bytes'],
    ['DL_OK\tid\t-1', 'bad bytes'],
    ['DL_OK\tid\t1.5', 'bad bytes'],
    ['NOPE\tid\t1', 'unknown event'],
    ['DL_ERR\tid\tNOT_A_REASON\t1\tx', 'unknown reason'],
    ['DL_ERR\tid\tTIMEOUT\t1', 'needs 5 fields'],
    ['UP_OK\tid\t\tjpg\t1\th\t1\t1\t0', 'missing uri'],
    ['UP_OK\tid\tu\tjpg\t1\th\t1\t1\t2', 'bad existed'],
    ['UP_OK\tid\tu\tjpg\t1\th\t1\t1', 'needs 9 fields'],
  ])('refuses %j (%s)', (line, why) => {
    expect(() => parseEvent(line)).toThrowError(ProtocolError);
    expect(() => parseEvent(line)).toThrowError(why);
  });

  it('tolerates a CR before the newline', () => {
    expect(parseEvent('DL_OK\tx\t5\r')).toEqual({ kind: 'DL_OK', id: 'x', bytes: 5 });
  });

  it('refuses to encode a field that would break framing', () => {
    const bad: Event = { kind: 'DL_ERR', id: 'a', reason: 'TIMEOUT', attempts: 1, detail: 'two\tfields' };
    expect(() => encodeEvent(bad)).toThrowError(ProtocolError);
    expect(() => encodeEvent({ kind: 'DL_OK', id: 'a\nb', bytes: 1 })).toThrowError(ProtocolError);
  });

  it('knows the terminal events', () => {
    expect(goldenLines.map(parseEvent).map((e) => `${e.kind}:${isTerminal(e)}`)).toContain('DL_OK:false');
    expect(isTerminal(parseEvent('BAD_IMAGE\tx\tEMPTY\t1\t'))).toBe(true);
  });

  it('folds details onto one bounded line', () => {
    expect(oneLine('a\tb\r\nc')).toBe('a b c');
    expect(oneLine('x'.repeat(600)).length).toBe(500);
  });
});
