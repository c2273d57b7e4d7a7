import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { startJwtIssuer, type TestIssuer } from '../../helpers/jwt-issuer.ts';

// SecurityPolicy jwt through the gateway's real listener: RFC 6750 challenges, every algorithm,
// exp/nbf with skew, audiences, token sources, claimToHeaders, the verified-token cache, and a
// remote JWKS that rotates keys and goes down.

let upstream: EchoServer;
let issuer: TestIssuer;
let gw: GatewayUnderTest;
let clock = Date.now();
const agent = new Agent({ keepAliveTimeout: 1000 });

function config(jwksUri: string) {
  return docs(
    GATEWAY_CLASS,
    gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    serviceYaml('api', 'orders', upstream.port),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: orders, namespace: api }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { value: /orders } }]
      backendRefs: [{ name: orders, port: 80 }]`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: public, namespace: api }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { value: /public } }]
      backendRefs: [{ name: orders, port: 80 }]`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: orders-jwt, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: orders }]
  jwt:
    providers:
      - name: test
        issuer: ${issuer.issuer}
        audiences: [orders-api]
        remoteJWKS: { uri: "${jwksUri}", cacheDuration: 60s }
        claimToHeaders:
          - { header: x-user, claim: sub }
          - { header: x-tenant, claim: org.tenant }
        extractFrom:
          headers: [{ name: Authorization, valuePrefix: "Bearer " }, { name: x-token }]
          cookies: [session-token]`,
  );
}

beforeAll(async () => {
  upstream = await startEchoServer('orders');
  issuer = await startJwtIssuer();
  gw = await startGateway(config(issuer.jwksUri), { wallClock: () => clock });
});

afterAll(async () => {
  await gw?.close();
  await issuer?.close();
  await upstream?.close();
  await agent.close();
});

const url = (path = '/orders') => gw.url(8080, path);
const claims = { sub: 'alice', aud: 'orders-api', org: { tenant: 't1' } };

describe('JWT at the edge', () => {
  it('answers 401 with an RFC 6750 challenge and no token details when the token is missing', async () => {
    const res = await send(agent, url());
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="meshgate"');
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json()).toMatchObject({
      status: 401,
      code: 'MG_ERR_UNAUTHENTICATED',
      response_flags: 'UAEX',
      detail: 'A bearer token is required.',
    });
    expect(upstream.requests).toHaveLength(0);
  });

  for (const alg of ['RS256', 'PS256', 'ES256', 'EdDSA'] as const) {
    it(`accepts a valid ${alg} token and forwards claims as headers`, async () => {
      const token = await issuer.sign(claims, { alg });
      const res = await send(agent, url(), { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(res.echo().headers['x-user']).toBe('alice');
      expect(res.echo().headers['x-tenant']).toBe('t1');
    });
  }

  it('refuses bad tokens with error="invalid_token" and says nothing more', async () => {
    const good = await issuer.sign(claims);
    const tampered = `${good.slice(0, -4)}AAAA`;
    const expired = await issuer.sign(claims, { expiresIn: Math.floor(clock / 1000) - 3600 });
    const notYet = await issuer.sign(claims, { notBefore: Math.floor(clock / 1000) + 3600 });
    const wrongAudience = await issuer.sign({ ...claims, aud: 'billing' });
    for (const token of [tampered, expired, notYet, wrongAudience, 'not-a-jwt']) {
      const res = await send(agent, url(), { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, token.slice(0, 20)).toBe(401);
      expect(res.headers['www-authenticate']).toBe(
        'Bearer realm="meshgate", error="invalid_token"',
      );
      expect(res.json<{ detail: string }>().detail).toBe('The bearer token is not valid.');
    }
  });

  it('allows the clock skew on exp and nbf', async () => {
    const justExpired = await issuer.sign(claims, { expiresIn: Math.floor(clock / 1000) - 30 });
    const almostValid = await issuer.sign(claims, { notBefore: Math.floor(clock / 1000) + 30 });
    for (const token of [justExpired, almostValid])
      expect(
        (await send(agent, url(), { headers: { authorization: `Bearer ${token}` } })).status,
      ).toBe(200);
  });

  it('reads the token from a named header and from a cookie', async () => {
    const token = await issuer.sign(claims);
    expect((await send(agent, url(), { headers: { 'x-token': token } })).status).toBe(200);
    expect(
      (await send(agent, url(), { headers: { cookie: `a=b; session-token=${token}` } })).status,
    ).toBe(200);
  });

  it('does not protect a route the policy does not target', async () => {
    expect((await send(agent, url('/public'))).status).toBe(200);
  });

  it('verifies a hot token once, then serves it from the cache until it expires', async () => {
    const token = await issuer.sign(
      { ...claims, sub: 'hot' },
      { expiresIn: Math.floor(clock / 1000) + 120 },
    );
    const rule = gw.server.currentView?.ports.get(8080)?.table.match({
      host: 'x',
      method: 'GET',
      path: '/orders',
      headers: () => undefined,
      query: () => undefined,
    });
    const jwt = rule?.entry.attachment?.rules[rule.ruleIndex]?.security?.jwt;
    expect(jwt).toBeDefined();
    const before = jwt?.verifications ?? 0;
    for (let i = 0; i < 5; i++)
      expect(
        (await send(agent, url(), { headers: { authorization: `Bearer ${token}` } })).status,
      ).toBe(200);
    expect((jwt?.verifications ?? 0) - before).toBe(1);
    // Past its exp (and the skew), the cached entry is gone and the token is refused.
    clock += 200_000;
    expect(
      (await send(agent, url(), { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(401);
  });

  it('refetches the JWKS for an unknown kid (key rotation), at a bounded rate', async () => {
    await issuer.addKey('ES256', 'rotated-1');
    const fetchesBefore = issuer.fetches;
    clock += 60_000; // past the cooldown of the last fetch
    const token = await issuer.sign(claims, {
      alg: 'ES256',
      kid: 'rotated-1',
      expiresIn: Math.floor(clock / 1000) + 600,
    });
    expect(
      (await send(agent, url(), { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    expect(issuer.fetches).toBe(fetchesBefore + 1);
    // Tokens with kids that do not exist: at most one more fetch within the cooldown.
    for (let i = 0; i < 10; i++) {
      const forged = await issuer.sign(claims, { alg: 'ES256', kid: 'rotated-1' });
      const [h, p, sig] = forged.split('.');
      const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: `nope-${i}` })).toString(
        'base64url',
      );
      void h;
      expect(
        (await send(agent, url(), { headers: { authorization: `Bearer ${header}.${p}.${sig}` } }))
          .status,
      ).toBe(401);
    }
    expect(issuer.fetches - fetchesBefore).toBeLessThanOrEqual(2);
  });

  it('serves stale keys while the JWKS endpoint is down', async () => {
    issuer.down = true;
    clock += 120_000; // the cached document is now older than cacheDuration
    const token = await issuer.sign(
      { ...claims, sub: 'stale' },
      { expiresIn: Math.floor(clock / 1000) + 600 },
    );
    expect(
      (await send(agent, url(), { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    issuer.down = false;
  });
});
