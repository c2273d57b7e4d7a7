import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { findPortOffset } from '../../helpers/ports.ts';
import { killGateways, poll, startGateway } from '../../helpers/gateway-process.ts';

const RELOADS = 20;
const CLIENTS = 4;
/** Hard cap on requests, so the load loop ends even if the reloads never do. */
const MAX_REQUESTS = 50_000;

const upstreams: EchoServer[] = [];
let folder: ConfigFolder | undefined;
let pool: Pool | undefined;

afterEach(async () => {
  await pool?.destroy();
  await killGateways();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  await folder?.remove();
  folder = pool = undefined;
});

describe('meshgate gateway hot reload', () => {
  it(`swaps the config ${RELOADS} times under load without failing a request`, async () => {
    const a = await startEchoServer('a');
    const b = await startEchoServer('b');
    upstreams.push(a, b);
    const route = (backend: string) => httpRouteYaml({ name: 'web', gateway: 'edge', backend });
    folder = await ConfigFolder.create({
      'gateway.yaml': docs(
        GATEWAY_CLASS,
        gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
      ),
      'services.yaml': docs(
        serviceYaml('default', 'a', a.port),
        serviceYaml('default', 'b', b.port),
      ),
      'routes.yaml': route('a'),
    });
    const offset = await findPortOffset([8080]);
    const port = 8080 + offset;
    const gw = startGateway([
      '--config',
      folder.dir,
      '--port-offset',
      String(offset),
      '--workers',
      '2',
    ]);
    let { version } = await gw.ready();

    pool = new Pool(`http://127.0.0.1:${port}`, { connections: CLIENTS, pipelining: 1 });
    const client = pool;
    const tally = { ok: 0, failed: [] as string[], upstreams: new Map<string, number>() };
    let reloading = true;
    let sent = 0;
    const loop = async () => {
      while (reloading && sent < MAX_REQUESTS) {
        sent++;
        try {
          const res = await client.request({
            method: 'GET',
            path: '/load',
            headers: { host: 'shop.test' },
          });
          await res.body.text();
          if (res.statusCode >= 200 && res.statusCode < 300) tally.ok++;
          else tally.failed.push(`status ${res.statusCode}`);
          const up = String(res.headers['x-upstream']);
          tally.upstreams.set(up, (tally.upstreams.get(up) ?? 0) + 1);
        } catch (err) {
          tally.failed.push((err as Error).message);
        }
      }
    };
    const load = Promise.all(Array.from({ length: CLIENTS }, loop));

    const versions = new Set([version]);
    try {
      for (let i = 1; i <= RELOADS; i++) {
        await folder.write('routes.yaml', route(i % 2 === 1 ? 'b' : 'a'));
        const previous = version;
        version = await poll(async () => {
          const v = (await gw.admin<{ version: string }>('/config_dump')).body.version;
          return v !== previous ? v : undefined;
        }, `reload ${i} to change the config_dump version`);
        versions.add(version);
      }
      // Every worker has the last one before the load stops, so both backends took requests.
      await gw.ready();
    } finally {
      reloading = false;
      await load;
    }

    expect(tally.failed).toEqual([]);
    expect(tally.ok).toBeGreaterThan(0);
    expect(tally.upstreams.get('a')).toBeGreaterThan(0);
    expect(tally.upstreams.get('b')).toBeGreaterThan(0);
    // Two configs alternate: a content hash gives each its own version, and the same one back.
    expect(versions.size).toBe(2);
    expect(gw.logs.filter((l) => l.msg === 'config loaded')).toHaveLength(RELOADS + 1);
    expect((await gw.stop()).code).toBe(0);
  }, 60_000);
});
