/**
 * The `ferry` command line: compile, replay and demo (`ferry worker` is dispatched to the
 * data plane by bin/ferry.js). Errors are caught once, here: user errors print one line
 * and exit with their code; anything else is a bug and prints its stack.
 *
 * The demo's modules are loaded only when it runs: it alone needs sharp, Arrow and the
 * wasm Parquet writer in this thread, and loading them cost every compile ~0.25 s of CPU.
 */
import { FlagError, parseWorkerFlags, refuseRepeats, storeOptionsOf } from '../protocol/index.js';
import { LedgerError } from '../ledger/index.js';
import { readCommandLine } from './cli.js';
import { compileAll } from './compile.js';
import { CompileArgs, checkLocalSourceRoot, compileConfig, parseWith } from './config.js';
import { EXIT, PlaceError, UnitError, UsageError } from './errors.js';
import { Stores } from './io.js';
import { Board, type BoardMode } from './progress.js';
import { replayLedger } from './replay.js';
import { endpointEnvProblem } from '../storage/endpoint-env.js';
import { proxyEnvProblem } from '../storage/proxy-env.js';
import { printSummary } from './summary.js';
import { interruptible } from './interrupt.js';
import { printable } from './printable.js';

function boardMode(text: string): BoardMode {
  if (text === 'auto') return process.stderr.isTTY ? 'tty' : 'plain';
  if (text === 'tty' || text === 'plain' || text === 'none') return text;
  throw new UsageError(`--progress: expected auto, tty, plain or none, got "${text}"`);
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
  await checkLocalSourceRoot(cfg.flags);
  const board = new Board(boardMode(cfg.progress));
  const stop = interruptible(process, (line) => board.notice(line));
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
    return printSummary(summary.reports, (Date.now() - started) / 1000, { ...cfg, blankLine: board.mode !== 'none' });
  } finally {
    board.stop();
    await stores.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const line = await readCommandLine(argv);
  // Workers inherit the environment: a proxy setting they cannot use is the command's error.
  const proxy = proxyEnvProblem();
  if (proxy && line.command !== 'help') throw new UsageError(proxy);
  // The demo opens no store: only compile and replay read the endpoint variables.
  const endpoints = line.command === 'compile' || line.command === 'replay' ? endpointEnvProblem({ s3: line.raw['s3-endpoint'] !== undefined, gcs: line.raw['gcs-endpoint'] !== undefined }) : null;
  if (endpoints) throw new UsageError(endpoints);
  switch (line.command) {
    case 'help':
      return EXIT.OK;
    case 'compile':
      return compileCommand(line.raw);
    case 'replay': {
      const raw = line.raw;
      refuseRepeats(raw, ['origin-header']);
      const board = new Board(boardMode(String(raw.progress)));
      const stop = interruptible(process, (line) => board.notice(line));
      const code = await replayLedger(String(raw.ledger), raw, board, stop.signal);
      return stop.code() ?? code;
    }
    case 'demo': {
      refuseRepeats(line.raw, []);
      const { runDemo } = await import('./demo.js');
      return runDemo(String(line.raw.dir));
    }
  }
}

// Our stdout and stderr carry help, progress and messages only: a reader that went away
// (`| head`, a log shipper that died) must neither stop a migration half-way nor turn its
// exit code into an uncaught EPIPE's 1.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
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
      process.stderr.write(`ferry: ${printable(e.unit)}: ${printable(e.message)}\n`);
      process.exit(EXIT.FAILED);
    }
    process.stderr.write(`ferry: internal error (a bug, please report it):\n${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(EXIT.INTERNAL);
  },
);
