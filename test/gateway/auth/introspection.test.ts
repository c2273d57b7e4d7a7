import { createServer } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JwksCache } from '../../../gateway/auth/jwks-cache.ts';
import type { JwtPrincipal } from '../../../gateway/auth/jwt-authenticator.ts';
import { compileTokenIntrospectionPolicy } from '../../../gateway/auth/security-policy.ts';
import { TokenCache } from '../../../gateway/auth/token-cache.ts';
import type { EdgeRequest } from '../../../gateway/request-context.ts';
import { tokenIntrospectionPolicySpec } from '../../../shared/config/schemas/meshgate.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import {
  startIntrospectionEndpoint,
  type TestIntrospectionEndpoint,
} from '../../helpers/introspection-endpoint.ts';

// TokenIntrospectionPolicy through the gateway's real listener, against a real RFC 7662 endpoint
// on loopback: active, inactive and expired tokens, required scopes (RFC 6750 insufficient_scope),
// the result cache and its bounds, coalesced calls, and an endpoint that is down, slow or refuses
// the gateway's credentials (all fail closed with 503).

const CLIENT = { id: 'edge-gateway', secret: 's3cret: with colon' };
let clock = Date.now();
let endpoint: TestIntrospectionEndpoint;
let upstream: EchoServer;
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1000, connections: 64 });

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function route(name: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: api }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { value: /${name} } }]
      backendRefs: [{ name: app, port: 80 }]`;
}

function policy(name: string, fields: string): string {
  return `apiVersion: meshgate.io/v1alpha1
kind: TokenIntrospectionPolicy
metadata: { name: ${name}, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${name} }]
  clientID: ${CLIENT.id}
${fields}`;
}

function config(deadUrl: string): string {
  const at = `  endpoint: ${endpoint.url}\n`;
  return docs(
    GATEWAY_CLASS,
    gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    serviceYaml('api', 'app', upstream.port),
    `apiVersion: v1
kind: Secret
metadata: { name: introspection-client, namespace: api }
type: Opaque
stringData: { client-secret: "${CLIENT.secret}" }`,
    `apiVersion: v1
kind: Secret
metadata: { name: wrong-client, namespace: api }
type: Opaque
stringData: { client-secret: not-the-secret }`,
    ...['orders', 'admin', 'wrong', 'dead', 'slow'].map(route),
    policy(
      'orders',
      `${at}  clientSecretRef: { name: introspection-client }
  requiredScopes: [orders.read]`,
    ),
    policy(
      'admin',
      `${at}  clientSecretRef: { name: introspection-client }
  requiredScopes: [orders.read, orders.admin]
  extractFrom:
    headers: [{ name: X-Api-Token }]
    params: [access_token]`,
    ),
    policy('wrong', `${at}  clientSecretRef: { name: wrong-client }`),
    policy('dead', `  endpoint: ${deadUrl}\n  clientSecretRef: { name: introspection-client }`),
    policy('slow', `${at}  clientSecretRef: { name: introspection-client }\n  timeout: 200ms`),
  );
}

beforeAll(async () => {
  endpoint = await startIntrospectionEndpoint(CLIENT);
  upstream = await startEchoServer('app');
  gw = await startGateway(config(`http://127.0.0.1:${await closedPort()}/introspect`), {
    wallClock: () => clock,
  });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await endpoint?.close();
  await agent.close();
});

beforeEach(() => {
  endpoint.down = false;
  endpoint.delayMs = 0;
});

const url = (path: string) => gw.url(8080, path);
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
const nowSeconds = () => Math.floor(clock / 1000);
let counter = 0;
/** A fresh token the endpoint knows (each test its own, so the cache starts empty for it). */
function activeToken(members: Record<string, unknown> = {}): string {
  const token = `opaque-${++counter}-${Math.random().toString(36).slice(2)}`;
  endpoint.tokens.set(token, {
    active: true,
    sub: 'alice',
    client_id: 'web-app',
    scope: 'orders.read profile',
    exp: nowSeconds() + 600,
    ...members,
  });
  return token;
}
const callsFor = (token: string) => endpoint.calls.filter((c) => c.params.token === token).length;

describe('token introspection at the edge (RFC 7662)', () => {
  it('lets an active token with the required scopes through, asking the endpoint once', async () => {
    const token = activeToken();
    for (let i = 0; i < 10; i++) {
      const res = await send(agent, url('/orders'), bearer(token));
      expect(res.status).toBe(200);
      expect(res.echo().headers.authorization).toBe(`Bearer ${token}`);
    }
    expect(callsFor(token)).toBe(1);
    const call = endpoint.calls.find((c) => c.params.token === token);
    expect(call?.contentType).toBe('application/x-www-form-urlencoded');
    expect(call?.params).toEqual({ token, token_type_hint: 'access_token' });
  });

  it('answers 401 with a bare challenge when there is no token', async () => {
    const res = await send(agent, url('/orders'));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="meshgate"');
  });

  it('answers 401 invalid_token for an inactive token, and remembers it', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await send(agent, url('/orders'), bearer('revoked-token'));
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(
        'Bearer realm="meshgate", error="invalid_token"',
      );
      expect(res.json()).toMatchObject({ detail: 'The bearer token is not valid.' });
    }
    expect(callsFor('revoked-token')).toBe(1);
  });

  it('answers 401 for a token the endpoint calls active but whose exp has passed', async () => {
    const token = activeToken({ exp: nowSeconds() - 30 });
    expect((await send(agent, url('/orders'), bearer(token))).status).toBe(401);
  });

  it('answers 403 insufficient_scope naming the required scopes when one is missing', async () => {
    const token = activeToken({ scope: 'orders.read' });
    const res = await send(agent, url('/admin'), { headers: { 'x-api-token': token } });
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBe(
      'Bearer realm="meshgate", error="insufficient_scope", scope="orders.read orders.admin"',
    );
    expect(res.json()).toMatchObject({ code: 'MG_ERR_FORBIDDEN' });
    const admin = activeToken({ scope: 'orders.read orders.admin' });
    expect((await send(agent, url(`/admin?access_token=${admin}`))).status).toBe(200);
  });

  it('asks again once the token has expired, and after cacheMaxTTL at the latest', async () => {
    const token = activeToken({ exp: nowSeconds() + 120 });
    for (let i = 0; i < 5; i++)
      expect((await send(agent, url('/orders'), bearer(token))).status).toBe(200);
    expect(callsFor(token)).toBe(1);
    // The server extended the token; the cached answer ends with the old exp.
    (endpoint.tokens.get(token) as { exp: number }).exp = nowSeconds() + 86_400;
    clock += 121_000;
    expect((await send(agent, url('/orders'), bearer(token))).status).toBe(200);
    expect(callsFor(token)).toBe(2);
    expect((await send(agent, url('/orders'), bearer(token))).status).toBe(200);
    expect(callsFor(token)).toBe(2);
    // The token lives a day, the cache 5 minutes (the default cacheMaxTTL).
    clock += 5 * 60_000;
    expect((await send(agent, url('/orders'), bearer(token))).status).toBe(200);
    expect(callsFor(token)).toBe(3);
  });

  it('makes one call for concurrent requests with the same token', async () => {
    const token = activeToken();
    endpoint.delayMs = 150;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => send(agent, url('/orders'), bearer(token))),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(callsFor(token)).toBe(1);
  });

  it('fails closed with 503 when the endpoint is down, unreachable, slow or refuses the gateway', async () => {
    const cached = activeToken();
    expect((await send(agent, url('/orders'), bearer(cached))).status).toBe(200);
    endpoint.down = true;
    const down = await send(agent, url('/orders'), bearer(activeToken()));
    expect(down.status).toBe(503);
    expect(down.json()).toMatchObject({
      code: 'MG_ERR_UPSTREAM_CONNECT',
      detail: 'The token could not be checked; try again later.',
    });
    // An answer already cached still holds during the outage.
    expect((await send(agent, url('/orders'), bearer(cached))).status).toBe(200);
    endpoint.down = false;

    expect((await send(agent, url('/dead'), bearer(activeToken()))).status).toBe(503);

    endpoint.delayMs = 3000; // the policy's timeout is 200ms
    const started = Date.now();
    expect((await send(agent, url('/slow'), bearer(activeToken()))).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(2000);
    endpoint.delayMs = 0;

    // The endpoint checks the gateway's client credentials (RFC 7662 section 2.1).
    expect((await send(agent, url('/wrong'), bearer(activeToken()))).status).toBe(503);
  });
});

describe('IntrospectionAuthenticator', () => {
  const spec = (endpointUrl: string) =>
    tokenIntrospectionPolicySpec.parse({
      targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'orders' }],
      endpoint: endpointUrl,
      clientID: CLIENT.id,
      clientSecretRef: { name: 'introspection-client', namespace: 'api' },
    });
  const secrets = { 'api/introspection-client': { 'client-secret': CLIENT.secret } };
  const request = (token: string) =>
    ({
      header: (name: string) => (name === 'authorization' ? `Bearer ${token}` : undefined),
      query: '',
    }) as unknown as EdgeRequest;
  const runtime = (lines: string[]) => ({
    wallClock: () => clock,
    tokens: new TokenCache<JwtPrincipal>(10, () => clock),
    jwks: new JwksCache({ now: () => clock, cooldownMs: 0, fetchTimeoutMs: 1000 }),
    logger: { warn: (_fields: object, message: string) => lines.push(message) },
  });

  it('makes the introspection response the principal (sub, client_id, scope)', async () => {
    const auth = compileTokenIntrospectionPolicy(
      'TokenIntrospectionPolicy/api/orders',
      spec(endpoint.url),
      secrets,
      runtime([]),
    );
    const outcome = await auth.authenticate(request(activeToken()));
    expect(outcome.kind).toBe('ok');
    if (outcome.kind !== 'ok') return;
    expect(outcome.principal.provider).toBe('TokenIntrospectionPolicy/api/orders');
    expect(outcome.principal.claims).toMatchObject({ sub: 'alice', client_id: 'web-app' });
    expect([...outcome.principal.scopes]).toEqual(['orders.read', 'profile']);
  });

  it('logs an outage once, not once per request', async () => {
    const lines: string[] = [];
    const auth = compileTokenIntrospectionPolicy(
      'TokenIntrospectionPolicy/api/dead',
      spec(`http://127.0.0.1:${await closedPort()}/introspect`),
      secrets,
      runtime(lines),
    );
    for (let i = 0; i < 3; i++)
      expect((await auth.authenticate(request(`t${i}`))).kind).toBe('unavailable');
    expect(lines).toEqual([
      'token introspection endpoint unavailable; requests it covers fail closed (503)',
    ]);
  });
});
