// WebSocket upgrades through the gateway, without a WebSocket library: the upstream answers the
// Upgrade with 101 (RFC 6455 §4.2.2 accept key) and echoes every byte it gets, so the test sees
// the handshake and the raw frames pass both ways untouched.

import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  docs,
  GATEWAY_CLASS,
  gatewayYaml,
  multiEndpointServiceYaml,
  serviceYaml,
} from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import {
  ACCEPT,
  KEY,
  readBytes,
  sendUpgrade,
  startWebSocketEcho,
  textFrame,
  type UpgradeSeen,
  type WebSocketEcho,
} from '../../helpers/websocket.ts';

const API_KEY = 'ws-key-aaaaaaaaaaaaaaaaaaaaaaaa';

let upstream: WebSocketEcho;
/** Two endpoints of one Service, for the balancer. */
let pair: [WebSocketEcho, WebSocketEcho];
let gw: GatewayUnderTest;
const clients = new Set<Socket>();

/** A route of `path` to `service`, with a BackendTrafficPolicy `spec` on it. */
function routeWithPolicy(name: string, path: string, service: string, spec: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${path} } }]
      backendRefs: [{ name: ${service}, port: 80 }]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${name} }]
${spec}`;
}

beforeAll(async () => {
  upstream = await startWebSocketEcho();
  pair = [await startWebSocketEcho(), await startWebSocketEcho()];
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'gw', '    - { name: http, port: 80, protocol: HTTP }'),
      serviceYaml('default', 'ws', upstream.port),
      multiEndpointServiceYaml(
        'default',
        'pair',
        pair.map((p) => p.port),
      ),
      routeWithPolicy(
        'limited',
        '/limited',
        'ws',
        '  rateLimit: { local: { rules: [{ limit: { requests: 2, unit: Hour } }] } }',
      ),
      routeWithPolicy(
        'pinned',
        '/pinned',
        'pair',
        '  loadBalancer: { type: ConsistentHash, consistentHash: { type: Header, header: { name: x-user } } }',
      ),
      routeWithPolicy('capped', '/capped', 'ws', '  circuitBreaker: { maxParallelRequests: 1 }'),
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ws, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /ws } }]
      backendRefs: [{ name: ws, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /rewritten } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /ws/inner } }
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Route, value: rewritten }] }
      backendRefs: [{ name: ws, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /moved } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /ws } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: secure, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /secure } }]
      backendRefs: [{ name: ws, port: 80 }]
---
apiVersion: v1
kind: Secret
metadata: { name: ws-keys, namespace: default }
type: Opaque
stringData: { client-a: ${API_KEY} }
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: secure, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: secure }]
  apiKeyAuth:
    credentialRefs: [{ name: ws-keys }]
    extractFrom: [{ headers: [x-api-key] }]
`,
    ),
  );
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await gw?.close();
  await upstream?.close();
  await Promise.all((pair ?? []).map((p) => p.close()));
});

/** Sends an Upgrade request to the gateway; resolves with the head of the answer. */
async function upgrade(
  path: string,
  extraHeaders = '',
): Promise<{ socket: Socket; head: string; rest: Buffer }> {
  const answer = await sendUpgrade(gw.port(80), path, 'ws.example', extraHeaders);
  clients.add(answer.socket);
  return answer;
}

describe('WebSocket upgrade', () => {
  // Regression (X-Forwarded-For): the upgrade path replaced the client's X-Forwarded-For.
  it('relays the 101 and passes frames both ways', async () => {
    const before = upstream.seen.length;
    const { socket, head, rest } = await upgrade(
      '/ws/chat?room=1',
      'X-Forwarded-For: 203.0.113.7\r\n',
    );
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    expect(head.toLowerCase()).toContain(`sec-websocket-accept: ${ACCEPT.toLowerCase()}`);
    const seen = upstream.seen[before] as UpgradeSeen;
    expect(seen.url).toBe('/ws/chat?room=1');
    expect(seen.headers).toMatchObject({
      host: 'ws.example',
      upgrade: 'websocket',
      'sec-websocket-key': KEY,
      'sec-websocket-version': '13',
      'x-forwarded-proto': 'http',
      'x-forwarded-for': '203.0.113.7, 127.0.0.1',
    });
    expect(String(seen.headers.connection).toLowerCase()).toContain('upgrade');
    for (const text of ['hello', 'second frame']) {
      const frame = textFrame(text);
      socket.write(frame);
      expect((await readBytes(socket, frame.length, rest)).equals(frame)).toBe(true);
    }
    socket.end();
  });

  // Regression: an Upgrade request skipped the rule's request filters.
  it('applies the rule’s URLRewrite and RequestHeaderModifier to the upgrade request', async () => {
    const before = upstream.seen.length;
    const { socket, head } = await upgrade('/rewritten/x');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    expect(upstream.seen[before]?.url).toBe('/ws/inner/x');
    expect(upstream.seen[before]?.headers['x-route']).toBe('rewritten');
    socket.end();
  });

  // Regression: the upgrade stack had no redirect layer; a redirect rule answered 500 (no backend).
  it('answers a RequestRedirect rule with the redirect instead of upgrading', async () => {
    const before = upstream.seen.length;
    const { socket, head } = await upgrade('/moved/a');
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 302 /);
    expect(head.toLowerCase()).toContain('location: http://ws.example/ws');
    expect(upstream.seen.length).toBe(before);
    socket.destroy();
  });

  // Regression: an answer to an Upgrade request (error or redirect) left the connection open.
  it('404 problem for an upgrade that matches no route, then the connection closes', async () => {
    const { socket, head } = await upgrade('/nowhere');
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 404 /);
    expect(head.toLowerCase()).toContain('content-type: application/problem+json');
    await new Promise<void>((resolve) => {
      if (socket.destroyed || socket.readableEnded) resolve();
      else socket.once('close', () => resolve());
      socket.resume();
    });
  });

  // Regression: undici's upgrade() turns any non-101 answer into a "bad upgrade" error (502).
  it('relays an upstream’s refusal of the upgrade as its own answer', async () => {
    const { socket, head } = await upgrade('/ws/refuse');
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 403 /);
    socket.destroy();
  });

  it('closing the client closes the upstream connection', async () => {
    const before = new Set(upstream.sockets);
    const { socket } = await upgrade('/ws/close');
    const opened = [...upstream.sockets].filter((s) => !before.has(s));
    expect(opened).toHaveLength(1);
    socket.destroy();
    for (let i = 0; i < 200 && !opened[0]?.destroyed; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(opened[0]?.destroyed).toBe(true);
  });

  // Regression: the upgrade stack had no authentication layers, so a WebSocket handshake reached
  // a route protected by a SecurityPolicy without credentials.
  it('an Upgrade to a route with a SecurityPolicy is authenticated first', async () => {
    const before = upstream.seen.length;
    const denied = await upgrade('/secure/chat');
    expect(denied.head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 401 /);
    expect(upstream.seen.length).toBe(before);
    denied.socket.destroy();
    const allowed = await upgrade('/secure/chat', `x-api-key: ${API_KEY}\r\n`);
    expect(allowed.head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    allowed.socket.destroy();
  });

  // Regression: the upgrade stack had no rate limit layer, so WebSocket handshakes were neither
  // counted nor refused by the route's BackendTrafficPolicy rateLimit.
  it('an Upgrade is counted and refused by the route’s rate limit like any request', async () => {
    const before = upstream.seen.length;
    const heads: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { socket, head } = await upgrade('/limited/chat');
      heads.push(head);
      socket.destroy();
    }
    expect(heads.map((h) => h.split('\r\n')[0])).toEqual([
      'HTTP/1.1 101 Switching Protocols',
      'HTTP/1.1 101 Switching Protocols',
      expect.stringMatching(/^HTTP\/1\.1 429 /),
    ]);
    // The 101 carries the RateLimit fields the layer set, as any admitted answer does.
    expect(heads[1]?.toLowerCase()).toMatch(
      /\r\nratelimit: "default\/limited\/local\/0";r=0;t=\d+/,
    );
    expect(heads[2]?.toLowerCase()).toMatch(/\r\nretry-after: \d+/);
    expect(upstream.seen.length).toBe(before + 2);
  });

  // Regression: the upgrade path picked endpoints by plain round robin, ignoring the rule's
  // BackendTrafficPolicy: no ConsistentHash stickiness, no circuit breaker.
  it('an Upgrade goes to the endpoint the policy’s balancer picks (ConsistentHash on a header)', async () => {
    const seen = () => pair.map((p) => p.seen.length);
    const before = seen();
    for (let i = 0; i < 4; i++) {
      const { socket, head } = await upgrade('/pinned/chat', 'x-user: alice\r\n');
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
      socket.destroy();
    }
    const got = seen().map((n, i) => n - (before[i] as number));
    expect(got.sort()).toEqual([0, 4]);
  });

  it('the policy’s circuit breaker counts an open tunnel until it closes (503 UO beyond it)', async () => {
    const first = await upgrade('/capped/one');
    expect(first.head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    const refused = await upgrade('/capped/two');
    expect(refused.head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused.head.toLowerCase()).toContain('meshgate-response-flags: uo');
    refused.socket.destroy();
    // Frames still pass through the first tunnel; closing it frees the slot.
    const frame = textFrame('still open');
    first.socket.write(frame);
    expect((await readBytes(first.socket, frame.length, first.rest)).equals(frame)).toBe(true);
    first.socket.destroy();
    let head = '';
    for (let i = 0; i < 100; i++) {
      const again = await upgrade('/capped/three');
      head = again.head;
      again.socket.destroy();
      if (head.startsWith('HTTP/1.1 101')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
  });
});
