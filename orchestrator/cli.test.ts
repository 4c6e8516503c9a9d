import { describe, expect, it } from 'vitest';
import { quickCommandLine, yargsCommandLine, type CommandLine } from './cli.js';
import { UsageError } from './errors.js';

/** The values a command reads: flag names and positionals, without yargs' `_`, `$0` and camelCase copies. */
function values(line: CommandLine): Record<string, unknown> {
  if (line.command === 'help') return { help: true };
  const out: Record<string, unknown> = { command: line.command };
  for (const [k, v] of Object.entries(line.raw)) if (/^[a-z][a-z0-9-]*$/.test(k) && v !== undefined) out[k] = v;
  return out;
}

async function byYargs(argv: string[]): Promise<Record<string, unknown> | string> {
  try {
    return values(await yargsCommandLine(argv));
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
}

describe('ferry command line', () => {
  const plain: [string, string[]][] = [
    ['a compile with its defaults', ['compile', 'manifests/', '--dest', '/data/out', '--out', '/data/renewed']],
    ['a compile with every kind of option', [
      'compile', 's3://bucket/manifests/', '--dest', 's3://bucket/objects', '--out=/data/renewed', '--work-dir', '/var/ferry',
      '--jobs', '3', '--progress', 'none', '--id-column', 'key', '--url-column', 'src', '--path-column', 'dst', '--bad-column', 'bad',
      '--only', 'part-1', '--only', 'part 2', '--force', '--strict',
      '--profile', 'any', '--max-bytes', '5MiB', '--decode', 'sample:0.25', '--concurrency', '512', '--allow-private-network',
      '--origin-header', 'img.example.com=Authorization: Bearer a b', '--origin-header=cdn.example.com:8443=X-Key: =:',
      '--s3-endpoint', 'http://127.0.0.1:9000', '--s3-path-style', '--conditional-writes', 'off',
    ]],
    ['a value with spaces, quotes and an equals sign', ['compile', 'm', '--dest', 'a b "c"=d']],
    ['an empty value', ['compile', 'm', '--dest=', '--out', '']],
    ['a replay', ['replay', '/data/renewed/part-1.ledger.tsv', '--reasons', 'TIMEOUT,HTTP_5XX', '--concurrency', '64', '--progress', 'plain']],
    ['a replay with its defaults', ['replay', 'x.ledger.tsv']],
    ['the demo', ['demo', '--dir', '/tmp/demo']],
    ['the demo with its defaults', ['demo']],
  ];

  it.each(plain)('reads %s as yargs does, without yargs', async (_, argv) => {
    const quick = quickCommandLine(argv);
    expect(quick).not.toBeNull();
    expect(values(quick!)).toEqual(await byYargs(argv));
  });

  const odd: [string, string[]][] = [
    ['no command', []],
    ['an unknown command', ['bogus']],
    ['the worker', ['worker', '--tasks', '-']],
    ['help', ['compile', '--help']],
    ['a flag before the command', ['--force', 'compile', 'm']],
    ['a flag before the positional', ['compile', '--dest', 'd', 'm']],
    ['a missing positional', ['compile', '--dest', 'd']],
    ['a second positional', ['compile', 'm', 'n']],
    ['an array flag with two values', ['compile', 'm', '--only', 'a', 'b']],
    ['a flag given twice', ['compile', 'm', '--dest', 'a', '--dest', 'b']],
    ['an unknown flag', ['compile', 'm', '--bogus']],
    ['a content flag given to replay', ['replay', 'x.ledger.tsv', '--profile', 'any']],
    ['a camelCase spelling', ['compile', 'm', '--workDir', 'w']],
    ['a negation', ['compile', 'm', '--no-force']],
    ['a boolean with a value', ['compile', 'm', '--force=false']],
    ['a value that looks like a flag', ['compile', 'm', '--dest', '-d']],
    ['a flag without its value', ['compile', 'm', '--dest']],
    ['the end of flags', ['compile', '--', 'm']],
  ];

  it.each(odd)('leaves %s to yargs', (_, argv) => {
    expect(quickCommandLine(argv)).toBeNull();
  });

  it('still reads or refuses through yargs what it leaves to it', async () => {
    expect(await byYargs([])).toBe('name a command: compile, replay, demo or worker');
    expect(await byYargs(['bogus'])).toBe('unknown command "bogus": name compile, replay, demo or worker');
    expect(await byYargs(['--force', 'compile', 'm'])).toBe('name a command first: ferry compile|replay|demo|worker [flags] (got --force)');
    expect(await byYargs(['compile', '--dest', 'd', 'm'])).toMatchObject({ command: 'compile', manifests: 'm', dest: 'd' });
    expect(await byYargs(['compile', '--dest', 'd'])).toBe('compile: missing <manifests>, the manifest folder (prefix)');
    expect(await byYargs(['compile', '--dest', 'd', '--out', 'o', '--', 'm'])).toBe(
      'compile: missing <manifests>, the manifest folder (prefix); words after -- are not read ("m"): give it before --',
    );
    expect(await byYargs(['compile', 'm', 'n'])).toBe('unexpected argument "n"');
    // after `--`, yargs leaves words in `_`, unread: `compile m -- n` compiled m alone, exit 0
    expect(await byYargs(['compile', 'm', '--', 'n'])).toBe('unexpected argument "n"');
    expect(await byYargs(['replay', 'x.ledger.tsv', '--', 'y', 'z'])).toBe('unexpected argument "y"; unexpected argument "z"');
    expect(await byYargs(['demo', '--', 'x'])).toBe('unexpected argument "x"');
    expect(await byYargs(['compile', 'm', '--'])).toMatchObject({ command: 'compile', manifests: 'm' });
    expect(await byYargs(['compile', 'm', '--only', 'a', 'b'])).toMatchObject({ only: ['a', 'b'] });
    expect(await byYargs(['compile', 'm', '--dest', 'a', '--dest', 'b'])).toMatchObject({ dest: ['a', 'b'] }); // refused after, by refuseRepeats
    expect(await byYargs(['replay', 'x.ledger.tsv', '--profile', 'any'])).toBe(
      "unknown flag --profile (--profile is a content flag: replay reuses the unit's own, from its manifest.json)",
    );
    expect(await byYargs(['compile', 'm', '--no-force'])).toMatchObject({ force: false });
    expect(await byYargs(['compile', 'm', '--force=false'])).toMatchObject({ force: false });
  });

  // yargs reads a flag without its value as the flag's default (or ''), as if it had not
  // been typed: `--only` alone compiled every unit, `--progress` alone ran with auto.
  it.each([
    ['--progress', ['compile', 'm', '--dest', 'd', '--out', 'o', '--progress']],
    ['--only', ['compile', 'm', '--dest', 'd', '--out', 'o', '--only', '--force']],
    ['--id-column', ['compile', 'm', '--dest', 'd', '--out', 'o', '--id-column']],
    ['--work-dir', ['compile', 'm', '--work-dir', '--dest', 'd', '--out', 'o']],
    ['--concurrency', ['compile', 'm', '--dest', 'd', '--out', 'o', '--concurrency']],
    ['--reasons', ['replay', 'x.ledger.tsv', '--reasons']],
    ['--dir', ['demo', '--dir']],
  ])('refuses %s without its value, naming it', async (flag, argv) => {
    expect(quickCommandLine(argv)).toBeNull();
    expect(await byYargs(argv)).toBe(`${flag}: expected a value`);
  });

  it('names a misspelt flag or command once, with the nearest one', async () => {
    expect(await byYargs(['compile', 'm', '--concurency', '4'])).toBe('unknown flag --concurency (did you mean --concurrency?)');
    expect(await byYargs(['compile', 'm', '--min-dimm', '4'])).toBe('unknown flag --min-dimm (did you mean --min-dim?)');
    expect(await byYargs(['demo', '--dri', 'x'])).toBe('unknown flag --dri (did you mean --dir?)');
    expect(await byYargs(['compile', 'm', '--frobnicate'])).toBe('unknown flag --frobnicate');
    expect(await byYargs(['compil', 'm'])).toBe('unknown command "compil": did you mean compile?');
  });

  // yargs reads any value but 'true' as false: --strict=1 passed the gate it was meant to close.
  it.each([
    ['--strict=1', 'strict', '1'],
    ['--force=yes', 'force', 'yes'],
    ['--allow-private-network=no', 'allow-private-network', 'no'],
  ])('refuses %s', async (given, flag, value) => {
    expect(await byYargs(['compile', 'm', '--dest', 'd', '--out', 'o', given])).toBe(`--${flag}: takes no value (or =true, =false), got "${value}"`);
  });

  it('still takes a negative number as a value, for its own check to refuse', async () => {
    expect(await byYargs(['compile', 'm', '--concurrency', '-5'])).toMatchObject({ concurrency: '-5' });
  });
});
