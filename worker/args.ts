/**
 * `ferry worker`'s command line: the worker's own options and the shared WORKER_FLAG_SPECS.
 * What an orchestrator writes is read by node:util's parser; help and everything else by
 * yargs, which loads only then.
 */
import { parseArgs as utilParseArgs } from 'node:util';
import { WORKER_FLAG_SPECS, type WorkerFlags, defaultText, parseWorkerFlags, refuseRepeats } from '../protocol/index.js';

export type Args = { tasks: string; dest: string; unit?: string; runId?: string; progressInterval: number; adaptive: boolean; flags: WorkerFlags };

export class UsageError extends Error {}

/** The worker's own options, beside the shared WORKER_FLAG_SPECS. */
const OWN_OPTIONS = {
  tasks: { type: 'string', demandOption: true, describe: 'task file (id<TAB>url per line), or - for stdin' },
  dest: { type: 'string', demandOption: true, describe: 'destination: a folder path or file:// URI' },
  unit: { type: 'string', describe: 'unit name: objects go under <dest>/<unit>/' },
  'run-id': { type: 'string', hidden: true },
  'progress-interval': { type: 'number', default: 5000, hidden: true },
  // --no-adaptive: fixed concurrency, for measuring what the per-host limits save (tests, benchmarks).
  adaptive: { type: 'boolean', default: true, hidden: true },
} as const;

/** yargs reads a lone `-` as an unknown positional, not as a flag's value: join it. */
export function joinDash(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--tasks' && argv[i + 1] === '-') out.push('--tasks=' + argv[++i]);
    else out.push(argv[i]!);
  }
  return out;
}

/**
 * The command lines an orchestrator writes (each flag once, as `--flag value`), read
 * without loading yargs: it cost ~50 ms of every worker's start. Anything else (help, an
 * unknown or repeated flag, a negation, a value that looks like a flag, a number that is
 * not plain digits) is null, for yargs to read and to explain.
 */
export function quickArgs(argv: string[]): Record<string, unknown> | null {
  const options: Record<string, { type: 'string' | 'boolean'; multiple: true }> = {};
  for (const [flag, o] of Object.entries(OWN_OPTIONS)) options[flag] = { type: o.type === 'boolean' ? 'boolean' : 'string', multiple: true };
  for (const s of WORKER_FLAG_SPECS) options[s.flag] = { type: s.type === 'boolean' ? 'boolean' : 'string', multiple: true };
  let values: Record<string, (string | boolean)[] | undefined>;
  try {
    values = utilParseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch {
    return null;
  }
  const raw: Record<string, unknown> = {};
  for (const [flag, o] of Object.entries(OWN_OPTIONS)) if ('default' in o) raw[flag] = o.default;
  for (const [flag, list] of Object.entries(values)) {
    if (!list) continue;
    const array = WORKER_FLAG_SPECS.some((s) => s.flag === flag && s.type === 'array');
    if (list.length > 1 && !array) return null;
    raw[flag] = array ? list : list[0];
  }
  for (const [flag, o] of Object.entries(OWN_OPTIONS)) {
    if ('demandOption' in o && raw[flag] === undefined) return null;
    if (o.type === 'number' && raw[flag] !== undefined && typeof raw[flag] !== 'number') {
      if (!/^\d+$/.test(String(raw[flag]))) return null;
      raw[flag] = Number(raw[flag]);
    }
  }
  return raw;
}

/** yargs, for help and for every command line quickArgs leaves to it. */
export async function yargsArgs(argv: string[]): Promise<Record<string, unknown>> {
  const { default: yargs } = await import('yargs');
  let y = yargs(argv)
    .scriptName('ferry worker')
    .usage('$0 --tasks <file|-> --dest <uri> [--unit NAME] [flags]')
    .options(OWN_OPTIONS)
    .strict()
    .help()
    .version(false)
    .exitProcess(false)
    .fail((msg, err) => {
      throw new UsageError(err?.message ?? msg);
    });
  for (const s of WORKER_FLAG_SPECS) y = y.option(s.flag, { type: s.type, describe: s.describe, defaultDescription: defaultText(s) });
  const raw = y.parseSync() as Record<string, unknown>;
  if (raw.help) process.exit(0);
  return raw;
}

/** The Args of raw values keyed by flag name, from either parser. */
export function argsOf(raw: Record<string, unknown>): Args {
  refuseRepeats(raw, ['origin-header']);
  return {
    tasks: String(raw.tasks),
    dest: String(raw.dest),
    unit: raw.unit === undefined ? undefined : String(raw.unit),
    runId: raw['run-id'] === undefined ? undefined : String(raw['run-id']),
    progressInterval: Number(raw['progress-interval']),
    adaptive: raw.adaptive !== false,
    flags: parseWorkerFlags(raw),
  };
}

export async function parseArgs(argv: string[]): Promise<Args> {
  const joined = joinDash(argv);
  return argsOf(quickArgs(joined) ?? (await yargsArgs(joined)));
}
