/**
 * The chaos run (test/chaos/run.mjs, `npm run chaos`) in small: a compile killed with
 * SIGKILL three times and resumed must end as an uninterrupted one. The script does the
 * comparing; its exit code is the verdict and its output says what differed.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

it('a small compile killed three times ends as an uninterrupted one', async () => {
  const child = spawn(process.execPath, ['test/chaos/run.mjs', '--kills', '3', '--small'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code, output).toBe(0);
  expect(output).toMatch(/chaos: \d+ kills, 0 mismatches/);
}, 90_000);
