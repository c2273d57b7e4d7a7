// BackendTrafficPolicy healthCheck.active through real sockets: an endpoint that fails its HTTP
// health check gets no traffic; the checks run with the view that needs them and stop when a
// new view drops them or the view is closed.

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
import {
  compileConfig,
  startGateway,
  type GatewayUnderTest,
} from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';

let upstreams: EchoServer[] = [];
let gw: GatewayUnderTest;
let sick = true;
const checks: string[] = [];
const agent = new Agent({ keepAliveTimeout: 1_000 });

const ROUTE = routeYaml(
  'checked',
  `    - matches: [{ path: { type: PathPrefix, value: / } }]
      backendRefs: [{ name: pair, port: 80 }]`,
);

beforeAll(async () => {
  // hc-1 fails its health check while `sick`.
  upstreams = await startUpstreams('hc', 2, (name, req, res) => {
    if (req.url !== '/healthz') return false;
    checks.push(`${name} ${req.headers.host}`);
    req.resume();
    res.writeHead(name === 'hc-1' && sick ? 503 : 200).end();
    return true;
  });
  gw = await startGateway(
    docs(
      GATEWAY,
      serviceFor('pair', upstreams),
      ROUTE,
      backendTrafficPolicyYaml(
        'checked',
        'checked',
        `  loadBalancer: { type: RoundRobin }
  healthCheck:
    active:
      type: HTTP
      interval: 50ms
      timeout: 500ms
      unhealthyThreshold: 1
      healthyThreshold: 1
      http: { path: /healthz, hostname: health.example }`,
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

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function failedEndpoints(): string[] {
  return (gw.server.currentView?.backendPolicies.snapshot(0) ?? []).flatMap((p) =>
    p.endpoints.filter((e) => e.failedActiveHealthCheck).map((e) => e.endpoint),
  );
}

describe('active health checks', () => {
  it('sends no traffic to an endpoint that fails its health check', async () => {
    await until(() => failedEndpoints().length === 1);
    expect(failedEndpoints()).toEqual([`http://127.0.0.1:${upstreams[1]!.port}`]);
    expect(checks.some((c) => c === 'hc-0 health.example')).toBe(true);
    for (let i = 0; i < 6; i++) {
      const a = await send(agent, gw.url(80, `/x/${i}`));
      expect(a.echo().server).toBe('hc-0');
    }
  });

  it('sends traffic again once the endpoint passes', async () => {
    sick = false;
    await until(() => failedEndpoints().length === 0);
    const servers = new Set<string>();
    for (let i = 0; i < 6; i++)
      servers.add((await send(agent, gw.url(80, `/y/${i}`))).echo().server);
    expect(servers).toEqual(new Set(['hc-0', 'hc-1']));
  });

  it('keeps the checks of an unchanged policy across a reload', async () => {
    const before = gw.server.currentView!;
    const key = before.backendPolicies.snapshot(0)[0]!.key;
    await gw.server.apply(gw.snapshot);
    const after = gw.server.currentView!;
    expect(after).not.toBe(before);
    // The same policy object, with its health state and its running checks.
    expect(after.backendPolicies.policy(key)).toBe(before.backendPolicies.policy(key));
    expect(after.backendPolicies.pendingHealthCheckWork).toBeGreaterThan(0);
  });

  it('stops the checks when a new view drops the policy, and leaves no timer behind', async () => {
    const before = gw.server.currentView!;
    const withoutPolicy = compileConfig(GATEWAY, serviceFor('pair', upstreams), ROUTE).snapshot;
    await gw.server.apply(withoutPolicy);
    await until(() => before.backendPolicies.pendingHealthCheckWork === 0);
    const seen = checks.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(checks.length).toBe(seen);
  });
});
