// BackendTrafficPolicy loadBalancer through real sockets: ConsistentHash by header and by cookie
// keeps a client on one endpoint, LeastRequest prefers the idle endpoint.

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
import { send } from '../../helpers/http-request.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';

const held = new HeldRequests();
let upstreams: EchoServer[] = [];
let pair: EchoServer[] = [];
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1_000, connections: 20 });

beforeAll(async () => {
  upstreams = await startUpstreams('lb', 3);
  pair = await startUpstreams('least', 2, held.handler('/least/hold'));
  const route = (name: string, prefix: string, service = 'trio') =>
    routeYaml(
      name,
      `    - matches: [{ path: { type: PathPrefix, value: ${prefix} } }]
      backendRefs: [{ name: ${service}, port: 80 }]`,
    );
  gw = await startGateway(
    docs(
      GATEWAY,
      serviceFor('trio', upstreams),
      serviceFor('pair', pair),
      route('by-header', '/header'),
      backendTrafficPolicyYaml(
        'by-header',
        'by-header',
        `  loadBalancer:
    type: ConsistentHash
    consistentHash: { type: Header, header: { name: X-User } }`,
      ),
      route('by-cookie', '/cookie'),
      backendTrafficPolicyYaml(
        'by-cookie',
        'by-cookie',
        `  loadBalancer:
    type: ConsistentHash
    consistentHash:
      type: Cookie
      cookie: { name: lb-session, ttl: 60s, attributes: { SameSite: Lax } }`,
      ),
      route('least', '/least', 'pair'),
      // No loadBalancer: Envoy Gateway's default, LeastRequest.
      backendTrafficPolicyYaml('least', 'least', `  circuitBreaker: { maxParallelRequests: 100 }`),
    ),
    { random: seededRandom(5) },
  );
});

afterAll(async () => {
  held.releaseAll();
  await agent.close();
  await gw?.server.currentView?.close();
  await gw?.close();
  await closeAll([...upstreams, ...pair]);
});

describe('consistent hash', () => {
  it('sends the same header value to the same endpoint across 100 requests', async () => {
    // alice 100 times, five more users 10 times each.
    const chosen = new Map<string, Set<string>>();
    for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
      const seen = new Set<string>();
      for (let i = 0; i < (user === 'alice' ? 100 : 10); i++) {
        const a = await send(agent, gw.url(80, `/header/${i}`), { headers: { 'x-user': user } });
        expect(a.status).toBe(200);
        seen.add(a.echo().server);
      }
      chosen.set(user, seen);
    }
    for (const seen of chosen.values()) expect(seen.size).toBe(1);
    // Different keys land on different endpoints.
    expect(new Set([...chosen.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
  });

  it('sets the hash cookie on the first answer and keeps the client on one endpoint', async () => {
    const first = await send(agent, gw.url(80, '/cookie/first'));
    const setCookie = String(first.headers['set-cookie']);
    expect(setCookie).toMatch(/^lb-session="[0-9a-f]{16}"; Max-Age=60; SameSite=Lax; HttpOnly$/);
    const cookie = setCookie.split(';')[0] as string;
    const servers = new Set([first.echo().server]);
    for (let i = 0; i < 30; i++) {
      const a = await send(agent, gw.url(80, `/cookie/${i}`), { headers: { cookie } });
      expect(a.headers['set-cookie']).toBeUndefined();
      servers.add(a.echo().server);
    }
    expect(servers.size).toBe(1);
  });
});

describe('least request', () => {
  it('prefers the idle endpoint over the one with a request in flight', async () => {
    const holding = send(agent, gw.url(80, '/least/hold/1'));
    await held.waitFor(1);
    const [busy] = held.names();
    const idle = pair.map((u) => u.name).find((n) => n !== busy);
    for (let i = 0; i < 20; i++) {
      const a = await send(agent, gw.url(80, `/least/${i}`));
      expect(a.echo().server).toBe(idle);
    }
    held.releaseAll();
    await holding;
    // Both idle again: both get traffic.
    const servers = new Set<string>();
    for (let i = 0; i < 20; i++)
      servers.add((await send(agent, gw.url(80, `/least/x${i}`))).echo().server);
    expect(servers.size).toBe(2);
  });
});
