/**
 * Plain command lines read without yargs. yargs (with cliui and yargs-parser) costs
 * 50–80 ms of CPU to load and to build a command's options, on the path of every run,
 * before any work: the orchestrator's start, and each worker's. `quickArgv` reads the
 * common shape with node:util's parser and gives the values keyed by flag name, as yargs
 * does. Anything it is not sure to read as yargs would (help, an unknown or repeated flag,
 * a negation, a boolean with a value, a value that looks like a flag, `--`, a positional
 * after a flag or one too many, a missing required flag, a number that is not plain
 * digits) is null: the caller hands that line to yargs, which reads it or explains why not.
 */
import { parseArgs } from 'node:util';

export type QuickOption = {
  type: 'string' | 'boolean' | 'number';
  /** Repeatable: every value, in order (yargs' `array`). Else a second one is left to yargs. */
  array?: boolean;
  default?: unknown;
  demandOption?: boolean | string;
};

/**
 * The values of `argv`, keyed by flag name, with `positionals` (the names of the required
 * positionals, first on the line) among them and defaults filled; or null (see above).
 */
export function quickArgv(
  argv: readonly string[],
  options: Readonly<Record<string, QuickOption>>,
  positionals: readonly string[] = [],
): Record<string, unknown> | null {
  const spec: Record<string, { type: 'string' | 'boolean'; multiple: true }> = {};
  for (const [flag, o] of Object.entries(options)) spec[flag] = { type: o.type === 'boolean' ? 'boolean' : 'string', multiple: true };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: spec, strict: true, allowPositionals: positionals.length > 0, tokens: true });
  } catch {
    return null;
  }
  // yargs' arrays take every value up to the next flag, positionals included: so the
  // positionals come first, all of them, and nothing follows the flags.
  const { tokens } = parsed;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'option-terminator') return null;
    if (t.kind === 'positional' && i >= positionals.length) return null;
  }
  if (parsed.positionals.length !== positionals.length) return null;

  const raw: Record<string, unknown> = {};
  positionals.forEach((name, i) => (raw[name] = parsed.positionals[i]));
  for (const [flag, o] of Object.entries(options)) {
    const list = (parsed.values as Record<string, (string | boolean)[] | undefined>)[flag];
    if (list === undefined) {
      if (o.demandOption) return null;
      if ('default' in o) raw[flag] = o.default;
      continue;
    }
    if (list.length > 1 && !o.array) return null;
    if (o.type === 'number') {
      if (!list.every((v) => /^\d+$/.test(String(v)))) return null;
      raw[flag] = o.array ? list.map(Number) : Number(list[0]);
    } else raw[flag] = o.array ? list : list[0];
  }
  return raw;
}

/**
 * yargs' fields for an option that takes a value: `requiresArg`, so that a flag given
 * without its value (`--progress` last on the line, or before another flag) is refused.
 * yargs would otherwise read it as the flag's default, or as '' for a flag without one,
 * and run as if the flag had not been typed.
 */
export function valueRequired(type: QuickOption['type'] | 'array'): { requiresArg?: true } {
  return type === 'boolean' ? {} : { requiresArg: true };
}

/** `min-dim` → `minDim`, as yargs' camel-case expansion spells a flag's copy. */
function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Edit distance counting a swap of neighbours as one edit (`--dri` for `--dir`), for a flag's likely spelling. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The known flag nearest to `typed`, when it is near enough to be a typo. */
export function nearestFlag(typed: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(typed, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== null && bestD <= Math.max(1, Math.floor(typed.length / 4)) ? best : null;
}

/**
 * yargs' refusals, reworded to name each flag as the user typed it: `--min-dim`, not
 * `min-dim, minDim` (its camel-case copy), with the nearest flag of the command for a
 * misspelt one, and a word that is not a flag called an argument.
 */
export function usageMessage(message: string, argv: readonly string[], known: readonly string[]): string {
  const noValue = /^Not enough arguments following: (.+)$/.exec(message);
  if (noValue) return `--${noValue[1]}: expected a value`;
  const missing = /^Missing required arguments?: (.+)$/.exec(message);
  if (missing) {
    const flags = missing[1]!.split(', ').map((f) => `--${f}`);
    return `${flags.join(' and ')} ${flags.length > 1 ? 'are' : 'is'} required`;
  }
  const unknown = /^Unknown arguments?: (.+)$/.exec(message);
  if (!unknown) return message;
  const names = unknown[1]!.split(', ');
  // How the user wrote the flag yargs names, or null for a word that is not one.
  const spelling = (name: string) => {
    for (const dashes of ['--', '-']) if (argv.some((a) => a === dashes + name || a.startsWith(`${dashes}${name}=`))) return dashes + name;
    return argv.includes(`--no-${name}`) ? `--no-${name}` : null;
  };
  return names
    .filter((n) => !names.some((o) => o !== n && camel(o) === n && spelling(n) === null))
    .map((n) => {
      const flag = spelling(n);
      if (flag === null) return `unexpected argument "${n}"`;
      const near = nearestFlag(n, known);
      return `unknown flag ${flag}${near ? ` (did you mean --${near}?)` : ''}`;
    })
    .join('; ');
}

/**
 * A boolean flag written with a value other than true or false (`--strict=1`,
 * `--force=yes`): yargs reads every such value as false, so `--strict=1` passed a CI gate
 * it was meant to close. Returns the message naming the flag, or null.
 */
export function booleanValueProblem(argv: readonly string[], booleans: Iterable<string>): string | null {
  for (const flag of booleans) {
    const given = argv.find((a) => a.startsWith(`--${flag}=`));
    if (given === undefined) continue;
    const value = given.slice(flag.length + 3);
    if (value !== 'true' && value !== 'false') return `--${flag}: takes no value (or =true, =false), got "${value}"`;
  }
  return null;
}
