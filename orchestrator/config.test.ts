import { describe, expect, it } from 'vitest';
import { CompileArgs, LOOP_BOUND_IN_FLIGHT, defaultJobs, parseWith } from './config.js';

describe('default --jobs', () => {
  it.each([
    // cores, --concurrency, jobs
    [1, 64, 1],
    [1, 4096, 1], // never more workers than cores
    [2, 64, 1], // one core left to the control plane
    [2, 256, 1],
    [2, LOOP_BOUND_IN_FLIGHT - 1, 1],
    [2, LOOP_BOUND_IN_FLIGHT, 2], // one event loop is the limit: the spare core runs a worker too
    [2, 1024, 2],
    [8, 64, 7],
    [8, 7 * LOOP_BOUND_IN_FLIGHT - 1, 7],
    [8, 7 * LOOP_BOUND_IN_FLIGHT, 8],
    [8, 100_000, 8],
  ])('%i cores, --concurrency %i: %i', (cores, concurrency, jobs) => {
    expect(defaultJobs(cores, concurrency)).toBe(jobs);
  });
});

describe('compile arguments', () => {
  it('refuses an empty --work-dir naming the flag (it said only "Too small: expected string to have >=1 characters")', () => {
    expect(() => parseWith(CompileArgs, { manifests: 'm', dest: 'd', out: 'o', workDir: '' })).toThrow(/^--work-dir: must not be empty$/);
  });
});

describe('a bad value is named with its flag', () => {
  const base = { manifests: 'm', dest: 'd', out: 'o' };
  it.each([
    [{ jobs: '1.5' }, '--jobs: expected a whole number from 1, got "1.5"'],
    [{ jobs: '0' }, '--jobs: expected a whole number from 1, got "0"'],
    [{ jobs: '' }, '--jobs: expected a whole number from 1, got ""'],
    [{ jobs: '99999999999999999999' }, '--jobs: expected a whole number from 1, got "99999999999999999999"'],
    [{ progress: 'fancy' }, '--progress: expected auto, tty, plain or none, got "fancy"'],
  ])('%j', (args, message) => {
    expect(() => parseWith(CompileArgs, { ...base, ...args })).toThrow(message);
  });
});

describe('a place given as blanks', () => {
  // Taken as a folder named ' ' in the current folder (replay already refused such a --work-dir).
  it.each([
    [{ manifests: ' ' }, 'the manifest prefix must not be empty'],
    [{ dest: ' ' }, '--dest: must not be empty'],
    [{ out: '\t' }, '--out: must not be empty'],
    [{ workDir: '  ' }, '--work-dir: must not be empty'],
  ])('%j', (args, message) => {
    expect(() => parseWith(CompileArgs, { manifests: 'm', dest: 'd', out: 'o', ...args })).toThrow(message);
  });
});
