/**
 * The parts of undici ferry uses: its dispatchers and their request API.
 *
 * `import 'undici'` runs undici's index, which loads everything the package has (fetch,
 * WebSocket, EventSource, mocks, caches, cookies; the cookies pull in Node's own bundled
 * copy of undici) before answering: 55–75 ms of a worker's start-up here, against 25 ms
 * for the files below. They are loaded alone, and Dispatcher gets the request API the way
 * undici's index gives it (`Object.assign(Dispatcher.prototype, api)`). undici has no
 * `exports` map, so these paths are reachable; package-lock.json pins the version, and
 * storage/undici.test.ts checks that each export is the one the index gives.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);

const dispatcher = require('undici/lib/dispatcher/dispatcher.js') as typeof Undici.Dispatcher;
const api = require('undici/lib/api/index.js') as object;
Object.assign(dispatcher.prototype, api);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
export const EnvHttpProxyAgent = require('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof Undici.EnvHttpProxyAgent;
export const Pool = require('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
export const ProxyAgent = require('undici/lib/dispatcher/proxy-agent.js') as typeof Undici.ProxyAgent;
export const buildConnector = require('undici/lib/core/connect.js') as typeof Undici.buildConnector;
export type Agent = Undici.Agent;
export type EnvHttpProxyAgent = Undici.EnvHttpProxyAgent;
export type Pool = Undici.Pool;
export type ProxyAgent = Undici.ProxyAgent;
