// Preloaded into worker processes by a test (NODE_OPTIONS=--import …): a connection to
// port FERRY_TEST_CRASH_PORT kills the process with SIGKILL, as a payload that crashes a
// worker (a decoder's segfault, an out-of-memory kill) would; or sends it the signal
// FERRY_TEST_CRASH_SIGNAL names (SIGSTOP: a worker that hangs). The crash is real; only its
// trigger is chosen by the test.
import net from 'node:net';

const port = Number(process.env.FERRY_TEST_CRASH_PORT);
const signal = process.env.FERRY_TEST_CRASH_SIGNAL || 'SIGKILL';
const connect = net.connect;
net.connect = function (...args) {
  const o = args[0];
  if (port > 0 && o && typeof o === 'object' && Number(o.port) === port) process.kill(process.pid, signal);
  return connect.apply(this, args);
};
