/** The end-of-run summary, and the exit code it implies (DESIGN.md, "Exit codes"). */
import path from 'node:path';
import { type Place, uriOf } from '../storage/index.js';
import type { UnitReport } from './compile.js';
import { EXIT } from './errors.js';
import { printable } from './printable.js';
import { outputKeys } from './unit-manifest.js';

/**
 * `blankLine`: the summary stands apart from progress lines before it; with `--progress none`
 * it is the run's first line (or follows only what went wrong), so none is printed.
 */
export function printSummary(reports: UnitReport[], seconds: number, opts: { strict: boolean; out: Place; blankLine?: boolean }): number {
  const complete = reports.filter((r) => r.status === 'complete');
  const skipped = reports.filter((r) => r.status === 'skipped');
  const failed = reports.filter((r) => r.status === 'failed');
  let rows = 0;
  let migrated = 0;
  let ledgered = 0;
  for (const r of complete) {
    rows += r.counts?.rows ?? 0;
    migrated += r.counts?.migrated ?? 0;
    ledgered += r.counts?.failed ?? 0;
  }
  const out = process.stderr;
  out.write(
    `${opts.blankLine === false ? '' : '\n'}ferry: ${complete.length} unit(s) compiled, ${skipped.length} already complete, ${failed.length} failed in ${seconds.toFixed(1)} s` +
      (complete.length ? ` — ${rows} rows, ${migrated} migrated, ${ledgered} in ledgers` : '') +
      '\n',
  );
  for (const f of failed) out.write(`ferry: unit ${printable(f.unit)} failed: ${printable(f.error ?? '')}\n`);
  // A ledger to show: one with transient rows (replay's default re-runs them), else one with
  // rows a replay could re-run, else any.
  const transient = complete.find((r) => (r.counts?.byClass.transient ?? 0) > 0);
  const replayable = complete.find((r) => (r.counts?.failed ?? 0) > (r.counts?.byStage.compile ?? 0));
  const example = transient ?? replayable ?? complete.find((r) => (r.counts?.failed ?? 0) > 0);
  if (example) {
    const key = outputKeys(example.unit).ledger;
    // The path itself, not a file: URL's percent-encoded spelling of it (`o%207/` for `o 7/`).
    const ledger = opts.out.scheme === 'file' ? path.join(opts.out.path, key) : uriOf(opts.out, key);
    const next = transient
      ? `; re-run the transient ones with: ferry replay ${shellWord(ledger)}`
      : replayable
        ? (replayable.counts?.byStage.upload ?? 0) > 0
          ? ' (none is transient; those of stage upload are the destination\'s refusals: fix its permissions or conflicts, then replay them with --reasons)'
          : ' (none is transient: fix the data, or replay chosen ones with --reasons)'
        : ' (each was refused before any fetch — null, invalid or duplicate ids, bad URLs — which no replay re-sends: fix the manifests)';
    out.write(printable(`ferry: failures are in the ledgers, e.g. ${ledger}${next}`) + '\n');
  }
  if (failed.length > 0) return EXIT.FAILED;
  const earlier = skipped.reduce((sum, r) => sum + (r.ledgerRows ?? 0), 0);
  if (opts.strict && ledgered + earlier > 0) {
    const where = ledgered > 0 ? 'ledger rows were written' : `the ledgers of units already complete hold ${earlier} row(s)`;
    out.write(`ferry: --strict: ${where}\n`);
    return EXIT.FAILED;
  }
  return EXIT.OK;
}

/**
 * A word a shell reads back as it is, for a command to copy: quoted when it must be; with
 * control characters, in the $'…' form (bash, zsh, ksh; POSIX since 2024), which spells them.
 */
export function shellWord(word: string): string {
  if (/^[\w@%+=:,./-]+$/.test(word)) return word;
  // eslint-disable-next-line no-control-regex -- the control characters are what it finds
  if (!/[\u0000-\u001f\u007f-\u009f]/.test(word)) return `'${word.replace(/'/g, `'\\''`)}'`;
  return `$'${printable(word.replace(/[\\']/g, (c) => `\\${c}`))}'`;
}
