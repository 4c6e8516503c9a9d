/**
 * The compile and replay configuration: one zod schema with defaults, whose errors name
 * the flag. The worker's flags (gates and runtime) come from protocol's shared table.
 */
import { hash } from 'node:crypto';
import { z } from 'zod';
import { FlagError, type WorkerFlags, contentFlags, wholeNumber } from '../protocol/index.js';
import { localSourceRootProblem } from '../storage/local-source.js';
import { type Place, parsePlace, placeContains, describePlace } from '../storage/index.js';
import { UsageError } from './errors.js';
import os from 'node:os';

const columnName = (flag: string) => z.string({ error: `--${flag}: expected a column name` }).min(1, `--${flag}: must not be empty`);

/** A protocol flag parser as a zod transform: its FlagError becomes the issue's message. */
function flagValue<T>(flag: string, parse: (raw: unknown, flag: string) => T) {
  return (raw: unknown, ctx: z.RefinementCtx): T => {
    try {
      return parse(raw, flag);
    } catch (e) {
      if (!(e instanceof FlagError)) throw e;
      ctx.addIssue({ code: 'custom', message: e.message });
      return z.NEVER;
    }
  };
}

/** Blanks name no place a user meant: as a path they are a folder named ' ' in the current folder. */
const notBlank = (s: string) => s.trim() !== '';

export const CompileArgs = z.object({
  manifests: z.string().refine(notBlank, 'the manifest prefix must not be empty'),
  dest: z.string({ error: '--dest is required' }).refine(notBlank, '--dest: must not be empty'),
  out: z.string({ error: '--out is required' }).refine(notBlank, '--out: must not be empty'),
  workDir: z.string().refine(notBlank, '--work-dir: must not be empty').default('.ferry'),
  idColumn: columnName('id-column').default('id'),
  urlColumn: columnName('url-column').default('media_path'),
  pathColumn: columnName('path-column').default('updated_media_path'),
  badColumn: columnName('bad-column').default('bad_image'),
  only: z.array(z.string()).default([]),
  force: z.boolean().default(false),
  strict: z.boolean().default(false),
  // Read as the worker's whole-number flags are (decimal digits: not 0x2 or 1e1), saying the value.
  jobs: z.unknown().transform(flagValue('jobs', wholeNumber(1))).optional(), // defaultJobs, once --concurrency is known
  progress: z.enum(['auto', 'tty', 'plain', 'none'], { error: (iss) => `--progress: expected auto, tty, plain or none, got "${String(iss.input)}"` }).default('auto'),
});
export type CompileArgs = z.infer<typeof CompileArgs>;

export type CompileConfig = Omit<CompileArgs, 'manifests' | 'dest' | 'out' | 'jobs'> & {
  jobs: number;
  prefix: Place;
  dest: Place;
  out: Place;
  destUri: string;
  flags: WorkerFlags;
};

/** Parses with the schema; the first problem becomes a UsageError naming its flag. */
export function parseWith<T extends z.ZodType>(schema: T, raw: unknown): z.infer<T> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new UsageError(issue?.message ?? 'invalid arguments');
}

function place(uri: string, flag: string): Place {
  try {
    return parsePlace(uri);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

export function compileConfig(args: CompileArgs, flags: WorkerFlags): CompileConfig {
  const prefix = place(args.manifests, 'manifest prefix');
  const dest = place(args.dest, '--dest');
  const out = place(args.out, '--out');
  if (placeContains(prefix, out)) throw new UsageError(`--out ${describePlace(out)} lies inside the manifest prefix ${describePlace(prefix)}: choose another place`);
  const names = [args.idColumn, args.urlColumn, args.pathColumn, args.badColumn];
  if (new Set(names).size !== names.length) throw new UsageError('--id-column, --url-column, --path-column and --bad-column must all differ');
  // DuckDB and Spark resolve column names regardless of case: two outputs so named are one to them.
  if (args.pathColumn.toLowerCase() === args.badColumn.toLowerCase()) throw new UsageError('--path-column and --bad-column must differ in more than case (DuckDB and Spark ignore case in column names)');
  const { manifests: _m, dest: _d, out: _o, ...rest } = args;
  const jobs = args.jobs ?? defaultJobs(os.availableParallelism(), flags.concurrency);
  return { ...rest, jobs, prefix, dest, out, destUri: describePlace(dest), flags };
}

/** A --local-source-root that is no folder is a usage error before any row is judged (the worker checks its own). */
export async function checkLocalSourceRoot(flags: Pick<WorkerFlags, 'localSourceRoot'>): Promise<void> {
  const problem = flags.localSourceRoot === null ? null : await localSourceRootProblem(flags.localSourceRoot);
  if (problem) throw new FlagError('local-source-root', problem);
}

/** Requests in flight past which one worker's event loop, not the cores, is the limit. */
export const LOOP_BOUND_IN_FLIGHT = 512;

/**
 * Worker processes when --jobs is not given. One core is left to the orchestrator, its
 * Parquet thread and the kernel's network work: on 2 cores, at 64 requests in flight, one
 * worker at the whole --concurrency used 0.78× the CPU of two at half of it, and was as
 * fast. But one worker stops gaining past ~512 in flight (a 50 ms origin: 512 and 1024
 * alike), while the spare core idles: from there the spare core runs a worker too (two
 * workers at 1024: wall 0.91×, CPU 1.14×; at 512: 0.95×, 1.10×; at 256: 1.05×, 1.28×).
 */
export function defaultJobs(cores: number, concurrency: number): number {
  const jobs = Math.max(1, cores - 1);
  return jobs < cores && concurrency / jobs >= LOOP_BOUND_IN_FLIGHT ? jobs + 1 : jobs;
}

/** The content options: what changes the outputs, recorded in manifest.json and fingerprinted. */
export function contentOptions(c: Pick<CompileConfig, 'destUri' | 'flags' | 'idColumn' | 'urlColumn' | 'pathColumn' | 'badColumn'>) {
  return {
    dest: c.destUri,
    layout: 'unit/shard/key-id.ext',
    ...contentFlags(c.flags),
    idColumn: c.idColumn,
    urlColumn: c.urlColumn,
    pathColumn: c.pathColumn,
    badColumn: c.badColumn,
  };
}

export function fingerprint(value: unknown): string {
  return hash('sha256', JSON.stringify(value), 'hex').slice(0, 32);
}
