// Routing end to end: match precedence (apis/v1 HTTPRouteRule.Matches), listener and route
// hostnames, weighted backendRefs and round robin over endpoints, through real sockets.

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
import { seededRandom } from '../../helpers/seeded-random.ts';

const LISTENERS = `    - { name: any, port: 80, protocol: HTTP }
    - { name: wild, port: 80, protocol: HTTP, hostname: "*.wild.example" }
    - { name: exact, port: 80, protocol: HTTP, hostname: exact.example }`;

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: precedence, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: any }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /exact } }]
      backendRefs: [{ name: b, port: 80 }]
    - matches: [{ path: { type: Exact, value: /exact } }]
      backendRefs: [{ name: a, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /p } }]
      backendRefs: [{ name: a, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /p/q } }]
      backendRefs: [{ name: b, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /m } }]
      backendRefs: [{ name: a, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /m }, method: POST }]
      backendRefs: [{ name: b, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /h } }]
      backendRefs: [{ name: a, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: X-V, value: "1" }] }]
      backendRefs: [{ name: b, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /q } }]
      backendRefs: [{ name: a, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /q }, queryParams: [{ name: v, value: "1" }] }]
      backendRefs: [{ name: b, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /hq }, queryParams: [{ name: v, value: "1" }] }]
      backendRefs: [{ name: b, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /hq }, headers: [{ name: x-v, value: "1" }] }]
      backendRefs: [{ name: a, port: 80 }]
    - matches: [{ path: { type: RegularExpression, value: "/re/[0-9]+" } }]
      backendRefs: [{ name: c, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /weighted } }]
      backendRefs:
        - { name: w1, port: 80, weight: 1 }
        - { name: w3, port: 80, weight: 3 }
        - { name: w0, port: 80, weight: 0 }
    - matches: [{ path: { type: PathPrefix, value: /round-robin } }]
      backendRefs: [{ name: rr, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-host, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: any }]
  hostnames: [api.example]
  rules:
    - backendRefs: [{ name: d, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-wildcard, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: any }]
  hostnames: ["*.api.example"]
  rules:
    - backendRefs: [{ name: c, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: on-wild-listener, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: wild }]
  rules:
    - backendRefs: [{ name: c, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: on-exact-listener, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: exact }]
  hostnames: [exact.example, other.example]
  rules:
    - backendRefs: [{ name: d, port: 80 }]
`;

const NAMES = ['a', 'b', 'c', 'd', 'w0', 'w1', 'w3', 'rr-1', 'rr-2'] as const;
const up: Record<string, EchoServer> = {};
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1_000 });

beforeAll(async () => {
  for (const n of NAMES) up[n] = await startEchoServer(n);
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'gw', LISTENERS),
      ...['a', 'b', 'c', 'd', 'w0', 'w1', 'w3'].map((n) =>
        serviceYaml('default', n, (up[n] as EchoServer).port),
      ),
      multiEndpointServiceYaml('default', 'rr', [
        (up['rr-1'] as EchoServer).port,
        (up['rr-2'] as EchoServer).port,
      ]),
      ROUTES,
    ),
    { random: seededRandom(42) },
  );
});

afterAll(async () => {
  await agent.close();
  await gw?.close();
  await Promise.all(Object.values(up).map((u) => u.close()));
});

async function backendFor(
  path: string,
  options: { host?: string; method?: string; headers?: Record<string, string> } = {},
): Promise<string | number> {
  const a = await send(agent, gw.url(80, path), { host: 'www.example', ...options });
  return a.status === 200 ? a.echo().server : a.status;
}

describe('match precedence', () => {
  it.each<[string, { method?: string; headers?: Record<string, string> }, string]>([
    ['/exact', {}, 'a'],
    ['/exact/more', {}, 'b'],
    ['/p/q/r', {}, 'b'],
    ['/p/q', {}, 'b'],
    ['/p/qq', {}, 'a'],
    ['/p/x', {}, 'a'],
    ['/m', { method: 'POST' }, 'b'],
    ['/m', { method: 'GET' }, 'a'],
    ['/h', { headers: { 'x-v': '1' } }, 'b'],
    ['/h', { headers: { 'x-v': '2' } }, 'a'],
    ['/q?v=1', {}, 'b'],
    ['/q?v=2', {}, 'a'],
    ['/hq?v=1', { headers: { 'x-v': '1' } }, 'a'],
    ['/hq?v=1', {}, 'b'],
    ['/re/123', {}, 'c'],
  ])('%s %j → %s', async (path, options, want) => {
    expect(await backendFor(path, options)).toBe(want);
  });

  it('404 when nothing matches', async () => {
    expect(await backendFor('/nothing')).toBe(404);
    expect(await backendFor('/re/abc')).toBe(404);
  });
});

describe('hostnames', () => {
  it('a route hostname beats the catch-all; the Host port is ignored', async () => {
    expect(await backendFor('/p', { host: 'api.example' })).toBe('d');
    expect(await backendFor('/p', { host: 'API.Example:8080' })).toBe('d');
  });

  it('a wildcard route hostname matches one or more labels, not the bare domain', async () => {
    expect(await backendFor('/p', { host: 'x.api.example' })).toBe('c');
    expect(await backendFor('/p', { host: 'x.y.api.example' })).toBe('c');
  });

  it('a wildcard listener takes its subdomains; the bare domain falls to the catch-all', async () => {
    expect(await backendFor('/p', { host: 'a.wild.example' })).toBe('c');
    expect(await backendFor('/p', { host: 'wild.example' })).toBe('a');
  });

  it('route hostnames outside the listener hostname are ignored', async () => {
    expect(await backendFor('/p', { host: 'exact.example' })).toBe('d');
    // other.example does not intersect listener "exact.example": the catch-all route serves it.
    expect(await backendFor('/p', { host: 'other.example' })).toBe('a');
  });
});

describe('load balancing', () => {
  it('weighted backendRefs split traffic by weight; weight 0 gets none (seeded random)', async () => {
    const counts: Record<string, number> = {};
    const n = 400;
    for (let i = 0; i < n; i++) {
      const b = String(await backendFor(`/weighted/${i}`));
      counts[b] = (counts[b] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['w1', 'w3']);
    // Binomial(400, 0.25): mean 100, sd ≈ 8.7; four sd either way.
    expect(counts.w1).toBeGreaterThan(65);
    expect(counts.w1).toBeLessThan(135);
    expect(up.w0?.requests.length).toBe(0);
  });

  it('round robin alternates over the endpoints of a Service', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) seen.push(String(await backendFor('/round-robin')));
    expect(seen.filter((s) => s === 'rr-1')).toHaveLength(5);
    expect(seen.filter((s) => s === 'rr-2')).toHaveLength(5);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
  });
});
