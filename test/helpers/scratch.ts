/** A test file's temporary folder and test origin, for the e2e files that need both and nothing else. */
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type Origin, startOrigin } from './run.js';

/**
 * Made before the file's tests (a folder named `prefix…` under the system's temporary one,
 * and an origin of test/servers), closed and removed after them. Read `dir` and `origin`
 * inside tests and hooks: they are set once the file's first hook has run.
 */
export function scratchAndOrigin(prefix: string): { readonly dir: string; readonly origin: Origin } {
  const made = {} as { dir: string; origin: Origin };
  beforeAll(async () => {
    made.dir = await fs.mkdtemp(path.join(tmpdir(), prefix));
    made.origin = await startOrigin();
  });
  afterAll(async () => {
    await made.origin?.close();
    if (made.dir) await fs.rm(made.dir, { recursive: true, force: true });
  });
  return made;
}
