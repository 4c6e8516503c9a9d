/**
 * Starting a `ferry worker` process, and starting one early. `compile` and `replay` start
 * a worker and the Parquet codec thread before the orchestrator loads its own modules
 * (~0.2 s), so that the three load side by side: the early worker waits for its flags on
 * its first stdin line (PROTOCOL.md, "Flags on stdin"), and the pool adopts it for its
 * first process. Unused (help, a usage error, every unit already complete), the worker
 * sees its stdin end with the orchestrator and exits. This module stays light: it is
 * loaded before the others.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLAGS_FROM_STDIN } from '../protocol/index.js';
import { warmCodec } from './parquet/client.js';

/** bin/ferry.js of this package, found from here both in dist/ and in the sources. */
function ferryBin(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'bin', 'ferry.js'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('internal: bin/ferry.js not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return path.join(dir, 'bin', 'ferry.js');
}

/** A `ferry worker` child: tasks on stdin, events on stdout, logs on stderr, and an IPC channel. */
export function spawnWorker(argv: string[]): ChildProcess {
  return spawn(process.execPath, [ferryBin(), 'worker', ...argv], {
    stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
    // The AWS SDK's Node-version notice is for the operator once (the orchestrator shows it), not once per worker.
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
}

let early: ChildProcess | undefined;

/** For `compile` and `replay` (not their --help): the early worker and the codec thread. */
export function startEarly(argv: readonly string[]): void {
  if (!['compile', 'replay'].includes(argv[0] ?? '') || argv.includes('--help')) return;
  early = spawnWorker([FLAGS_FROM_STDIN]);
  early.stdin!.on('error', () => {}); // gone before it was used: nothing to tell
  warmCodec();
}

/** The early worker, once, if it is still alive; its flags are the caller's to send. */
export function takeEarlyWorker(): ChildProcess | undefined {
  const child = early;
  early = undefined;
  return child && child.exitCode === null && child.signalCode === null ? child : undefined;
}
