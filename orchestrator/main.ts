/**
 * The `ferry` command line: compile, replay and demo (`ferry worker` is dispatched to the
 * data plane by bin/ferry.js). Errors are caught once, here: user errors print one line
 * and exit with their code; anything else is a bug and prints its stack.
 *
 * The demo's modules are loaded only when it runs: it alone needs sharp, Arrow and the
 * wasm Parquet writer in this thread, and loading them cost every compile ~0.25 s of CPU.
 */
import yargs, { type Argv } from 'yargs';
import { FlagError, WORKER_FLAG_SPECS, defaultText, parseWorkerFlags, refuseRepeats, storeOptionsOf } from '../protocol/index.js';
import { LedgerError } from '../ledger/index.js';
import { compileAll } from './compile.js';
import { CompileArgs, compileConfig, parseWith } from './config.js';
import { EXIT, PlaceError, UnitError, UsageError } from './errors.js';
import { Stores } from './io.js';
import { Board, type BoardMode } from './progress.js';
import { replayLedger } from './replay.js';
import { printSummary } from './summary.js';

const CONTENT_FLAGS = new Set(WORKER_FLAG_SPECS.filter((s) => s.content).map((s) => s.flag as string));
const RUNTIME_FOR_REPLAY = new Set(WORKER_FLAG_SPECS.map((s) => s.flag as string).filter((f) => !CONTENT_FLAGS.has(f)));

function workerOptions<T>(y: Argv<T>, only?: Set<string>): Argv<T> {
  let out = y;
  for (const s of WORKER_FLAG_SPECS) if (!only || only.has(s.flag)) out = out.option(s.flag, { type: s.type, describe: s.describe, defaultDescription: defaultText(s), group: s.content ? 'Content (in the unit fingerprint):' : 'Runtime:' });
  return out;
}

function commonOptions<T>(y: Argv<T>) {
  return y
    .option('work-dir', { type: 'string', describe: 'where journals live (resume state)', default: '.ferry' })
    .option('jobs', { type: 'string', describe: 'worker processes: units transferring at once (default: CPU count − 1, at least 1)' })
    .option('progress', { type: 'string', describe: 'auto, tty, plain or none', default: 'auto' });
}

function boardMode(text: string): BoardMode {
  if (text === 'auto') return process.stderr.isTTY ? 'tty' : 'plain';
  if (text === 'tty' || text === 'plain' || text === 'none') return text;
  throw new UsageError(`--progress: expected auto, tty, plain or none, got "${text}"`);
}

/** SIGINT/SIGTERM: stop the workers, flush journals, and say how to resume. */
function interruptible(): { signal: AbortSignal; code: () => number | null } {
  const ctl = new AbortController();
  let code: number | null = null;
  const on = (sig: NodeJS.Signals, exit: number) =>
    process.on(sig, () => {
      if (code !== null) process.exit(exit); // a second signal: leave at once
      code = exit;
      process.stderr.write(`\nferry: ${sig} — stopping workers and flushing journals (again to quit at once)\n`);
      ctl.abort();
    });
  on('SIGINT', EXIT.SIGINT);
  on('SIGTERM', EXIT.SIGTERM);
  return { signal: ctl.signal, code: () => code };
}

async function compileCommand(raw: Record<string, unknown>): Promise<number> {
  refuseRepeats(raw, ['only', 'origin-header']);
  const args = parseWith(CompileArgs, {
    manifests: raw.manifests,
    dest: raw.dest,
    out: raw.out,
    workDir: raw['work-dir'],
    idColumn: raw['id-column'],
    urlColumn: raw['url-column'],
    pathColumn: raw['path-column'],
    badColumn: raw['bad-column'],
    only: raw.only,
    force: raw.force,
    strict: raw.strict,
    jobs: raw.jobs,
    progress: raw.progress,
  });
  const cfg = compileConfig(args, parseWorkerFlags(raw));
  const board = new Board(boardMode(cfg.progress));
  const stop = interruptible();
  const started = Date.now();
  const stores = new Stores(storeOptionsOf(cfg.flags));
  try {
    const summary = await compileAll(cfg, stores, board, stop.signal);
    board.stop();
    const interrupted = stop.code();
    if (interrupted !== null) {
      process.stderr.write(`ferry: interrupted; completed work is kept. Run the same command again to resume.\n`);
      return interrupted;
    }
    return printSummary(summary.reports, (Date.now() - started) / 1000, cfg);
  } finally {
    board.stop();
    await stores.close();
  }
}

async function main(argv: string[]): Promise<number> {
  let code: Promise<number> = Promise.resolve(EXIT.OK);
  const cli = yargs(argv)
    .scriptName('ferry')
    .usage('ferry — migrate huge object collections, compiled unit by unit from Parquet manifests')
    .command(
      'compile <manifests>',
      'compile every *.parquet under <manifests> into objects at --dest and renewed Parquet, ledger and manifest.json at --out',
      (y) =>
        workerOptions(
          commonOptions(y)
            .positional('manifests', { type: 'string', describe: 'manifest folder (prefix)' })
            .option('dest', { type: 'string', describe: 'where objects go: a folder or file:// URI' })
            .option('out', { type: 'string', describe: 'where renewed Parquet, ledgers and manifest.json go' })
            .option('id-column', { type: 'string', default: 'id', describe: 'id column' })
            .option('url-column', { type: 'string', default: 'media_path', describe: 'URL column' })
            .option('path-column', { type: 'string', default: 'updated_media_path', describe: 'name of the added destination-URI column' })
            .option('bad-column', { type: 'string', default: 'bad_image', describe: 'name of the added bad-payload column' })
            .option('only', { type: 'string', array: true, describe: 'compile only this unit (repeatable)' })
            .option('force', { type: 'boolean', default: false, describe: 'recompile units already complete' })
            .option('strict', { type: 'boolean', default: false, describe: 'exit 1 when any ledger row was written' }),
        ),
      (a) => {
        code = compileCommand(a as Record<string, unknown>);
      },
    )
    .command(
      'replay <ledger>',
      're-run the failures of a ledger and merge the results into its unit’s outputs',
      (y) =>
        workerOptions(
          commonOptions(y)
            .positional('ledger', { type: 'string', describe: '<unit>.ledger.tsv under an --out folder' })
            .option('reasons', { type: 'string', default: 'transient', describe: 'transient, all, a class, or codes such as TIMEOUT,HTTP_5XX' }),
          RUNTIME_FOR_REPLAY,
        ),
      (a) => {
        const raw = a as Record<string, unknown>;
        refuseRepeats(raw, ['origin-header']);
        const stop = interruptible();
        code = replayLedger(String(raw.ledger), raw, boardMode(String(raw.progress)), stop.signal).then((c) => stop.code() ?? c);
      },
    )
    .command(
      'demo',
      'run the embedded example: a local origin of generated images compiled to a local folder',
      (y) => y.option('dir', { type: 'string', default: 'ferry-demo', describe: 'folder for the demo’s manifests, objects and outputs' }),
      (a) => {
        code = import('./demo.js').then(({ runDemo }) => runDemo(String((a as Record<string, unknown>).dir)));
      },
    )
    .command('worker', 'the data plane program (see `ferry worker --help`)')
    .demandCommand(1, 'name a command: compile, replay, demo or worker')
    .strict()
    .help()
    .version(false)
    // Wrapping measures every help cell's width, and yargs renders the help after each
    // command's handler has started (~15 ms before any work): only --help is wrapped.
    .wrap(argv.includes('--help') ? Math.min(110, process.stdout.columns || 110) : null)
    .exitProcess(false)
    .fail((msg, err) => {
      throw new UsageError(err?.message ?? msg);
    });
  await cli.parseAsync();
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError || e instanceof FlagError || e instanceof LedgerError) {
      process.stderr.write(`ferry: ${e.message}\n`);
      process.exit(e instanceof LedgerError ? EXIT.FAILED : EXIT.USAGE);
    }
    if (e instanceof PlaceError) {
      process.stderr.write(`ferry: ${e.message}\n`);
      process.exit(EXIT.FAILED);
    }
    if (e instanceof UnitError) {
      process.stderr.write(`ferry: ${e.unit}: ${e.message}\n`);
      process.exit(EXIT.FAILED);
    }
    process.stderr.write(`ferry: internal error (a bug, please report it):\n${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(EXIT.INTERNAL);
  },
);
