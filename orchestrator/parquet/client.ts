// Runs codec calls in a worker thread and relays row groups between them and the caller.
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
 * One thread serves every call, in turn, for the life of the process. Starting a thread
 * (Node's bootstrap, Arrow, compiling the wasm) costs ~0.2 s of CPU, several times a
 * 5,000-row unit's scan and renewal together, and a unit's two calls lie minutes apart;
 * a thread per lane, or one per call after an idle timeout, paid it again and again.
 * Calls are short beside a unit's transfers, so lanes seldom wait for one another.
 * A thread that failed in any way is terminated, never reused; so is one whose wasm
 * memory (which never shrinks) grew past what is worth keeping between calls: a few MB
 * serve a 5,000-row unit, and a manifest that needs more is worth a fresh start.
 */
const REUSE_MAX_WASM_BYTES = 64 * 1024 * 1024;

type Call = { message: (m: FromThread) => void; crash: (what: string) => void };
type CodecThread = { worker: Worker; output: string; dead: boolean; call?: Call };

let thread: CodecThread | undefined;
/** Settles when the call before the next one is over: calls queue on it. */
let turn: Promise<void> = Promise.resolve();

function threadUrl(): URL {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new URL('./codec-thread.js', here);
  const hooks = JSON.stringify(new URL('./ts-thread-hooks.mjs', here).href);
  const entry = JSON.stringify(new URL('./codec-thread.ts', here).href);
  const boot = `import { register } from 'node:module'; register(${hooks}); await import(${entry});`;
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
  t.call?.crash(what);
}

/** The thread for the next call: the live one, or a new one. */
function acquire(): CodecThread {
  if (!thread || thread.dead) thread = spawn();
  thread.worker.ref();
  return thread;
}

/** Ends a thread that must not serve again; resolves once it has stopped. */
function retire(t: CodecThread): Promise<number> {
  if (thread === t) thread = undefined;
  return t.worker.terminate();
}

/** Runs `call` once the calls queued before it are over. */
async function inTurn<T>(call: () => Promise<T>): Promise<T> {
  const before = turn;
  let done!: () => void;
  turn = new Promise((resolve) => (done = resolve));
  try {
    await before;
    return await call();
  } finally {
    done();
  }
}

type RowGroupHandler = (m: Extract<FromThread, { kind: 'rowGroup' }>) => Promise<ToThread>;

export function runCodec(request: ThreadRequest & { op: 'scan' }, onRowGroup: RowGroupHandler): Promise<ManifestInfo>;
export function runCodec(request: ThreadRequest & { op: 'renew' }, onRowGroup: RowGroupHandler): Promise<RenewResult>;
export function runCodec(request: ThreadRequest, onRowGroup: RowGroupHandler): Promise<ManifestInfo | RenewResult> {
  return inTurn(() => runOnThread(request, onRowGroup));
}

function runOnThread(request: ThreadRequest, onRowGroup: RowGroupHandler): Promise<ManifestInfo | RenewResult> {
  const { file } = request;
  const t = acquire();
  t.output = '';
  return new Promise((resolve, reject) => {
    let settled = false;
    /** Row groups handed over before a crash: where in the file the decoder stopped. */
    let rowGroups = 0;
    const finish = (error: unknown, result?: ManifestInfo | RenewResult, reusable = false): void => {
      if (settled) return;
      settled = true;
      t.call = undefined;
      if (reusable) {
        t.worker.unref(); // waiting for the next call, it never keeps the process alive
        if (error === undefined) resolve(result!);
        else reject(error);
        return;
      }
      // Settle only once the thread has stopped, so callers may clean up its files.
      void retire(t).finally(() => (error === undefined ? resolve(result!) : reject(error)));
    };
    t.call = {
      message: (m) => {
        if (settled) return;
        if (m.kind === 'log') return;
        if (m.kind === 'done') finish(undefined, m.result, m.wasmBytes <= REUSE_MAX_WASM_BYTES);
        else if (m.kind === 'fail') {
          finish(m.manifest ? new ManifestError(`${file}: ${m.message}`, file) : internalError(file, m), undefined, m.reusable);
        } else {
          rowGroups++;
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
        // parquet-wasm's decoder stops so (a Rust panic, "unreachable", printing nothing) on
        // bytes it cannot decode: say where, and what usually does it.
        const where = rowGroups > 0 ? `, after ${rowGroups} row group(s) were read` : '';
        const cause = /unreachable/.test(what) ? ' (a damaged page or footer, or a text column that is not UTF-8, stops the decoder so)' : '';
        finish(new ManifestError(`${file}: cannot read the Parquet file: the codec ${what}${where}${detail}${cause}`, file));
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
