/**
 * The `ferry` command line, read: which command, and its values keyed by flag name.
 *
 * One table of options per command serves two readers. A plain line (the command first,
 * then its positional, then flags) is read by protocol/argv.ts without yargs; help and
 * everything else go to yargs, which loads only then and reads or explains them. Loading
 * and building yargs for every run cost ~60 ms of the orchestrator's start, before any
 * work (a 200-object compile without it: wall 0.84×, CPU 0.88×).
 */
import type { Argv, Options } from 'yargs';
import { type QuickOption, WORKER_FLAG_SPECS, booleanValueProblem, quickArgv, usageMessage, valueRequired, workerFlagHelp, workerFlagQuickOptions } from '../protocol/index.js';
import { UsageError } from './errors.js';

/** An option as both readers take it. */
type CliOption = Options & QuickOption;

export type Command = 'compile' | 'replay' | 'demo';
export type CommandLine = { command: Command; raw: Record<string, unknown> } | { command: 'help' };

const CONTENT_FLAGS = new Set(WORKER_FLAG_SPECS.filter((s) => s.content).map((s) => s.flag as string));
/** Replay reuses the unit's content flags: only runtime flags are its own. */
const RUNTIME_FOR_REPLAY: ReadonlySet<string> = new Set(WORKER_FLAG_SPECS.map((s) => s.flag as string).filter((f) => !CONTENT_FLAGS.has(f)));

const COMMON = {
  'work-dir': { type: 'string', describe: 'where journals live (resume state)', default: '.ferry' },
  progress: { type: 'string', describe: 'auto, tty, plain or none', default: 'auto' },
} as const satisfies Record<string, CliOption>;

const COMPILE = {
  ...COMMON,
  // Replay runs one unit: it has no --jobs.
  jobs: { type: 'string', describe: 'worker processes: units transferring at once (default: CPU count − 1, at least 1; one more, up to the CPU count, at 512 or more requests in flight per worker)' },
  dest: { type: 'string', describe: 'where objects go: a folder, file:// URI, s3://bucket/prefix or gs://bucket/prefix (required)' },
  out: { type: 'string', describe: 'where renewed Parquet, ledgers and manifest.json go, in the same forms, not inside <manifests> (required)' },
  'id-column': { type: 'string', default: 'id', describe: 'id column' },
  'url-column': { type: 'string', default: 'media_path', describe: 'URL column' },
  'path-column': { type: 'string', default: 'updated_media_path', describe: 'name of the added destination-URI column' },
  'bad-column': { type: 'string', default: 'bad_image', describe: 'name of the added bad-payload column' },
  only: { type: 'string', array: true, describe: 'compile only this unit (repeatable)' },
  force: { type: 'boolean', default: false, describe: 'recompile units already complete' },
  strict: { type: 'boolean', default: false, describe: "exit 1 when any selected unit's ledger has rows (units already complete included)" },
} as const satisfies Record<string, CliOption>;

const REPLAY = {
  ...COMMON,
  reasons: { type: 'string', default: 'transient', describe: 'transient, all, a class, or codes such as TIMEOUT,HTTP_5XX' },
} as const satisfies Record<string, CliOption>;

const DEMO = {
  dir: { type: 'string', default: 'ferry-demo', describe: 'folder for the demo’s manifests, objects and outputs' },
} as const satisfies Record<string, CliOption>;

type Spec = {
  positional?: { name: string; describe: string };
  options: Record<string, CliOption>;
  /** The worker's flags it takes: all, those in the set, or none. */
  flags?: ReadonlySet<string> | 'all';
};
const SPECS: Record<Command, Spec> = {
  compile: { positional: { name: 'manifests', describe: 'manifest folder (prefix)' }, options: COMPILE, flags: 'all' },
  replay: { positional: { name: 'ledger', describe: '<unit>.ledger.tsv under an --out folder' }, options: REPLAY, flags: RUNTIME_FOR_REPLAY },
  demo: { options: DEMO },
};

/** Every flag a command takes, its own and the worker's, as quickArgv reads them. */
function optionsOf(spec: Spec): Record<string, QuickOption> {
  const flags = spec.flags === undefined ? {} : workerFlagQuickOptions(spec.flags === 'all' ? undefined : spec.flags);
  return { ...spec.options, ...flags };
}

function isCommand(word: string | undefined): word is Command {
  return word === 'compile' || word === 'replay' || word === 'demo';
}

/** A plain line read without yargs, or null. */
export function quickCommandLine(argv: readonly string[]): CommandLine | null {
  const [command, ...rest] = argv;
  if (!isCommand(command)) return null;
  const spec = SPECS[command];
  const raw = quickArgv(rest, optionsOf(spec), spec.positional ? [spec.positional.name] : []);
  return raw ? { command, raw } : null;
}

/** Every other line: yargs reads it, prints help, or refuses it (UsageError). */
export async function yargsCommandLine(argv: readonly string[]): Promise<CommandLine> {
  const { default: yargs } = await import('yargs');
  const build = (command: Command) => (y: Argv) => {
    const spec = SPECS[command];
    let out = y;
    if (spec.positional) out = out.positional(spec.positional.name, { type: 'string', describe: spec.positional.describe });
    out = out.options(Object.fromEntries(Object.entries(spec.options).map(([flag, o]) => [flag, { ...o, ...valueRequired(o.array ? 'array' : o.type) }])));
    return spec.flags ? out.options(workerFlagHelp(spec.flags === 'all' ? undefined : spec.flags, true)) : out;
  };
  const command = isCommand(argv[0]) ? argv[0] : null;
  if (command) {
    const booleans = Object.entries(optionsOf(SPECS[command])).filter(([, o]) => o.type === 'boolean');
    const problem = booleanValueProblem(argv, booleans.map(([flag]) => flag));
    if (problem) throw new UsageError(problem);
  }
  const refusal = (msg: string): string => {
    const spec = command && SPECS[command];
    if (spec?.positional && msg.startsWith('Not enough non-option arguments')) {
      // `ferry compile --dest d --out o -- m`: the word is there, but after `--`, which ends the reading.
      const after = argv.indexOf('--') >= 0 ? argv.slice(argv.indexOf('--') + 1) : [];
      const note = after.length > 0 ? `; words after -- are not read (${after.map((w) => `"${w}"`).join(' ')}): give it before --` : '';
      return `${command}: missing <${spec.positional.name}>, the ${spec.positional.describe}${note}`;
    }
    if (!spec && argv[0] !== undefined) {
      if (argv[0].startsWith('-')) return `name a command first: ferry compile|replay|demo|worker [flags] (got ${argv[0]})`;
      const near = msg.startsWith('Did you mean ') ? `: ${msg.charAt(0).toLowerCase()}${msg.slice(1)}` : ': name compile, replay, demo or worker';
      return `unknown command "${argv[0]}"${near}`;
    }
    const said = usageMessage(msg, argv, spec ? [...Object.keys(optionsOf(spec)), 'help'] : ['help']);
    const content = command === 'replay' ? [...CONTENT_FLAGS].find((f) => argv.some((a) => a === `--${f}` || a.startsWith(`--${f}=`))) : undefined;
    return content ? `${said} (--${content} is a content flag: replay reuses the unit's own, from its manifest.json)` : said;
  };
  const cli = yargs([...argv])
    .scriptName('ferry')
    .usage('ferry — migrate huge object collections, compiled unit by unit from Parquet manifests')
    .command(
      'compile <manifests>',
      'compile every *.parquet under <manifests> into objects at --dest and renewed Parquet, ledger and manifest.json at --out',
      build('compile'),
    )
    .command('replay <ledger>', 're-run the failures of a ledger and merge the results into its unit’s outputs', build('replay'))
    .command('demo', 'run the embedded example: a local origin of generated images compiled to a local folder', build('demo'))
    .command('worker', 'the data plane program (see `ferry worker --help`)')
    .demandCommand(1, 'name a command: compile, replay, demo or worker')
    .recommendCommands()
    .strict()
    .help()
    .version(false)
    // Wrapping measures every help cell's width: only --help is wrapped.
    .wrap(argv.includes('--help') ? Math.min(110, process.stdout.columns || 110) : null)
    .exitProcess(false)
    .fail((msg, err) => {
      throw new UsageError(refusal(err?.message ?? msg));
    });
  const raw = (await cli.parseAsync()) as Record<string, unknown> & { _: unknown[] };
  const read = raw._[0];
  if (raw.help || !isCommand(String(read))) return { command: 'help' };
  // Words after `--` are left in `_`, unread, even under strict(): refused as the others are.
  const extra = raw._.slice(1);
  if (extra.length > 0) throw new UsageError(extra.map((w) => `unexpected argument "${String(w)}"`).join('; '));
  return { command: read as Command, raw };
}

export async function readCommandLine(argv: readonly string[]): Promise<CommandLine> {
  return quickCommandLine(argv) ?? yargsCommandLine(argv);
}
