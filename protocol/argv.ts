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
