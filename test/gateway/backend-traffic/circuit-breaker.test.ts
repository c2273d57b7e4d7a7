// BackendTrafficPolicy circuitBreaker: requests beyond the thresholds are refused at once with
// 503 and the flag UO (MG_ERR_UPSTREAM_OVERFLOW), through real sockets to a slow upstream.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import {
  backendTrafficPolicyYaml,
  closeAll,
  GATEWAY,
  HeldRequests,
  routeYaml,
  serviceFor,
  startUpstreams,
} from '../../helpers/backend-traffic.ts';
import type { EchoServer } from '../../helpers/echo-server.ts';
import { docs } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send, type Answer } from '../../helpers/http-request.ts';

const held = new HeldRequests();
let noRetryAttempts = 0;
let upstreams: EchoServer[] = [];
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1_000, connections: 50 });

beforeAll(async () => {
  const hold = held.handler('/');
  upstreams = await startUpstreams('slow', 1, (name, req, res) => {
    if (!(req.url ?? '').startsWith('/no-retries')) return hold(name, req, res);
    noRetryAttempts++;
    req.resume();
    res.writeHead(503).end('unavailable');
    return true;
  });
  gw = await startGateway(
    docs(
      GATEWAY,
      serviceFor('slow', upstreams),
      routeYaml(
        'parallel',
        `    - matches: [{ path: { type: PathPrefix, value: /parallel } }]
      backendRefs: [{ name: slow, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'parallel',
        'parallel',
        `  circuitBreaker: { maxParallelRequests: 2 }`,
      ),
      routeYaml(
        'queued',
        `    - matches: [{ path: { type: PathPrefix, value: /queued } }]
      backendRefs: [{ name: slow, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'queued',
        'queued',
        `  circuitBreaker: { maxConnections: 1, maxPendingRequests: 1 }`,
      ),
      routeYaml(
        'queued-timeout',
        `    - matches: [{ path: { type: PathPrefix, value: /wait } }]
      backendRefs: [{ name: slow, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'queued-timeout',
        'queued-timeout',
        `  circuitBreaker: { maxConnections: 1 }
  timeout: { http: { requestTimeout: 200ms } }`,
      ),
      routeYaml(
        'no-retries',
        `    - matches: [{ path: { type: PathPrefix, value: /no-retries } }]
      backendRefs: [{ name: slow, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'no-retries',
        'no-retries',
        `  retry: { numRetries: 3, perRetry: { backOff: { baseInterval: 5ms } } }
  circuitBreaker: { maxParallelRetries: 0 }`,
      ),
    ),
  );
});

afterAll(async () => {
  held.releaseAll();
  await agent.close();
  await gw?.server.currentView?.close();
  await gw?.close();
  await closeAll(upstreams);
});

function expectOverflow(a: Answer) {
  expect(a.status).toBe(503);
  expect(a.headers['meshgate-response-flags']).toBe('UO');
  expect(a.json()).toMatchObject({ code: 'MG_ERR_UPSTREAM_OVERFLOW', response_flags: 'UO' });
}

describe('circuit breaker', () => {
  it('refuses requests beyond maxParallelRequests with 503 UO, at once', async () => {
    const answers = Array.from({ length: 5 }, (_, i) =>
      send(agent, gw.url(80, `/parallel/${i}`)).then((a) => ({ a, at: Date.now() })),
    );
    await held.waitFor(2);
    await new Promise((r) => setTimeout(r, 200));
    const releasedAt = Date.now();
    held.releaseAll();
    const all = await Promise.all(answers);
    expect(all.filter(({ a }) => a.status === 200)).toHaveLength(2);
    const refused = all.filter(({ a }) => a.status !== 200);
    expect(refused).toHaveLength(3);
    for (const { a, at } of refused) {
      expectOverflow(a);
      expect(at).toBeLessThan(releasedAt); // refused at once, not after the slow ones
    }
    // The breaker's counters went back to zero.
    const policy = gw.server.currentView?.backendPolicies
      .snapshot(0)
      .find((p) => p.key.includes('parallel'));
    expect(policy?.circuitBreaker).toMatchObject({ active: 0, pending: 0, overflowRequests: 3 });
  });

  it('queues beyond maxConnections up to maxPendingRequests and refuses the rest', async () => {
    const first = send(agent, gw.url(80, '/queued/1'));
    await held.waitFor(1);
    const second = send(agent, gw.url(80, '/queued/2'));
    const third = send(agent, gw.url(80, '/queued/3'));
    expectOverflow(await Promise.race([second, third]));
    expect(held.count).toBe(1); // the second waits for the first's connection
    held.releaseAll();
    expect((await first).status).toBe(200);
    await held.waitFor(1);
    held.releaseAll();
    const rest = await Promise.all([second, third]);
    expect(rest.map((a) => a.status).sort()).toEqual([200, 503]);
  });

  it('a request waiting for a connection ends with 504 at the request timeout', async () => {
    const first = send(agent, gw.url(80, '/wait/1'));
    await held.waitFor(1);
    const started = Date.now();
    const second = await send(agent, gw.url(80, '/wait/2'));
    expect(second.status).toBe(504);
    expect(second.json()).toMatchObject({ code: 'MG_ERR_UPSTREAM_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1_000);
    held.releaseAll();
    expect((await first).status).toBe(504); // the first one ran into the same timeout
  });

  it('makes no retry while maxParallelRetries is reached (0 here)', async () => {
    const a = await send(agent, gw.url(80, '/no-retries/x'));
    expect(a.status).toBe(503);
    expect(noRetryAttempts).toBe(1);
  });
});
