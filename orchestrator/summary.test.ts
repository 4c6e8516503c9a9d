import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Counts } from './materialize.js';
import { printSummary } from './summary.js';

const counts = (over: Partial<Counts>): Counts => ({ rows: 10, migrated: 8, failed: 2, bad: 0, byReason: {}, byClass: {}, byStage: {}, ...over });

function summary(c: Counts, blankLine?: boolean): string {
  let text = '';
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((text += String(chunk)), true));
  const code = printSummary([{ unit: 'u', status: 'complete', counts: c }], 1, { strict: false, out: { scheme: 'file', path: '/out' } as never, ...(blankLine === undefined ? {} : { blankLine }) });
  expect(code).toBe(0);
  return text;
}

afterEach(() => vi.restoreAllMocks());

describe('the summary line', () => {
  it('stands apart from the progress lines before it, and starts the output under --progress none', () => {
    expect(summary(counts({}))).toMatch(/^\nferry: 1 unit\(s\) compiled/);
    expect(summary(counts({}), false)).toMatch(/^ferry: 1 unit\(s\) compiled/);
  });
});

describe('the summary of ledger rows', () => {
  it('says how to replay transient failures', () => {
    expect(summary(counts({ byClass: { transient: 2 }, byStage: { download: 2 } }))).toContain('re-run the transient ones with: ferry replay /out/u.ledger.tsv');
  });

  it('says the data is to fix when no failure is transient', () => {
    expect(summary(counts({ byClass: { permanent: 2 }, byStage: { download: 2 } }))).toContain('(none is transient: fix the data, or replay chosen ones with --reasons)');
  });

  it("says the destination is to fix when it refused the uploads (a bucket's permissions changed mid-run), not the data", () => {
    const text = summary(counts({ byClass: { permanent: 2 }, byReason: { FORBIDDEN: 2 }, byStage: { upload: 2 } }));
    expect(text).toContain("those of stage upload are the destination's refusals");
    expect(text).not.toContain('fix the data');
  });
});
