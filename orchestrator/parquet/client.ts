// Runs codec calls in worker threads and relays row groups between them and the caller.
//
// Locating the thread's script: the build (tsc, outDir dist, rootDir .) puts
// codec-thread.js beside this module's index.js, so from dist the URL is simply
// './codec-thread.js'. Under vitest this module runs from its .ts source, but vitest does
// not transform what a worker thread loads and Node 20 cannot run TypeScript; so when
// this file is itself a .ts, the thread starts from a tiny data: URL that registers
// ts-thread-hooks.mjs (type stripping with the project's `typescript` devDependency) and
// then imports codec-thread.ts. Tests thus always run the current sources, never a stale
// dist/, and the built CLI never touches TypeScript.
import { Worker } from 'node:worker_threads';
import { ManifestError, oneLine } from './errors.js';
import type { FromThread, ManifestInfo, RenewResult, ThreadRequest, ToThread } from './messages.js';

/** Heap ceiling of a codec thread: past it only the thread dies, as a ManifestError. */
const THREAD_HEAP_MB = 2048;
/** How much of a thread's output is kept to explain a crash. */
const OUTPUT_TAIL = 2000;
/**
 * Starting a thread (loading Arrow and the wasm) costs a few hundred milliseconds, about as
 * much as a small manifest's whole call, and every unit makes two calls. So a thread that
 * ended a call cleanly waits a while for the next one. One that failed in any way is
 * terminated, never reused; so is one whose wasm memory (which never shrinks) grew large.
 */
const MAX_IDLE_THREADS = 2;
const IDLE_MS = 10_000;
const REUSE_MAX_WASM_BYTES = 256 * 1024 * 1024;

type Call = { message: (m: FromThread) => void; crash: (what: string) => void };
type CodecThread = { worker: Worker; output: string; dead: boolean; call?: Call; idleTimer?: NodeJS.Timeout };

const idle: CodecThread[] = [];

function threadUrl(): URL {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new URL('./codec-thread.js', here);
  const hooks = JSON.stringify(new URL('./ts-thread-hooks.mjs', here).href);
  const thread = JSON.stringify(new URL('./codec-thread.ts', here).href);
  const boot = `import { register } from 'node:module'; register(${hooks}); await import(${thread});`;
  return new URL(`data:text/javascript,${encodeURIComponent(boot)}`);
}

function spawn(): CodecThread {
  const worker = new Worker(threadUrl(), { resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB } });
  const t: CodecThread = { worker, output: '', dead: false };
  // These listeners stay for the thread's life: an 'error' without a listener would be
  // thrown in the main thread, which is what this thread exists to prevent.
  worker.on('message', (m: FromThread) => {
    if (m.kind === 'log') t.output = (t.output + m.text).slice(-OUTPUT_TAIL);
    else t.call?.message(m);
  });
  worker.on('error', (e) => died(t, `crashed: ${oneLine(e)}`));
  worker.on('exit', (code) => died(t, `thread stopped with exit code ${code}`));
  return t;
}

function died(t: CodecThread, what: string): void {
  t.dead = true;
  unpark(t);
  t.call?.crash(what);
}

function acquire(): CodecThread {
  for (let t = idle.pop(); t; t = idle.pop()) {
    clearTimeout(t.idleTimer);
    if (t.dead) continue;
    t.worker.ref();
    return t;
  }
  return spawn();
}

function park(t: CodecThread): void {
  if (t.dead || idle.length >= MAX_IDLE_THREADS) {
    void t.worker.terminate();
    return;
  }
  t.worker.unref(); // an idle thread never keeps the process alive
  t.idleTimer = setTimeout(() => {
    unpark(t);
    void t.worker.terminate();
  }, IDLE_MS).unref();
  idle.push(t);
}

function unpark(t: CodecThread): void {
  const i = idle.indexOf(t);
  if (i >= 0) idle.splice(i, 1);
  clearTimeout(t.idleTimer);
}

type RowGroupHandler = (m: Extract<FromThread, { kind: 'rowGroup' }>) => Promise<ToThread>;

export function runCodec(request: ThreadRequest & { op: 'scan' }, onRowGroup: RowGroupHandler): Promise<ManifestInfo>;
export function runCodec(request: ThreadRequest & { op: 'renew' }, onRowGroup: RowGroupHandler): Promise<RenewResult>;
export function runCodec(request: ThreadRequest, onRowGroup: RowGroupHandler): Promise<ManifestInfo | RenewResult> {
  const { file } = request;
  const t = acquire();
  t.output = '';
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: unknown, result?: ManifestInfo | RenewResult, reusable = false): void => {
      if (settled) return;
      settled = true;
      t.call = undefined;
      if (reusable) {
        park(t);
        if (error === undefined) resolve(result!);
        else reject(error);
        return;
      }
      // Settle only once the thread has stopped, so callers may clean up its files.
      void t.worker.terminate().finally(() => (error === undefined ? resolve(result!) : reject(error)));
    };
    t.call = {
      message: (m) => {
        if (settled) return;
        if (m.kind === 'log') return;
        if (m.kind === 'done') finish(undefined, m.result, m.wasmBytes <= REUSE_MAX_WASM_BYTES);
        else if (m.kind === 'fail') {
          finish(m.manifest ? new ManifestError(`${file}: ${m.message}`, file) : internalError(file, m), undefined, m.reusable);
        } else {
          onRowGroup(m).then(
            (answer) => {
              if (!settled) t.worker.postMessage(answer, answer.kind === 'outputs' ? [answer.bad.buffer as ArrayBuffer] : []);
            },
            (e: unknown) => finish(e),
          );
        }
      },
      crash: (what) => {
        const detail = t.output.trim() ? ` (${oneLine(t.output).slice(-300)})` : '';
        finish(new ManifestError(`${file}: cannot read the Parquet file: the codec ${what}${detail}`, file));
      },
    };
    t.worker.postMessage({ kind: 'run', request } satisfies ToThread);
  });
}

function internalError(file: string, m: Extract<FromThread, { kind: 'fail' }>): Error {
  const e = new Error(`Parquet codec bug while reading ${file}: ${m.message}`);
  if (m.stack) e.stack = `${e.message}\n--- in the codec thread ---\n${m.stack}`;
  return e;
}
