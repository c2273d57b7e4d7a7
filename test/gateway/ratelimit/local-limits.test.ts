import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { createLogger } from '../../../gateway/access-log.ts';
import { GatewayServer } from '../../../gateway/gateway-server.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import {
  compileConfig,
  startGateway,
  type GatewayUnderTest,
} from '../../helpers/gateway-under-test.ts';
import { send, type Answer } from '../../helpers/http-request.ts';
import { startJwtIssuer, type TestIssuer } from '../../helpers/jwt-issuer.ts';
import { findPortOffset } from '../../helpers/ports.ts';

// BackendTrafficPolicy.rateLimit (local) through the gateway's real listener, in-process, with a
// fake wall clock: exact counts per fixed window, Distinct buckets (headers, source addresses,
// JWT claims through claimToHeaders), shared buckets, several rules, the 429 and the RateLimit
// fields on every answer.

const MINUTE = 60_000;
let upstream: EchoServer;
let issuer: TestIssuer;
const agent = new Agent({ keepAliveTimeout: 1_000 });
/** The gateway's wall clock: a minute boundary a little ahead of real time, moved by the tests. */
let clock = Math.ceil(Date.now() / MINUTE) * MINUTE + MINUTE;
let gw: GatewayUnderTest | undefined;

beforeAll(async () => {
  upstream = await startEchoServer('api');
  issuer = await startJwtIssuer('https://idp.test', ['ES256']);
});

afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

afterAll(async () => {
  await agent.close();
  await upstream.close();
  await issuer.close();
});

function route(name: string, path: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: api }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { value: ${path} } }]
      backendRefs: [{ name: app, port: 80 }]`;
}

function policy(name: string, target: string, rateLimit: string, kind = 'HTTPRoute'): string {
  return `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${name}, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: ${kind}, name: ${target} }]
  rateLimit:
${rateLimit}`;
}

function config(...extra: string[]): string {
  return docs(
    GATEWAY_CLASS,
    gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: { name: edge, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: edge }]
  clientIPDetection: { xForwardedFor: { numTrustedHops: 1 } }`,
    serviceYaml('api', 'app', upstream.port),
    route('orders', '/orders'),
    route('users', '/users'),
    ...extra,
  );
}

async function start(...extra: string[]): Promise<GatewayUnderTest> {
  gw = await startGateway(config(...extra), { wallClock: () => clock });
  return gw;
}

function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return send(agent, (gw as GatewayUnderTest).url(8080, path), {
    host: 'api.test',
    method,
    headers,
  });
}

async function statuses(n: number, path: string, headers: Record<string, string> = {}) {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(path, headers)).status);
  return out;
}

describe('local rate limits', () => {
  it('admits exactly the limit per window, names it on every answer, and answers 429 beyond', async () => {
    clock += 15_000;
    await start(
      policy(
        'orders-quota',
        'orders',
        '    local: { rules: [{ limit: { requests: 5, unit: Minute } }] }',
      ),
    );
    const answers: Answer[] = [];
    for (let i = 0; i < 8; i++) answers.push(await get('/orders'));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    const name = '"api/orders-quota/local/0"';
    answers.slice(0, 5).forEach((a, i) => {
      expect(a.headers['ratelimit-policy']).toBe(`${name};q=5;w=60`);
      expect(a.headers.ratelimit).toBe(`${name};r=${4 - i};t=45`);
    });
    const refused = answers[5] as Answer;
    expect(refused.headers['retry-after']).toBe('45');
    expect(refused.headers['ratelimit-policy']).toBe(`${name};q=5;w=60`);
    expect(refused.headers.ratelimit).toBe(`${name};r=0;t=45`);
    expect(refused.headers['content-type']).toBe('application/problem+json');
    expect(refused.headers['meshgate-response-flags']).toBe('RL');
    expect(refused.json()).toMatchObject({
      type: 'https://meshgate.io/errors/MG_ERR_RATE_LIMITED',
      status: 429,
      code: 'MG_ERR_RATE_LIMITED',
      response_flags: 'RL',
      instance: '/orders',
      detail:
        'The rate limit "api/orders-quota/local/0" allows 5 requests per minute; try again in 45 s.',
    });
    // The refused requests never reached the upstream; another route has no limit.
    expect((await get('/users')).headers.ratelimit).toBeUndefined();
    // The next window starts afresh.
    clock += 45_000;
    const next = await get('/orders');
    expect(next.status).toBe(200);
    expect(next.headers.ratelimit).toBe(`${name};r=4;t=60`);
  });

  it('keeps counting across a reload that leaves the policy as it is', async () => {
    await start(
      policy(
        'orders-quota',
        'orders',
        '    local: { rules: [{ limit: { requests: 3, unit: Hour } }] }',
      ),
    );
    expect(await statuses(2, '/orders')).toEqual([200, 200]);
    const g = gw as GatewayUnderTest;
    const changed = compileConfig(
      config(
        policy(
          'orders-quota',
          'orders',
          '    local: { rules: [{ limit: { requests: 3, unit: Hour } }] }',
        ),
        route('extra', '/extra'),
      ),
    ).snapshot;
    expect((await g.server.apply(changed)).problems).toEqual([]);
    expect(await statuses(2, '/orders')).toEqual([200, 429]);
  });

  it('gives each distinct header value its own bucket', async () => {
    await start(
      policy(
        'per-user',
        'orders',
        `    local:
      rules:
        - clientSelectors: [{ headers: [{ name: x-user, type: Distinct }] }]
          limit: { requests: 2, unit: Minute }`,
      ),
    );
    expect(await statuses(3, '/orders', { 'x-user': 'alice' })).toEqual([200, 200, 429]);
    expect(await statuses(3, '/orders', { 'x-user': 'bob' })).toEqual([200, 200, 429]);
    // No x-user: the rule does not select the request.
    const anonymous = await statuses(4, '/orders');
    expect(anonymous).toEqual([200, 200, 200, 200]);
  });

  it('limits by client address: one bucket per address in a range, the rest unlimited', async () => {
    await start(
      policy(
        'per-client',
        'orders',
        `    local:
      rules:
        - clientSelectors: [{ sourceCIDR: { type: Distinct, value: 10.0.0.0/8 } }]
          limit: { requests: 1, unit: Minute }
        - clientSelectors: [{ sourceCIDR: { value: 192.168.0.0/16 } }]
          limit: { requests: 2, unit: Minute }`,
      ),
    );
    // ClientTrafficPolicy trusts one hop: the client is the last X-Forwarded-For entry.
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    expect(await statuses(2, '/orders', from('10.1.1.1'))).toEqual([200, 429]);
    expect(await statuses(2, '/orders', from('10.2.2.2'))).toEqual([200, 429]);
    // The /16 shares one bucket of 2.
    expect((await get('/orders', from('192.168.1.1'))).status).toBe(200);
    expect(await statuses(2, '/orders', from('192.168.7.7'))).toEqual([200, 429]);
    expect(await statuses(3, '/orders', from('203.0.113.9'))).toEqual([200, 200, 200]);
  });

  it('limits per JWT claim, through claimToHeaders, whatever header the client sends', async () => {
    await start(
      `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: orders-jwt, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: orders }]
  jwt:
    providers:
      - name: idp
        issuer: ${issuer.issuer}
        localJWKS: { type: Inline, inline: '${JSON.stringify(issuer.jwks)}' }
        claimToHeaders: [{ header: x-subject, claim: sub }]`,
      policy(
        'per-subject',
        'orders',
        `    local:
      rules:
        - clientSelectors: [{ headers: [{ name: x-subject, type: Distinct }] }]
          limit: { requests: 2, unit: Minute }`,
      ),
    );
    const alice = await issuer.sign({ sub: 'alice' }, { alg: 'ES256' });
    const bob = await issuer.sign({ sub: 'bob' }, { alg: 'ES256' });
    const as = (token: string, extra: Record<string, string> = {}) => ({
      authorization: `Bearer ${token}`,
      ...extra,
    });
    expect(await statuses(2, '/orders', as(alice))).toEqual([200, 200]);
    // Claiming to be someone else in the header changes nothing: the verified claim wins.
    expect((await get('/orders', as(alice, { 'x-subject': 'mallory' }))).status).toBe(429);
    expect(await statuses(3, '/orders', as(bob))).toEqual([200, 200, 429]);
    // Without a token there is no request to count: authentication answers first.
    expect((await get('/orders', { 'x-subject': 'carol' })).status).toBe(401);
  });

  it('shares one bucket across every route of a shared rule, and not otherwise', async () => {
    await start(
      policy(
        'edge-quota',
        'edge',
        `    local:
      rules:
        - clientSelectors: [{ methods: [{ value: POST }] }]
          limit: { requests: 3, unit: Minute }
          shared: true
        - limit: { requests: 2, unit: Minute }`,
        'Gateway',
      ),
    );
    // GET: only the per-route default rule (2 per route).
    expect(await statuses(3, '/orders')).toEqual([200, 200, 429]);
    expect(await statuses(3, '/users')).toEqual([200, 200, 429]);
    clock += MINUTE;
    // POST: the shared rule of 3 across both routes, and each route's own 2.
    const post = (path: string) => get(path, {}, 'POST').then((a) => a.status);
    expect([
      await post('/orders'),
      await post('/users'),
      await post('/orders'),
      await post('/users'),
    ]).toEqual([200, 200, 200, 429]);
    // The refused POST spent nothing: /users still has one of its own 2, /orders none.
    expect(await statuses(2, '/users')).toEqual([200, 429]);
    expect(await statuses(1, '/orders')).toEqual([429]);
  });

  it('names the rule with the least left, and follows xRateLimitHeaders', async () => {
    // At the start of an hour, so that both windows are whole.
    clock = Math.ceil(clock / (60 * MINUTE)) * 60 * MINUTE;
    await start(
      policy(
        'two-rules',
        'orders',
        `    local:
      rules:
        - limit: { requests: 100, unit: Hour }
        - clientSelectors: [{ headers: [{ name: x-plan, value: free }] }]
          limit: { requests: 3, unit: Minute }
          xRateLimitHeaders: DraftVersion03`,
      ),
      policy(
        'quiet',
        'users',
        `    local:
      rules:
        - limit: { requests: 1, unit: Minute }
          xRateLimitHeaders: Disabled`,
      ),
    );
    const paid = await get('/orders');
    expect(paid.headers.ratelimit).toBe('"api/two-rules/local/0";r=99;t=3600');
    expect(paid.headers['x-ratelimit-limit']).toBeUndefined();
    const free = await get('/orders', { 'x-plan': 'free' });
    expect(free.headers['ratelimit-policy']).toBe('"api/two-rules/local/1";q=3;w=60');
    expect(free.headers.ratelimit).toBe('"api/two-rules/local/1";r=2;t=60');
    expect(free.headers['x-ratelimit-limit']).toBe('3, 3;w=60');
    expect(free.headers['x-ratelimit-remaining']).toBe('2');
    expect(free.headers['x-ratelimit-reset']).toBe('60');
    const quiet = [await get('/users'), await get('/users')];
    expect(quiet.map((a) => a.status)).toEqual([200, 429]);
    expect(quiet[0]?.headers.ratelimit).toBeUndefined();
    expect(quiet[1]?.headers.ratelimit).toBeUndefined();
    expect(quiet[1]?.headers['retry-after']).toBe('60');
  });

  it('charges a request cost, and a cost of 0 only checks', async () => {
    await start(
      policy(
        'costly',
        'orders',
        `    local:
      rules:
        - clientSelectors: [{ methods: [{ value: POST }] }]
          limit: { requests: 10, unit: Hour }
          cost: { request: { from: Number, number: 4 } }
        - clientSelectors: [{ methods: [{ value: GET }] }]
          limit: { requests: 1, unit: Hour }
          cost: { request: { from: Number, number: 0 } }`,
      ),
    );
    const post = async () => (await get('/orders', {}, 'POST')).status;
    expect([await post(), await post(), await post()]).toEqual([200, 200, 429]);
    expect(await statuses(3, '/orders')).toEqual([200, 200, 200]);
  });
});

describe('a rate limit that cannot be applied', () => {
  it('fails its routes closed (500) and says why', async () => {
    const snapshot = compileConfig(
      config(
        policy(
          'by-metadata',
          'orders',
          `    local:
      rules:
        - limit: { requests: 10, unit: Minute }
          cost: { request: { from: Metadata, metadata: { namespace: io.example, key: cost } } }`,
        ),
      ),
    ).snapshot;
    const offset = await findPortOffset([8080]);
    const server = new GatewayServer({
      listenHost: '127.0.0.1',
      portOffset: offset,
      logger: createLogger('off'),
    });
    try {
      const applied = await server.apply(snapshot);
      expect(applied.problems).toEqual([
        'BackendTrafficPolicy BackendTrafficPolicy/api/by-metadata: spec.rateLimit.local.rules[0].cost: a cost from request metadata is not supported (meshgate has no dynamic metadata); use from: Number; its routes answer 500',
      ]);
      const res = await send(agent, `http://127.0.0.1:${8080 + offset}/orders`, {
        host: 'api.test',
      });
      expect(res.status).toBe(500);
      expect(res.json()).toMatchObject({ code: 'MG_ERR_INVALID_CONFIG' });
    } finally {
      await server.close();
    }
  });
});
