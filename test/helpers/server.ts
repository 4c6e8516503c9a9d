/**
 * Test servers run as real processes: each prints `PORT <n>` once it listens on
 * 127.0.0.1 and exits when its stdin ends (so a dying test runner never leaves one).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

export type ServerProcess = { port: number; child: ChildProcessWithoutNullStreams; stop(): Promise<void> };

/** Starts `script` with node and resolves once it prints its port. */
export function startServer(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      process.stderr.write(d); // a server's complaints belong in the test output
    });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^PORT (\d+)$/m.exec(out);
      if (m) resolve({ port: Number(m[1]), child, stop: () => stopServer(child) });
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before listening: ${err.trim()}`)));
  });
}

/** Closing its stdin is enough; SIGTERM if it lingers. */
export async function stopServer(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGTERM'), 2_000);
  await exited;
  clearTimeout(timer);
}
