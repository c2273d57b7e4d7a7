import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import {
  compileConfig,
  startGateway,
  type GatewayUnderTest,
} from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { startJwtIssuer, type TestIssuer } from '../../helpers/jwt-issuer.ts';

// apiKeyAuth, authorization (claims, scopes, client CIDR, headers, methods) and SecurityPolicy CORS
// through the gateway's real listener.

let upstream: EchoServer;
let issuer: TestIssuer;
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1000 });
const KEYS = {
  'partner-a': 'key-aaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'partner-b': 'key-bbbbbbbbbbbbbbbbbbbbbbbbbbbb',
};

function route(name: string, path: string) {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: api }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { value: ${path} } }]
      backendRefs: [{ name: app, port: 80 }]`;
}

function config() {
  return docs(
    GATEWAY_CLASS,
    gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    serviceYaml('api', 'app', upstream.port),
    route('keys', '/keys'),
    route('claims', '/claims'),
    route('cidr', '/cidr'),
    `apiVersion: v1
kind: Secret
metadata: { name: partner-keys, namespace: api }
type: Opaque
stringData:
  partner-a: ${KEYS['partner-a']}
  partner-b: ${KEYS['partner-b']}`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: keys, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: keys }]
  apiKeyAuth:
    credentialRefs: [{ name: partner-keys }]
    extractFrom: [{ headers: [x-api-key] }, { params: [api_key] }]
    forwardClientIDHeader: x-consumer
    sanitize: true
  cors:
    allowOrigins: ["https://*.example.com"]
    allowMethods: [GET, POST]
    allowHeaders: [x-api-key]
    maxAge: 10m`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: claims, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: claims }]
  jwt:
    providers:
      - name: idp
        issuer: ${issuer.issuer}
        localJWKS: { type: Inline, inline: '${JSON.stringify(issuer.jwks)}' }
  authorization:
    defaultAction: Deny
    rules:
      - name: admins-write
        action: Allow
        operation: { methods: [POST, DELETE] }
        principal:
          jwt: { provider: idp, claims: [{ name: roles, valueType: StringArray, values: [admin] }] }
      - name: readers
        action: Allow
        operation: { methods: [GET] }
        principal:
          jwt: { provider: idp, scopes: [orders.read] }`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: cidr, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: cidr }]
  authorization:
    defaultAction: Allow
    rules:
      - name: block-loopback
        action: Deny
        principal: { clientCIDRs: [127.0.0.0/8] }`,
  );
}

beforeAll(async () => {
  upstream = await startEchoServer('app');
  issuer = await startJwtIssuer('https://idp.test', ['ES256']);
  gw = await startGateway(config());
});

afterAll(async () => {
  await gw?.close();
  await issuer?.close();
  await upstream?.close();
  await agent.close();
});

describe('API keys', () => {
  it('admits a known key, forwards the consumer name and strips the key', async () => {
    const res = await send(agent, gw.url(8080, '/keys'), {
      headers: { 'x-api-key': KEYS['partner-b'] },
    });
    expect(res.status).toBe(200);
    expect(res.echo().headers['x-consumer']).toBe('partner-b');
    expect(res.echo().headers['x-api-key']).toBeUndefined();
  });

  it('takes the key from a query parameter and removes it from the forwarded query', async () => {
    const res = await send(agent, gw.url(8080, `/keys/x?api_key=${KEYS['partner-a']}&page=2`));
    expect(res.status).toBe(200);
    expect(res.echo().path).toBe('/keys/x?page=2');
  });

  it('refuses a missing or unknown key with 401', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { 'x-api-key': 'key-cccccccccccccccccccccccccccc' },
      { 'x-api-key': KEYS['partner-a'].slice(0, -1) },
    ];
    for (const headers of attempts) {
      const res = await send(agent, gw.url(8080, '/keys'), { headers });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('APIKey realm="meshgate"');
      expect(res.json<{ detail: string }>().detail).toBe('A valid API key is required.');
    }
  });

  it('keeps only digests of the keys in the snapshot', () => {
    const { snapshot } = compileConfig(config());
    const text = JSON.stringify(snapshot);
    expect(text).not.toContain(KEYS['partner-a']);
    expect(snapshot.policySecrets['api/partner-keys']?.['partner-a']).toMatch(
      /^sha256:[0-9a-f]{64}$/,
    );
  });

  it('answers CORS preflights from the policy, before authentication', async () => {
    const res = await send(agent, gw.url(8080, '/keys'), {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'x-api-key',
      },
    });
    expect(res.status, res.body).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(res.headers['access-control-allow-methods']).toBe('GET, POST');
    expect(res.headers['access-control-max-age']).toBe('600');
    const denied = await send(agent, gw.url(8080, '/keys'), {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.test', 'access-control-request-method': 'POST' },
    });
    expect(denied.headers['access-control-allow-origin']).toBeUndefined();
    const actual = await send(agent, gw.url(8080, '/keys'), {
      headers: { origin: 'https://app.example.com', 'x-api-key': KEYS['partner-a'] },
    });
    expect(actual.headers['access-control-allow-origin']).toBe('https://app.example.com');
  });
});

describe('authorization', () => {
  it('allows by scope and by array claim, per method, and denies by default with 403', async () => {
    const reader = await issuer.sign({ scope: 'orders.read profile' }, { alg: 'ES256' });
    const admin = await issuer.sign({ roles: ['user', 'admin'] }, { alg: 'ES256' });
    const nobody = await issuer.sign({ roles: ['user'] }, { alg: 'ES256' });
    const call = (token: string, method = 'GET') =>
      send(agent, gw.url(8080, '/claims'), {
        method,
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await call(reader)).status).toBe(200);
    expect((await call(reader, 'POST')).status).toBe(403);
    expect((await call(admin, 'DELETE')).status).toBe(200);
    const denied = await call(nobody);
    expect(denied.status).toBe(403);
    expect(denied.json()).toMatchObject({
      code: 'MG_ERR_FORBIDDEN',
      response_flags: 'RBAC',
      detail: 'Access to this resource is denied.',
    });
  });

  it('denies by client CIDR', async () => {
    expect((await send(agent, gw.url(8080, '/cidr'))).status).toBe(403);
  });
});
