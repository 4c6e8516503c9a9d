/**
 * `ferry worker`'s command line: the worker's own options and the shared WORKER_FLAG_SPECS.
 * What an orchestrator writes is read by node:util's parser; help and everything else by
 * yargs, which loads only then.
 */
import { FlagError, MAX_TIMER_MS, type WorkerFlags, booleanValueProblem, isUnitName, parseWorkerFlags, quickArgv, refuseRepeats, usageMessage, workerFlagHelp, workerFlagQuickOptions } from '../protocol/index.js';
import { TEMP_DIR } from '../storage/file.js';

export type Args = { tasks: string; dest: string; unit?: string; runId?: string; progressInterval: number; adaptive: boolean; flags: WorkerFlags };

export class UsageError extends Error {}

/** The worker's own options, beside the shared WORKER_FLAG_SPECS. */
const OWN_OPTIONS = {
  tasks: { type: 'string', demandOption: true, requiresArg: true, describe: 'task file (id<TAB>url per line), or - for stdin' },
  dest: { type: 'string', demandOption: true, requiresArg: true, describe: 'destination: a folder, file:// URI, s3://bucket/prefix or gs://bucket/prefix' },
  unit: { type: 'string', requiresArg: true, describe: 'unit name: objects go under <dest>/<unit>/' },
  'run-id': { type: 'string', requiresArg: true, hidden: true },
  'progress-interval': { type: 'number', requiresArg: true, default: 5000, hidden: true },
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
 * without loading yargs (protocol/argv.ts); null for yargs to read and to explain.
 */
export function quickArgs(argv: string[]): Record<string, unknown> | null {
  return quickArgv(argv, { ...OWN_OPTIONS, ...workerFlagQuickOptions() });
}

/** yargs, for help and for every command line quickArgs leaves to it. */
export async function yargsArgs(argv: string[]): Promise<Record<string, unknown>> {
  const options = { ...OWN_OPTIONS, ...workerFlagQuickOptions() };
  const problem = booleanValueProblem(argv, Object.keys(options).filter((f) => options[f as keyof typeof options].type === 'boolean'));
  if (problem) throw new UsageError(problem);
  const { default: yargs } = await import('yargs');
  const y = yargs(argv)
    .scriptName('ferry worker')
    .usage('$0 --tasks <file|-> --dest <uri> [--unit NAME] [flags]')
    .options(OWN_OPTIONS)
    .strict()
    .help()
    .version(false)
    .exitProcess(false)
    .fail((msg, err) => {
      throw new UsageError(usageMessage(err?.message ?? msg, argv, [...Object.keys(OWN_OPTIONS), ...Object.keys(workerFlagQuickOptions()), 'help']));
    })
    .options(workerFlagHelp());
  const raw = y.parseSync() as Record<string, unknown> & { _: unknown[] };
  if (raw.help) process.exit(0);
  // Words after `--` are left in `_`, unread, even under strict(): refused as the others are.
  if (raw._.length > 0) throw new UsageError(raw._.map((w) => `unexpected argument "${String(w)}"`).join('; '));
  return raw;
}

/** --progress-interval in ms: a whole number a timer takes (NaN, 0 or past MAX_TIMER_MS would make setInterval fire every 1 ms). */
function progressInterval(raw: unknown): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_TIMER_MS) throw new FlagError('progress-interval', `expected a whole number of ms from 1 to ${MAX_TIMER_MS}, got "${String(raw)}"`);
  return n;
}

/**
 * --unit: a relative path of non-empty segments, as the orchestrator's unit names are. ''
 * meant no unit at all; '/x' failed every task as UPLOAD_FAILED (transient) on a folder,
 * and 'a//b' or 'a/' wrote where unit 'a/b' or 'a' writes.
 */
function unitName(unit: string): string {
  if (!isUnitName(unit)) throw new FlagError('unit', `expected a unit name such as 2024/batch-01 (no leading, trailing or doubled /), got "${unit}"`);
  const reserved = reservedUnitProblem(unit);
  if (reserved) throw new FlagError('unit', reserved);
  return unit;
}

/**
 * Why a unit name, valid as a path, cannot be written to: a segment that is a folder
 * destination's temporary folder would put its objects among temporary files, which
 * listings skip and cleanups remove. A compile never makes one (hidden manifests are not
 * units); a standalone worker's --unit or unit directive can.
 */
export function reservedUnitProblem(unit: string): string | null {
  return unit.split('/').includes(TEMP_DIR) ? `unit "${unit}": ${TEMP_DIR} is the name of a destination folder's temporary folder, not a unit's` : null;
}

/** The Args of raw values keyed by flag name, from either parser. */
export function argsOf(raw: Record<string, unknown>): Args {
  refuseRepeats(raw, ['origin-header']);
  return {
    tasks: String(raw.tasks),
    dest: String(raw.dest),
    unit: raw.unit === undefined ? undefined : unitName(String(raw.unit)),
    runId: raw['run-id'] === undefined ? undefined : String(raw['run-id']),
    progressInterval: progressInterval(raw['progress-interval']),
    adaptive: raw.adaptive !== false,
    flags: parseWorkerFlags(raw),
  };
}

export async function parseArgs(argv: string[]): Promise<Args> {
  const joined = joinDash(argv);
  return argsOf(quickArgs(joined) ?? (await yargsArgs(joined)));
}
