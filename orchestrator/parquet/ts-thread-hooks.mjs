// Module hooks for running the codec thread from TypeScript sources, as under vitest,
// which transforms the modules it loads itself but not those of a worker thread.
// Only index.ts's source-mode branch loads this file; the built dist/ never does.
// It strips types with the project's own `typescript` (a devDependency) and maps the
// `.js` suffixes of relative imports back to the `.ts` files beside them. Loading
// `typescript` costs more than the codec call itself, so output is cached on disk by a
// hash of the source: each test starts a thread, and most find every file cached.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CACHE = join(tmpdir(), 'ferry-ts-thread-cache-v1');
const require = createRequire(import.meta.url);
let ts;

export async function resolve(specifier, context, nextResolve) {
  const relative = specifier.startsWith('./') || specifier.startsWith('../');
  if (relative && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    try {
      return await nextResolve(`${specifier.slice(0, -3)}.ts`, context);
    } catch {
      // no .ts twin: resolve the specifier as written
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts')) return nextLoad(url, context);
  const source = await readFile(new URL(url), 'utf8');
  const cached = join(CACHE, `${createHash('sha256').update(url).update('\0').update(source).digest('hex')}.js`);
  const hit = await readFile(cached, 'utf8').catch(() => undefined);
  if (hit !== undefined) return { format: 'module', source: hit, shortCircuit: true };
  const outputText = transpile(source, url);
  await mkdir(CACHE, { recursive: true });
  // Write then rename, so a thread never reads another's half-written entry.
  const tmp = `${cached}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, outputText);
  await rename(tmp, cached);
  return { format: 'module', source: outputText, shortCircuit: true };
}

function transpile(source, url) {
  ts ??= require('typescript');
  return ts.transpileModule(source, {
    fileName: url,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      sourceMap: false,
      inlineSourceMap: true,
    },
  }).outputText;
}
