import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigFolder } from '../../helpers/config-folder.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { webGatewayFiles } from '../../helpers/gateway-config.ts';
import { killGateways, sleep, startGatewayOn8080 } from '../../helpers/gateway-process.ts';
import { redisServerBinary, RedisServer } from '../../helpers/redis-server.ts';
import { fire, outsideWindowEdge } from './traffic.ts';

// Global limits on real processes: `meshgate gateway --rate-limit-redis` gateways, each with two
// workers, sharing one limit in a real redis-server; and a Redis outage in the middle of traffic.

const REDIS = redisServerBinary();
if (!REDIS)
  console.warn(
    'SKIPPED: redis-server is not installed (apt-get install redis-server; .ci/run installs it)',
  );

let redis: RedisServer;
let upstream: EchoServer;
const folders: ConfigFolder[] = [];

/** The policy's name is in its Redis keys: each test names its own, so counts do not carry over. */
async function configFolder(policy: string, limit: number): Promise<ConfigFolder> {
  const folder = await ConfigFolder.create({
    ...webGatewayFiles(upstream.port),
    'quota.yaml': `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: ${policy}, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: web }]
  rateLimit:
    global:
      rules:
        - limit: { requests: ${limit}, unit: Day }`,
  });
  folders.push(folder);
  return folder;
}

async function gateway(folder: ConfigFolder) {
  const { gw, url } = await startGatewayOn8080(folder.dir, [
    '--workers',
    '2',
    '--rate-limit-redis',
    redis.url,
  ]);
  await gw.ready();
  await gw.waitForLog((l) => l.msg === 'rate limit backend connected', 'the Redis connection');
  return { gw, url: `${url}/` };
}

beforeAll(async () => {
  if (!REDIS) return;
  redis = await RedisServer.start(REDIS);
  upstream = await startEchoServer('web');
});

afterEach(async () => {
  await killGateways();
  await Promise.all(folders.splice(0).map((f) => f.remove()));
  if (REDIS && !redis.running) await redis.restart();
});

afterAll(async () => {
  await upstream?.close();
  await redis?.stop();
});

describe.skipIf(!REDIS)('global rate limits across gateway processes', () => {
  it('two gateways sharing one limit admit, together, within 1% of it', async () => {
    await outsideWindowEdge('Day');
    const limit = 300;
    const folder = await configFolder('shared-quota', limit);
    const [a, b] = await Promise.all([gateway(folder), gateway(folder)]);
    const statuses = await fire([a.url, b.url], 2 * limit, 8);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    const admitted = statuses.filter((s) => s === 200).length;
    expect(admitted).toBeLessThanOrEqual(limit);
    expect(admitted).toBeGreaterThanOrEqual(limit * 0.99);
    expect((await a.gw.stop()).code).toBe(0);
    expect((await b.gw.stop()).code).toBe(0);
  });

  it('fails open while Redis is down, logs the outage once, and limits again after it is back', async () => {
    await outsideWindowEdge('Day');
    const limit = 20;
    const { gw, url } = await gateway(await configFolder('outage-quota', limit));
    expect(await fire([url], 5, 1)).toEqual(Array(5).fill(200));

    await redis.kill();
    const down = (l: { msg: string }) => l.msg.startsWith('rate limit backend unreachable');
    await gw.waitForLog(down, 'the outage to be logged');
    // Twice the limit while Redis is down: every request admitted, one log line for it all.
    expect(await fire([url], 2 * limit, 4)).toEqual(Array(2 * limit).fill(200));
    expect(gw.logs.filter(down)).toHaveLength(1);
    expect(gw.logs.find(down)).toMatchObject({ level: 40, failureMode: 'open' });

    await redis.restart();
    const up = await gw.waitForLog(
      (l) => l.msg.startsWith('rate limit backend reachable again'),
      'the reconnection',
    );
    expect(up.errors).toBeGreaterThan(0);
    // The workers ask again once the backoff after their last failed lease (500 ms) is over.
    await sleep(600);
    const after = await fire([url], 2 * limit, 4);
    const admitted = after.filter((s) => s === 200).length;
    expect(admitted).toBeLessThanOrEqual(limit);
    expect(admitted).toBeGreaterThanOrEqual(limit - 2);
    expect(after.filter((s) => s === 429)).toHaveLength(2 * limit - admitted);
    expect(gw.logs.filter(down)).toHaveLength(1);
    expect((await gw.stop()).code).toBe(0);
  });
});
