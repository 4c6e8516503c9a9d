import { describe, expect, it } from 'vitest';
import { FlagError, type WorkerFlags, parseWorkerFlags, workerFlagsToArgv } from '../protocol/index.js';
import { argsOf, joinDash, quickArgs, UsageError, yargsArgs } from './args.js';

const DEFAULTS: WorkerFlags = parseWorkerFlags({});

/** The command line an orchestrator writes for these flags. */
function written(flags: Partial<WorkerFlags>, own: string[] = []): string[] {
  return joinDash(['--tasks', '-', '--dest', 'file:///data/out', '--run-id', 'r-1', ...own, ...workerFlagsToArgv({ ...DEFAULTS, ...flags })]);
}

/** What yargs makes of a command line, or the message it refuses it with. */
async function byYargs(argv: string[]) {
  try {
    return argsOf(await yargsArgs(argv));
  } catch (e) {
    if (e instanceof UsageError || e instanceof FlagError) return e.message;
    throw e;
  }
}

describe('worker command line', () => {
  const lines: [string, string[]][] = [
    ['the defaults', written({})],
    ['every kind of flag', written(
      {
        profile: 'any',
        minBytes: 10,
        maxBytes: 5 * 2 ** 20,
        decode: { mode: 'sample', fraction: 0.25 },
        concurrency: 512,
        allowPrivateNetwork: true,
        overwrite: true,
        originHeader: ['img.example.com=Authorization: Bearer a b', 'cdn.example.com:8443=X-Key: =:'],
        s3Endpoint: 'http://127.0.0.1:9000',
        s3PathStyle: true,
        conditionalWrites: 'off',
        localSourceRoot: '/srv/media',
      },
      ['--unit', 'part-00001', '--progress-interval', '250'],
    )],
    ['--flag=value forms', ['--tasks=tasks.tsv', '--dest=/tmp/x', '--concurrency=8', '--origin-header=h=A: b']],
  ];

  it.each(lines)('reads %s as yargs does, without yargs', async (_, argv) => {
    const quick = quickArgs(argv);
    expect(quick).not.toBeNull();
    expect(argsOf(quick!)).toEqual(await byYargs(argv));
  });

  const odd: [string, string[]][] = [
    ['help', ['--help']],
    ['a flag given twice', ['--tasks', 'a', '--dest', 'b', '--concurrency', '5', '--concurrency', '6']],
    ['an unknown flag', ['--tasks', 'a', '--dest', 'b', '--bogus']],
    ['a camelCase spelling', ['--tasks', 'a', '--dest', 'b', '--allowPrivateNetwork']],
    ['a missing --dest', ['--tasks', 'a']],
    ['a negation', ['--tasks', 'a', '--dest', 'b', '--no-adaptive']],
    ['a boolean with a value', ['--tasks', 'a', '--dest', 'b', '--overwrite=false']],
    ['a number that is not plain digits', ['--tasks', 'a', '--dest', 'b', '--progress-interval', '1e3']],
    ['an array flag with two values', ['--tasks', 'a', '--dest', 'b', '--origin-header', 'h=A: b', 'g=C: d']],
    ['a value that looks like a flag', ['--tasks', 'a', '--dest', '-b']],
    ['a positional', ['--tasks', 'a', '--dest', 'b', 'extra']],
  ];

  it.each(odd)('leaves %s to yargs', (_, argv) => {
    expect(quickArgs(argv)).toBeNull();
  });

  it('still refuses through yargs what it leaves to it', async () => {
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--concurrency', '5', '--concurrency', '6'])).toBe('--concurrency: given more than once');
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--bogus'])).toBe('unknown flag --bogus');
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--concurency', '3'])).toBe('unknown flag --concurency (did you mean --concurrency?)');
    expect(await byYargs(['--tasks', 'a'])).toBe('--dest is required');
    expect(await byYargs([])).toBe('--tasks and --dest are required');
    // A flag without its value was read as '' (--unit: no unit at all) or as its default.
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--unit'])).toBe('--unit: expected a value');
    expect(await byYargs(['--tasks', 'a', '--unit', '--dest', 'b'])).toBe('--unit: expected a value');
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--min-dim'])).toBe('--min-dim: expected a value');
    // '' was no unit at all; '/x' failed every task as UPLOAD_FAILED; 'a//b' wrote as 'a/b'.
    for (const unit of ['', '/x', 'a//b', 'a/']) expect(await byYargs(['--tasks', 'a', '--dest', 'b', `--unit=${unit}`])).toMatch(/^--unit: expected a unit name/);
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--unit', '2024/batch-01'])).toMatchObject({ unit: '2024/batch-01' });
    // Its objects would land among a folder destination's temporary files (skipped by listings, removed by cleanups).
    for (const unit of ['.ferry-tmp', 'x/.ferry-tmp', '.ferry-tmp/y']) expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--unit', unit])).toMatch(/^--unit: unit ".*": \.ferry-tmp is the name of a destination folder's temporary folder/);
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--unit', 'x/.ferry-tmpx'])).toMatchObject({ unit: 'x/.ferry-tmpx' });
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--overwrite=1'])).toBe('--overwrite: takes no value (or =true, =false), got "1"');
    // '' resolved to the current folder.
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--local-source-root='])).toBe('--local-source-root: must not be empty');
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--no-adaptive'])).toMatchObject({ adaptive: false });
    // after `--`, yargs leaves words in `_`, unread: the worker ran without them, exit 0
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--', 'c'])).toBe('unexpected argument "c"');
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--progress-interval', '1e3'])).toMatchObject({ progressInterval: 1000 });
    // NaN or 0 made setInterval fire every millisecond: a PROGRESS line per ms on stderr.
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--progress-interval', 'abc'])).toMatch(/^--progress-interval: expected a whole number/);
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--progress-interval', '0'])).toMatch(/^--progress-interval: expected a whole number/);
    // Past 2^31 - 1 ms, setInterval fires every millisecond too.
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--progress-interval', '2147483648'])).toMatch(/^--progress-interval: expected a whole number/);
    expect(await byYargs(['--tasks', 'a', '--dest', 'b', '--progress-interval', '2147483647'])).toMatchObject({ progressInterval: 2147483647 });
  });
});

describe('--origin-header refused', () => {
  // A header value is often a credential: an error line goes to terminals and CI logs.
  it.each([
    ['no HOST=', 'Authorization: Bearer SECRETTOKEN', /does not start with HOST=/],
    ['no HOST= but a = in the token', 'Authorization: Bearer SECRETTOKEN==', /does not start with HOST=/],
    ['no colon', 'img.example.com=Authorization Bearer SECRETTOKEN', /no ":"/],
    ['a bad name', 'img.example.com=Bad Name: SECRETTOKEN', /not an HTTP header name/],
    ['a control character', 'img.example.com=X-Key: SECRETTOKEN\u0001', /control character/],
    ['a URL for HOST', 'https://img.example.com=Authorization: Bearer SECRETTOKEN', /HOST is not a host name/],
    ['a header for HOST', 'X-Key:SECRETTOKEN=Authorization: x', /HOST is not a host name/],
  ])('with %s, without quoting it', (_, value, why) => {
    for (const parse of [() => parseWorkerFlags({ 'origin-header': ['h=A: b', value] }), () => parseWorkerFlags({}, { FERRY_ORIGIN_HEADERS: value })]) {
      let message = '';
      try {
        parse();
      } catch (e) {
        expect(e).toBeInstanceOf(FlagError);
        message = (e as Error).message;
      }
      expect(message).toMatch(why);
      expect(message).not.toContain('SECRETTOKEN');
    }
  });
});
