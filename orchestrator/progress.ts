/**
 * Live progress: on a TTY, one line per running unit, redrawn in place (done/total,
 * objects/s, MB/s, failures, ETA); otherwise plain periodic lines. A summary at the end.
 */
import type { Event, Progress } from '../protocol/index.js';
import type { Counts } from './materialize.js';
import { fitColumns, printable } from './printable.js';

/**
 * `started` is when the unit's first event came, not when its tasks were handed over: a
 * unit queued behind another's tail on the same worker would otherwise count its wait in
 * its rate and ETA (0.0 obj/s and an ETA of 17m for a unit done 6 s later). `resumed` is
 * the tasks an earlier run finished (from the journal): counted done, never in a rate.
 */
type Row = { total: number; resumed: number; done: number; failed: number; bytes: number; begun: boolean; started: number; conc: Map<number, { conc: number; at: number }>; lastDone: number; lastBytes: number; lastT: number; rate: number; byteRate: number };

/** A worker whose PROGRESS (every second) is older than this serves the unit no more. */
const CONC_FRESH_MS = 3000;

/** Tasks of a unit that earlier runs finished: the journal's outcomes, and how many of them failed. */
export type Resumed = { done: number; failed: number };

export type BoardMode = 'tty' | 'plain' | 'none';

function fmtRate(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function fmtEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  if (seconds < 90) return `${Math.ceil(seconds)}s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}

export class Board {
  private readonly rows = new Map<string, Row>();
  private drawn = 0;
  private timer: NodeJS.Timeout | null = null;

  /** Display width of a line, once string-width is loaded (on a terminal only: it costs ~20 ms of start-up). */
  private width: ((text: string) => number) | null = null;

  constructor(
    readonly mode: BoardMode,
    private readonly write: (text: string) => void = (t) => process.stderr.write(t),
    private readonly intervalMs = mode === 'tty' ? 500 : 10_000,
  ) {
    if (mode === 'tty') void import('string-width').then((m) => (this.width = m.default));
  }

  private tick(): void {
    this.timer ??= setInterval(() => this.render(), this.intervalMs);
  }

  /** A unit of `total` tasks starts transferring; `resumed` of them were finished by earlier runs. */
  start(unit: string, total: number, resumed: Resumed = { done: 0, failed: 0 }): void {
    const now = Date.now();
    const done = resumed.done;
    this.rows.set(unit, { total, resumed: done, done, failed: resumed.failed, bytes: 0, begun: false, started: now, conc: new Map(), lastDone: done, lastBytes: 0, lastT: now, rate: 0, byteRate: 0 });
    this.tick();
  }

  event(unit: string, e: Event): void {
    const r = this.rows.get(unit);
    if (!r) return;
    if (!r.begun) {
      r.begun = true;
      r.started = r.lastT = Date.now();
    }
    if (e.kind === 'DL_OK') r.bytes += e.bytes;
    else {
      r.done++;
      if (e.kind !== 'UP_OK') r.failed++;
    }
  }

  /** A PROGRESS of `worker`, one of the unit's (a unit may have several at the end of a run). */
  progress(unit: string, p: Progress, worker = 0): void {
    this.rows.get(unit)?.conc.set(worker, { conc: p.Conc, at: Date.now() });
  }

  /** The unit's concurrency: the sum over the workers serving it now, or null before any said. */
  private conc(r: Row, now: number): number | null {
    let sum: number | null = null;
    for (const [worker, c] of r.conc) {
      if (now - c.at > CONC_FRESH_MS && r.conc.size > 1) r.conc.delete(worker);
      else sum = (sum ?? 0) + c.conc;
    }
    return sum;
  }

  private line(unit: string, r: Row): string {
    const now = Date.now();
    const dt = (now - r.lastT) / 1000;
    if (dt >= 1) {
      r.rate = (r.done - r.lastDone) / dt;
      r.byteRate = (r.bytes - r.lastBytes) / dt;
      r.lastDone = r.done;
      r.lastBytes = r.bytes;
      r.lastT = now;
    }
    const elapsed = Math.max((now - r.started) / 1000, 0.001);
    const avg = (r.done - r.resumed) / elapsed;
    const pct = r.total ? ((100 * r.done) / r.total).toFixed(1) : '100';
    // Before a first whole second of rate, the average so far; before the worker's first
    // PROGRESS, its concurrency is not known yet ('–', not 0).
    const first = r.lastT === r.started;
    const rate = first ? avg : r.rate;
    const byteRate = first ? r.bytes / elapsed : r.byteRate;
    return `${printable(unit)}  ${r.done}/${r.total} (${pct}%)  ${fmtRate(rate)} obj/s  ${(byteRate / 1e6).toFixed(1)} MB/s  failed ${r.failed}  conc ${this.conc(r, now) ?? '–'}  ETA ${fmtEta((r.total - r.done) / avg)}`;
  }

  private clear(): void {
    // From column 0: the terminal may have echoed ^C after the last line.
    if (this.mode === 'tty' && this.drawn > 0) this.write(`\r\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  render(): void {
    if (this.mode === 'none' || this.rows.size === 0) return;
    this.clear();
    const lines = [...this.rows].map(([u, r]) => this.line(u, r));
    if (this.mode === 'tty') this.drawn = lines.length;
    this.write(lines.map((l) => (this.mode === 'tty' ? this.fit(l) : l)).join('\n') + '\n');
  }

  /** A live line cut to the terminal's width (until string-width has loaded, by UTF-16 length). */
  private fit(line: string): string {
    const columns = (process.stderr.columns || 200) - 1;
    return this.width ? fitColumns(line, columns, this.width) : line.slice(0, columns);
  }

  /**
   * A log line (a worker's warning or crash, a notice): printed above the live lines, in
   * every mode — `none` turns off progress, not what went wrong.
   */
  log(text: string): void {
    this.clear();
    this.write(printable(text) + '\n');
  }

  /** A line in answer to a signal, on a line of its own (the terminal may have echoed ^C). */
  notice(text: string): void {
    this.clear();
    this.write('\n');
    this.log(text);
  }

  /** A unit's result, part of the progress view (the summary repeats what matters). */
  private result(text: string): void {
    if (this.mode !== 'none') this.log(text);
  }

  skip(unit: string): void {
    this.result(`${unit}: complete already (same source and options), skipped`);
  }

  done(unit: string, c: Counts): void {
    this.rows.delete(unit);
    this.result(`${unit}: complete — ${c.rows} rows, ${c.migrated} migrated, ${c.failed} in the ledger (${c.bad} bad)`);
  }

  fail(unit: string, message: string): void {
    this.rows.delete(unit);
    this.result(`${unit}: FAILED — ${message}`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clear();
  }
}
