/** Sizes and rates on the command line: plain bytes or KiB/MiB/GiB/TiB (and KB/MB/GB/TB). */
const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Parses "100MiB", "1.5GB", "4096" into bytes; returns null when it is not a size. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return null;
  const mult = UNITS[(m[2] ?? '').toUpperCase()];
  if (mult === undefined) return null;
  const n = Math.round(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : null;
}

/** Parses a rate like "1KiB/s" into bytes per second. */
export function parseRate(text: string): number | null {
  const m = /^(.*?)(?:\/s)?$/i.exec(text.trim());
  return m ? parseSize(m[1] ?? '') : null;
}
