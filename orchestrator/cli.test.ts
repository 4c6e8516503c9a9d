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
    expect(await byYargs(['bogus'])).toMatch(/Unknown argument: bogus/);
    expect(await byYargs(['--force', 'compile', 'm'])).toMatch(/Unknown arguments: force, m/);
    expect(await byYargs(['compile', '--dest', 'd', 'm'])).toMatchObject({ command: 'compile', manifests: 'm', dest: 'd' });
    expect(await byYargs(['compile', '--dest', 'd'])).toMatch(/Not enough non-option arguments/);
    expect(await byYargs(['compile', 'm', 'n'])).toMatch(/Unknown argument: n/);
    expect(await byYargs(['compile', 'm', '--only', 'a', 'b'])).toMatchObject({ only: ['a', 'b'] });
    expect(await byYargs(['compile', 'm', '--dest', 'a', '--dest', 'b'])).toMatchObject({ dest: ['a', 'b'] }); // refused after, by refuseRepeats
    expect(await byYargs(['replay', 'x.ledger.tsv', '--profile', 'any'])).toMatch(/Unknown argument: profile/);
    expect(await byYargs(['compile', 'm', '--no-force'])).toMatchObject({ force: false });
    expect(await byYargs(['compile', 'm', '--force=false'])).toMatchObject({ force: false });
  });
});
