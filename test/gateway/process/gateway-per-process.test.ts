import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { killGateways, startGateway } from '../../helpers/gateway-process.ts';
import { canBind, findPortOffset } from '../../helpers/ports.ts';

const upstreams: EchoServer[] = [];
let folder: ConfigFolder | undefined;

afterEach(async () => {
  await killGateways();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  await folder?.remove();
  folder = undefined;
});

/** An offset under which port 8080 is free on both addresses (Linux routes all of 127/8 to lo). */
async function offsetFreeOn(hosts: readonly [string, string]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const offset = await findPortOffset([8080], { host: hosts[0] });
    if (await canBind(8080 + offset, hosts[1])) return offset;
  }
  throw new Error('no port offset free on both addresses');
}

interface StatusBody {
  resources: {
    kind: string;
    metadata: { name: string };
    status: { addresses?: unknown; parents?: { parentRef: { name: string } }[] };
  }[];
}

describe('meshgate gateway --gateway', () => {
  it('runs two Gateways with the same port side by side on two addresses', async () => {
    const a = await startEchoServer('a');
    const b = await startEchoServer('b');
    upstreams.push(a, b);
    const listener = '    - { name: http, port: 8080, protocol: HTTP }';
    folder = await ConfigFolder.create({
      'gateways.yaml': docs(
        GATEWAY_CLASS,
        gatewayYaml('default', 'gw-a', listener),
        gatewayYaml('default', 'gw-b', listener),
      ),
      'services.yaml': docs(
        serviceYaml('default', 'a', a.port),
        serviceYaml('default', 'b', b.port),
      ),
      'routes.yaml': docs(
        httpRouteYaml({ name: 'route-a', gateway: 'gw-a', backend: 'a' }),
        httpRouteYaml({ name: 'route-b', gateway: 'gw-b', backend: 'b' }),
      ),
    });
    const hosts = ['127.0.0.2', '127.0.0.3'] as const;
    const offset = await offsetFreeOn(hosts);
    const [gwA, gwB] = (['gw-a', 'gw-b'] as const).map((name, i) =>
      startGateway([
        '--config',
        (folder as ConfigFolder).dir,
        '--gateway',
        `default/${name}`,
        '--listen-host',
        hosts[i] as string,
        '--port-offset',
        String(offset),
        '--workers',
        '1',
      ]),
    ) as [ReturnType<typeof startGateway>, ReturnType<typeof startGateway>];
    await Promise.all([gwA.ready(), gwB.ready()]);

    for (const [host, expected] of [
      [hosts[0], 'a'],
      [hosts[1], 'b'],
    ] as const) {
      const res = await request(`http://${host}:${8080 + offset}/x`, {
        headers: { host: 'shop.test', connection: 'close' },
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-upstream']).toBe(expected);
      await res.body.text();
    }

    for (const [gw, name, route, host] of [
      [gwA, 'gw-a', 'route-a', hosts[0]],
      [gwB, 'gw-b', 'route-b', hosts[1]],
    ] as const) {
      const { body } = await gw.admin<StatusBody>('/status');
      expect(body.resources.map((r) => `${r.kind}/${r.metadata.name}`)).toEqual([
        `Gateway/${name}`,
        `HTTPRoute/${route}`,
      ]);
      expect(body.resources[0]?.status.addresses).toEqual([{ type: 'IPAddress', value: host }]);
      expect(body.resources[1]?.status.parents?.map((p) => p.parentRef.name)).toEqual([name]);
      const routes = (await gw.admin<{ gateways: { gateway: string }[] }>('/routes')).body;
      expect(routes.gateways.map((g) => g.gateway)).toEqual([`default/${name}`]);
    }

    expect((await gwA.stop()).code).toBe(0);
    expect((await gwB.stop()).code).toBe(0);
  });
});
