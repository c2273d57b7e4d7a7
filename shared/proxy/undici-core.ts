// The parts of undici that the proxies and their control-plane clients use, loaded from their own
// files. undici's index.js also loads fetch, WebSocket, EventSource, the HTTP cache and the mock
// agent: about 5 MB of a sidecar's resident memory that nothing on its path uses. These are the
// very objects the package exports (the module cache makes them so); test/proxy/undici-core.test.ts
// checks it, so an undici release that moves a file fails there rather than in production.
// Types still come from 'undici' itself.

import { createRequire } from 'node:module';
import type * as undici from 'undici';

const require = createRequire(import.meta.url);

export const Pool = require('undici/lib/dispatcher/pool.js') as typeof undici.Pool;
export const Agent = require('undici/lib/dispatcher/agent.js') as typeof undici.Agent;
export const Dispatcher =
  require('undici/lib/dispatcher/dispatcher.js') as typeof undici.Dispatcher;
export const buildConnector = require('undici/lib/core/connect.js') as typeof undici.buildConnector;
const { getGlobalDispatcher } = require('undici/lib/global.js') as {
  getGlobalDispatcher: typeof undici.getGlobalDispatcher;
};

// The request/stream/pipeline/upgrade/connect methods every dispatcher has, as undici's index.js
// adds them (a second assignment, when something else loads the index, is the same functions).
Object.assign(Dispatcher.prototype, require('undici/lib/api/index.js') as object);

/** undici's `request(url, options)`: through `options.dispatcher`, else the global one. */
export function request(
  url: string | URL,
  options: Omit<undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
    method?: undici.Dispatcher.HttpMethod;
    dispatcher?: undici.Dispatcher;
  } = {},
): Promise<undici.Dispatcher.ResponseData> {
  const { dispatcher = getGlobalDispatcher(), ...rest } = options;
  const target = typeof url === 'string' ? new URL(url) : url;
  return dispatcher.request({
    ...rest,
    origin: target.origin,
    path: `${target.pathname}${target.search}`,
    method: options.method ?? 'GET',
  });
}
