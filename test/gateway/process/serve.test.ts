import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { responseErrors } from '../../helpers/admin-openapi.ts';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { findPortOffset } from '../../helpers/ports.ts';
import { isAlive, gatewayTestFixtures, startGateway } from '../../helpers/gateway-process.ts';

const fx = gatewayTestFixtures();

describe('meshgate gateway', () => {
  it('serves a folder, answers on the admin API, and exits 0 on SIGTERM leaving no process', async () => {
    fx.upstream = await startEchoServer('web');
    fx.folder = await ConfigFolder.create({
      'gateway.yaml': docs(
        GATEWAY_CLASS,
        gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
      ),
      'services.yaml': serviceYaml('default', 'web', fx.upstream.port),
      'routes.yaml': httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'web', path: '/api' }),
    });
    const offset = await findPortOffset([8080]);
    const port = 8080 + offset;
    const gw = startGateway([
      '--config',
      fx.folder.dir,
      '--port-offset',
      String(offset),
      '--workers',
      '1',
    ]);

    const { version } = await gw.ready();
    const res = await request(`http://127.0.0.1:${port}/api/items?x=1`, {
      headers: { host: 'shop.test', connection: 'close' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-upstream']).toBe('web');
    expect(((await res.body.json()) as { path: string }).path).toBe('/api/items?x=1');

    const dump = await gw.admin<{
      version: string;
      view: { gateways: { name: string; listeners: { port: number; boundPort: number }[] }[] };
    }>('/config_dump');
    expect(dump.status).toBe(200);
    expect(dump.body.version).toBe(version);
    expect(dump.body.view.gateways.map((g) => g.name)).toEqual(['edge']);
    expect(dump.body.view.gateways[0]?.listeners[0]).toMatchObject({ port: 8080, boundPort: port });

    const routes = await gw.admin<{
      gateways: { gateway: string; ports: { hostGroups: { matches: { route: string }[] }[] }[] }[];
    }>('/routes');
    expect(routes.status).toBe(200);
    expect(routes.body.gateways[0]?.gateway).toBe('default/edge');
    expect(routes.body.gateways[0]?.ports[0]?.hostGroups[0]?.matches[0]?.route).toBe('default/web');

    const status = await gw.admin<{
      resources: { kind: string; status: { addresses?: unknown; parents?: unknown[] } }[];
    }>('/status');
    expect(status.status).toBe(200);
    const gateway = status.body.resources.find((r) => r.kind === 'Gateway');
    expect(gateway?.status.addresses).toEqual([{ type: 'IPAddress', value: '127.0.0.1' }]);
    expect(status.body.resources.find((r) => r.kind === 'HTTPRoute')?.status.parents).toHaveLength(
      1,
    );

    const workers = await gw.admin<{ workers: { pid: number; appliedVersion: string }[] }>(
      '/workers',
    );
    expect(workers.status).toBe(200);
    expect(workers.body.workers).toHaveLength(1);
    expect(workers.body.workers[0]?.appliedVersion).toBe(version);
    const pids = [gw.pid, ...workers.body.workers.map((w) => w.pid)];
    for (const path of ['/ready', '/config_dump', '/routes', '/status', '/workers']) {
      const r = await gw.admin(path);
      expect(responseErrors(path, r.status, r.body), `${path} matches openapi/admin.yaml`).toEqual(
        [],
      );
    }

    expect(await gw.stop()).toEqual({ code: 0, signal: null });
    expect(pids.filter(isAlive)).toEqual([]);
    expect(gw.logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        'config loaded',
        'worker started',
        'listening',
        'shutting down: draining workers',
        'worker exited',
        'stopped',
      ]),
    );
  });

  it('refuses to start on a folder that does not parse, naming the error', async () => {
    fx.folder = await ConfigFolder.create({ 'bad.yaml': 'kind: [\n' });
    const gw = startGateway(['--config', fx.folder.dir, '--workers', '1']);
    expect((await gw.exited).code).toBe(1);
    expect(gw.logs.find((l) => l.msg.startsWith('config error'))).toMatchObject({
      file: 'bad.yaml',
      doc: 1,
    });
  });

  it('rejects a bad command line with exit code 2', async () => {
    const gw = startGateway(['--config', '/nonexistent', '--workers', 'many']);
    expect((await gw.exited).code).toBe(2);
    expect(gw.stderr).toContain('--workers many');
  });
});
