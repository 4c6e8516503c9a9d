// `node guard.mjs CMD ARGS…`: runs CMD and stops it (SIGTERM, then SIGKILL after 5 s) once
// this process's stdin ends — which happens when the bench that started it exits, however
// it exits. So a server started by the bench (nginx with `daemon off`) never outlives it.
import { spawn } from 'node:child_process';
import { setTimeout } from 'node:timers';

const [cmd, ...args] = process.argv.slice(2);
const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
const stop = () => {
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
};
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
