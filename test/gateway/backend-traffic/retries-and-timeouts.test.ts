// BackendTrafficPolicy retry and timeout, and how they combine with the HTTPRoute rule's own
// `retry` and `timeouts` (Envoy Gateway: the route's settings win), through real sockets.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import {
  backendTrafficPolicyYaml,
  closeAll,
  GATEWAY,
  routeYaml,
  serviceFor,
  startUpstreams,
} from '../../helpers/backend-traffic.ts';
import type { EchoServer } from '../../helpers/echo-server.ts';
import { docs } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';

let upstreams: EchoServer[] = [];
/** Attempts the upstream saw, by path. */
const attempts = new Map<string, number>();
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1_000 });

beforeAll(async () => {
  // "/…/fail-N/…": the first N attempts of a path answer the code in "/code-C/" (503 default);
  // "/…/slow-MS/…": the first attempt answers after MS ms; "/…/sleep-MS/…": every attempt does.
  upstreams = await startUpstreams('flaky', 1, (_name, req, res) => {
    const path = req.url ?? '';
    const n = (attempts.get(path) ?? 0) + 1;
    attempts.set(path, n);
    req.resume();
    const slow = Number(/\/slow-(\d+)\//.exec(path)?.[1] ?? 0);
    const sleep = Number(/\/sleep-(\d+)\//.exec(path)?.[1] ?? 0);
    const delay = sleep || (n === 1 ? slow : 0);
    const answer = () => {
      if (res.destroyed) return;
      const fails = Number(/\/fail-(\d+)\//.exec(path)?.[1] ?? 0);
      const code = n > fails ? 200 : Number(/\/code-(\d{3})\//.exec(path)?.[1] ?? 503);
      res.writeHead(code, { 'content-type': 'text/plain', 'x-attempt': String(n) });
      res.end(`answer ${n}`);
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
    return true;
  });
  gw = await startGateway(
    docs(
      GATEWAY,
      serviceFor('flaky', upstreams),
      routeYaml(
        'retried',
        `    - matches: [{ path: { type: PathPrefix, value: /btp } }]
      backendRefs: [{ name: flaky, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /route-retry } }]
      retry: { codes: [503], attempts: 1, backoff: 5ms }
      backendRefs: [{ name: flaky, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'retry',
        'retried',
        `  retry:
    numRetries: 2
    retryOn: { triggers: [retriable-status-codes], httpStatusCodes: [503] }
    perRetry: { backOff: { baseInterval: 5ms } }`,
      ),
      routeYaml(
        'per-try',
        `    - matches: [{ path: { type: PathPrefix, value: /per-try } }]
      backendRefs: [{ name: flaky, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'per-try',
        'per-try',
        `  retry:
    numRetries: 1
    retryOn: { triggers: [reset] }
    perRetry: { timeout: 150ms, backOff: { baseInterval: 5ms } }`,
      ),
      routeYaml(
        'timed',
        `    - matches: [{ path: { type: PathPrefix, value: /btp-timeout } }]
      backendRefs: [{ name: flaky, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /route-timeout } }]
      timeouts: { request: 2s }
      backendRefs: [{ name: flaky, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'timeout',
        'timed',
        `  timeout: { http: { requestTimeout: 200ms } }`,
      ),
    ),
  );
});

afterAll(async () => {
  await agent.close();
  await gw?.server.currentView?.close();
  await gw?.close();
  await closeAll(upstreams);
});

describe('BackendTrafficPolicy retry', () => {
  it('retries a 503 from a flaky upstream and returns the answer that succeeded', async () => {
    const a = await send(agent, gw.url(80, '/btp/fail-2/a'));
    expect(a.status).toBe(200);
    expect(a.headers['x-attempt']).toBe('3');
    expect(attempts.get('/btp/fail-2/a')).toBe(3);
  });

  it('gives up after numRetries and passes the last answer on', async () => {
    const a = await send(agent, gw.url(80, '/btp/fail-9/b'));
    expect(a.status).toBe(503);
    expect(a.body).toBe('answer 3');
  });

  it('does not retry a code the policy does not list', async () => {
    const a = await send(agent, gw.url(80, '/btp/fail-1/code-500/c'));
    expect(a.status).toBe(500);
    expect(attempts.get('/btp/fail-1/code-500/c')).toBe(1);
  });

  it('does not retry a request whose body is streamed', async () => {
    const a = await send(agent, gw.url(80, '/btp/fail-1/d'), { method: 'POST', body: 'once' });
    expect(a.status).toBe(503);
    expect(attempts.get('/btp/fail-1/d')).toBe(1);
  });

  it("the HTTPRoute rule's retry replaces the policy's (Envoy Gateway precedence)", async () => {
    const a = await send(agent, gw.url(80, '/route-retry/fail-9/e'));
    expect(a.status).toBe(503);
    expect(attempts.get('/route-retry/fail-9/e')).toBe(2);
  });

  it('retries an attempt that exceeds perRetry.timeout', async () => {
    const started = Date.now();
    const a = await send(agent, gw.url(80, '/per-try/slow-2000/f'));
    expect(a.status).toBe(200);
    expect(a.headers['x-attempt']).toBe('2');
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('answers 504 when every attempt exceeds perRetry.timeout', async () => {
    const a = await send(agent, gw.url(80, '/per-try/sleep-1000/g'));
    expect(a.status).toBe(504);
    expect(a.json()).toMatchObject({ code: 'MG_ERR_UPSTREAM_TIMEOUT', response_flags: 'UT' });
    expect(attempts.get('/per-try/sleep-1000/g')).toBe(2);
  });
});

describe('BackendTrafficPolicy timeout', () => {
  it('ends a request after timeout.http.requestTimeout with 504 UT', async () => {
    const started = Date.now();
    const a = await send(agent, gw.url(80, '/btp-timeout/sleep-1000/h'));
    expect(a.status).toBe(504);
    expect(a.headers['meshgate-response-flags']).toBe('UT');
    expect(Date.now() - started).toBeLessThan(900);
  });

  it("the HTTPRoute rule's request timeout wins over the policy's", async () => {
    const a = await send(agent, gw.url(80, '/route-timeout/sleep-400/i'));
    expect(a.status).toBe(200);
  });
});
