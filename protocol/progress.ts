/**
 * The worker's PROGRESS line on stderr (telemetry, never facts):
 *   PROGRESS v=1 t=<seconds> DlOk=.. DlErr=.. Bad=.. UpOk=.. UpErr=.. Inflight=.. Conc=.. DownRate=.. UpRate=..
 * Rates are bytes per second over the last interval. Unknown keys are ignored.
 */
export const PROGRESS_VERSION = 1;

export type Progress = {
  v: number;
  t: number;
  DlOk: number;
  DlErr: number;
  Bad: number;
  UpOk: number;
  UpErr: number;
  Inflight: number;
  Conc: number;
  DownRate: number;
  UpRate: number;
};

const KEYS = ['t', 'DlOk', 'DlErr', 'Bad', 'UpOk', 'UpErr', 'Inflight', 'Conc', 'DownRate', 'UpRate'] as const;

export function encodeProgress(p: Omit<Progress, 'v'>): string {
  let s = `PROGRESS v=${PROGRESS_VERSION}`;
  for (const k of KEYS) s += ` ${k}=${k === 't' ? p.t.toFixed(1) : Math.round(p[k])}`;
  return s + '\n';
}

/** Parses a PROGRESS line, or returns null for any other stderr line (a log line). */
export function parseProgress(line: string): Progress | null {
  if (!line.startsWith('PROGRESS ')) return null;
  const p: Progress = { v: 0, t: 0, DlOk: 0, DlErr: 0, Bad: 0, UpOk: 0, UpErr: 0, Inflight: 0, Conc: 0, DownRate: 0, UpRate: 0 };
  for (const pair of line.slice(9).trim().split(' ')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const key = pair.slice(0, eq);
    const value = Number(pair.slice(eq + 1));
    if (Object.prototype.hasOwnProperty.call(p, key) && Number.isFinite(value)) p[key as keyof Progress] = value;
  }
  return p.v >= 1 ? p : null;
}
