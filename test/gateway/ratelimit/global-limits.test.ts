import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Agent } from 'undici';
import { metricsRegistry } from '../../../shared/telemetry/metrics.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { redisServerBinary, RedisServer } from '../../helpers/redis-server.ts';

// Global rate limits in a real redis-server, with in-process gateways and a fake wall clock: two
// gateways share one limit, response costs, and an outage (fail open, or closed), logged once,
// counted in the metrics, with the limit back once Redis is.

const REDIS = redisServerBinary();
if (!REDIS)
  console.warn(
    'SKIPPED: redis-server is not installed (apt-get install redis-server; .ci/run installs it)',
  );

const MINUTE = 60_000;
let clock = Math.ceil(Date.now() / MINUTE) * MINUTE + 5_000;
let redis: RedisServer;
let upstream: EchoServer;
const agent = new Agent({ keepAliveTimeout: 1_000 });
const gateways: GatewayUnderTest[] = [];

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function capturingLogger(lines: LogLine[]) {
  return pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
}

function config(rules: string): string {
  return docs(
    GATEWAY_CLASS,
    gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    serviceYaml('api', 'app', upstream.port),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: orders, namespace: api }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { value: /orders } }]
      backendRefs: [{ name: app, port: 80 }]`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: quota, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: orders }]
  rateLimit:
    global:
      rules:
${rules}`,
  );
}

async function gateway(
  rules: string,
  options: { failureMode?: 'open' | 'closed'; logs?: LogLine[] } = {},
): Promise<GatewayUnderTest> {
  const gw = await startGateway(config(rules), {
    wallClock: () => clock,
    rateLimit: { redisUrl: redis.url, failureMode: options.failureMode ?? 'open' },
    ...(options.logs ? { logger: capturingLogger(options.logs) } : {}),
  });
  gateways.push(gw);
  return gw;
}

const get = (gw: GatewayUnderTest) =>
  send(agent, gw.url(8080, '/orders'), { host: 'api.test' }).then((a) => a);

async function metric(name: string): Promise<number> {
  const m = await metricsRegistry.getSingleMetric(name)?.get();
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

async function waitFor(test: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (test()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

beforeAll(async () => {
  if (!REDIS) return;
  redis = await RedisServer.start(REDIS);
  upstream = await startEchoServer('app');
});

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
  if (REDIS && !redis.running) await redis.restart();
});

afterAll(async () => {
  await agent.close();
  await upstream?.close();
  await redis?.stop();
});

describe.skipIf(!REDIS)('global rate limits in Redis', () => {
  it('shares one limit between two gateways: together they admit exactly the limit', async () => {
    clock += MINUTE;
    const rules = '        - limit: { requests: 50, unit: Minute }';
    const a = await gateway(rules);
    const b = await gateway(rules);
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) {
      const batch = await Promise.all([get(a), get(b)]);
      statuses.push(...batch.map((x) => x.status));
    }
    const admitted = statuses.filter((s) => s === 200).length;
    expect(admitted).toBeLessThanOrEqual(50);
    expect(admitted).toBeGreaterThanOrEqual(49);
    expect(statuses.filter((s) => s === 429).length).toBe(120 - admitted);
    const last = await get(a);
    expect(last.status).toBe(429);
    expect(last.headers['ratelimit-policy']).toBe('"api/quota/global/0";q=50;w=60');
  });

  it('charges a response cost after the response, to later requests', async () => {
    clock += MINUTE;
    const gw = await gateway(`        - limit: { requests: 9, unit: Minute }
          cost: { response: { from: Number, number: 2 } }`);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(gw)).status);
    // Each request costs 1 when it comes and 2 when it is done: 3 of them fit in 9.
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  it('fails open while Redis is down, logs the outage once, counts it, and limits again once Redis is back', async () => {
    clock += MINUTE;
    const logs: LogLine[] = [];
    const rules = '        - limit: { requests: 5, unit: Minute }';
    const open = await gateway(rules, { logs });
    const closed = await gateway(rules, { failureMode: 'closed' });
    await waitFor(() => logs.some((l) => l.msg === 'rate limit backend connected'), 'connected');
    expect((await get(open)).status).toBe(200);
    const errorsBefore = await metric('meshgate_ratelimit_backend_errors_total');
    expect(await metric('meshgate_ratelimit_backend_up')).toBeGreaterThan(0);

    await redis.kill();
    const down = (l: LogLine) => l.msg.startsWith('rate limit backend unreachable');
    await waitFor(() => logs.some(down), 'the outage to be logged');
    // Twice the limit, all admitted; the gateway that fails closed refuses with 500 (RLSE).
    const during: number[] = [];
    for (let i = 0; i < 10; i++) {
      clock += 100;
      during.push((await get(open)).status);
    }
    expect(during).toEqual(Array(10).fill(200));
    const refused = await get(closed);
    expect(refused.status).toBe(500);
    expect(refused.json()).toMatchObject({
      code: 'MG_ERR_RATE_LIMIT_UNAVAILABLE',
      response_flags: 'RLSE',
    });
    expect(logs.filter(down)).toHaveLength(1);
    expect(logs.find(down)).toMatchObject({ level: 40, failureMode: 'open' });
    expect(await metric('meshgate_ratelimit_backend_errors_total')).toBeGreaterThan(errorsBefore);
    expect(await metric('meshgate_ratelimit_backend_up')).toBe(0);

    await redis.restart();
    const up = (l: LogLine) => l.msg.startsWith('rate limit backend reachable again');
    await waitFor(() => logs.some(up), 'the reconnection');
    expect(logs.filter(up)).toHaveLength(1);
    expect(logs.filter(down)).toHaveLength(1);
    // Past the backoff of the last failed lease, the (new, empty) Redis counts again.
    clock += 1_000;
    const after: number[] = [];
    for (let i = 0; i < 8; i++) after.push((await get(open)).status);
    expect(after).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
  });
});
