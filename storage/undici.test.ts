import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as Undici from 'undici';
import { describe, expect, it } from 'vitest';
import { Agent, EnvHttpProxyAgent, Pool, buildConnector } from './undici.js';

const require = createRequire(import.meta.url);

describe('undici, its dispatchers alone', () => {
  it('gives the same classes as undici itself, with the request API', () => {
    const full = require('undici') as typeof Undici;
    expect(Agent).toBe(full.Agent);
    expect(EnvHttpProxyAgent).toBe(full.EnvHttpProxyAgent);
    expect(Pool).toBe(full.Pool);
    expect(buildConnector).toBe(full.buildConnector);
    for (const method of ['request', 'stream', 'pipeline', 'connect', 'upgrade'] as const) {
      expect(typeof Pool.prototype[method]).toBe('function');
      expect(Pool.prototype[method]).toBe(full.Pool.prototype[method]);
    }
  });

  it('loads neither undici\'s index nor Node\'s own copy of undici', () => {
    // A fresh process, on the build (as bin/ferry.js runs it): this one's module cache
    // has the whole of undici by now.
    const module = fileURLToPath(new URL('../dist/storage/undici.js', import.meta.url));
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { createRequire } from 'node:module';
         const m = await import(${JSON.stringify(module)});
         const cache = Object.keys(createRequire(import.meta.url).cache);
         console.log(JSON.stringify({
           index: cache.some((f) => /node_modules\\/undici\\/index\\.js$/.test(f)),
           fetch: cache.some((f) => /node_modules\\/undici\\/lib\\/web\\//.test(f)),
           request: typeof new m.Agent().request,
         }));`,
      ],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual({ index: false, fetch: false, request: 'function' });
  });
});
