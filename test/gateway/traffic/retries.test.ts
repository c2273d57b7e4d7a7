// HTTPRoute rule `retry` (attempts, codes, backoff): a bodiless request is retried on the listed
// codes up to `attempts` more times; then the last answer goes to the client.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import {
  docs,
  GATEWAY_CLASS,
  gatewayYaml,
  multiEndpointServiceYaml,
  serviceYaml,
} from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { freePort } from '../../helpers/ports.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';

let flaky: EchoServer;
let healthy: EchoServer;
/** Attempts the flaky upstream saw, by path. */
const attempts = new Map<string, number>();
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1_000 });

beforeAll(async () => {
  // "/…/fail-N/…": the first N attempts for a path answer with the code in "/code-C/" (503 default).
  flaky = await startEchoServer('flaky', (req, res) => {
    const path = req.url ?? '';
    const n = (attempts.get(path) ?? 0) + 1;
    attempts.set(path, n);
    const fails = Number(/\/fail-(\d+)\//.exec(path)?.[1] ?? 0);
    if (n > fails) return false;
    const code = Number(/\/code-(\d{3})\//.exec(path)?.[1] ?? 503);
    req.resume();
    res.writeHead(code, { 'content-type': 'text/plain', 'x-attempt': String(n) });
    res.end(`failure ${n}`);
    return true;
  });
  healthy = await startEchoServer('healthy');
  const dead = await freePort();
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'gw', '    - { name: http, port: 80, protocol: HTTP }'),
      serviceYaml('default', 'flaky', flaky.port),
      multiEndpointServiceYaml('default', 'half-dead', [dead, healthy.port]),
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: retries, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /retry } }]
      retry: { codes: [502, 503], attempts: 2, backoff: 5ms }
      backendRefs: [{ name: flaky, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /no-retry } }]
      backendRefs: [{ name: flaky, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /connect } }]
      retry: { attempts: 1, backoff: 5ms }
      backendRefs: [{ name: half-dead, port: 80 }]`,
    ),
    { random: seededRandom(3) },
  );
});

afterAll(async () => {
  await agent.close();
  await gw?.close();
  await flaky?.close();
  await healthy?.close();
});

describe('retry', () => {
  it('retries a GET answered 503 and returns the answer that succeeded', async () => {
    const a = await send(agent, gw.url(80, '/retry/fail-2/a'));
    expect(a.status).toBe(200);
    expect(a.echo().server).toBe('flaky');
    expect(attempts.get('/retry/fail-2/a')).toBe(3);
  });

  it('gives up after `attempts` retries and passes the last answer on', async () => {
    const a = await send(agent, gw.url(80, '/retry/fail-9/b'));
    expect(a.status).toBe(503);
    expect(a.headers['x-attempt']).toBe('3');
    expect(a.body).toBe('failure 3');
    expect(attempts.get('/retry/fail-9/b')).toBe(3);
  });

  it('does not retry a code that is not listed', async () => {
    const a = await send(agent, gw.url(80, '/retry/fail-1/code-500/c'));
    expect(a.status).toBe(500);
    expect(attempts.get('/retry/fail-1/code-500/c')).toBe(1);
  });

  it('does not retry a request with a body (it cannot be sent twice)', async () => {
    const a = await send(agent, gw.url(80, '/retry/fail-1/d'), { method: 'POST', body: 'once' });
    expect(a.status).toBe(503);
    expect(attempts.get('/retry/fail-1/d')).toBe(1);
  });

  it('does not retry without a retry policy', async () => {
    const a = await send(agent, gw.url(80, '/no-retry/fail-1/e'));
    expect(a.status).toBe(503);
    expect(attempts.get('/no-retry/fail-1/e')).toBe(1);
  });

  it('retries a refused connection on the next endpoint', async () => {
    for (let i = 0; i < 4; i++) {
      const a = await send(agent, gw.url(80, `/connect/${i}`));
      expect(a.status).toBe(200);
      expect(a.echo().server).toBe('healthy');
    }
  });
});
