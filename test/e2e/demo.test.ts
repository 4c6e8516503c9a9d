/** `ferry demo --dir`: the demo clears only its own folder, never someone's files. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FERRY, ferry } from '../helpers/run.js';

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-demo-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('ferry demo --dir', () => {
  it('refuses a folder that holds files it did not write, and leaves them alone', async () => {
    const dir = join(base, 'theirs');
    await mkdir(dir);
    await writeFile(join(dir, 'keep.txt'), 'precious');
    const run = await ferry(['demo', '--dir', dir]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`--dir ${dir} is not empty and was not made by ferry demo`);
    expect(await readdir(dir)).toEqual(['keep.txt']);
    expect(await readFile(join(dir, 'keep.txt'), 'utf8')).toBe('precious');
  });

  it('refuses --dir given twice or empty, and writes nothing', async () => {
    const a = join(base, 'first');
    const b = join(base, 'second');
    // yargs joined the two into one folder named "<a>,<b>", and ran there.
    const twice = await ferry(['demo', '--dir', a, '--dir', b]);
    expect(twice.code).toBe(2);
    expect(twice.stderr.trim()).toBe('ferry: --dir: given more than once');
    expect(existsSync(`${a},${b}`) || existsSync(a) || existsSync(b)).toBe(false);
    const cwd = join(base, 'cwd');
    await mkdir(cwd);
    const empty = await ferry(['demo', '--dir='], { cwd });
    expect(empty.code).toBe(2);
    expect(empty.stderr.trim()).toBe('ferry: --dir: must not be empty');
    expect(await readdir(cwd)).toEqual([]);
  });

  it('refuses a file', async () => {
    const file = join(base, 'a-file');
    await writeFile(file, 'x');
    const run = await ferry(['demo', '--dir', file]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('is a file, not a folder');
    // A folder under that file is not itself a file: the message said it was.
    const under = await ferry(['demo', '--dir', join(file, 'sub')]);
    expect(under.code).toBe(2);
    expect(under.stderr.trim()).toBe(`ferry: --dir ${join(file, 'sub')} has a file on its path, not a folder`);
  });

  it('says a folder it cannot write is not writable (exit 1), and does not spin under /proc', async () => {
    // fs.mkdir's recursive mode looped forever on /proc/<missing>/…; other failures were internal errors (70).
    const run = await ferry(['demo', '--dir', '/proc/ferry-nope/demo']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe("ferry: --dir /proc/ferry-nope/demo is not writable: ENOENT: no such file or directory, mkdir '/proc/ferry-nope'");
  });

  it('runs in a new folder, and again in the same one, clearing only what it wrote', async () => {
    const dir = join(base, 'demo');
    const first = await ferry(['demo', '--dir', dir]);
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(join(dir, '.ferry-demo'))).toBe(true);
    await writeFile(join(dir, 'notes.txt'), 'mine');
    await writeFile(join(dir, 'out', 'stale.txt'), 'the demo’s own folder: cleared');
    const second = await ferry(['demo', '--dir', dir]);
    expect(second.code, second.stderr).toBe(0);
    expect(await readFile(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
    expect(existsSync(join(dir, 'out', 'stale.txt'))).toBe(false);
    expect(existsSync(join(dir, 'out', 'products.parquet'))).toBe(true);
  });

  it("prints a 'Run it again' command that runs as pasted, in a folder whose name has a space", async () => {
    const dir = join(base, "my demo's");
    const run = await ferry(['demo', '--dir', dir]);
    expect(run.code, run.stderr).toBe(0);
    const command = /Run it again: npx ferry (compile .*)\n/.exec(run.stderr)?.[1];
    expect(command, run.stderr).toBeDefined();
    const again = spawnSync('sh', ['-c', `"$0" "$1" ${command} --progress none`, process.execPath, FERRY], { encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain('0 unit(s) compiled, 2 already complete, 0 failed');
  });
});
