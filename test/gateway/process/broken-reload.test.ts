import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { killGateways, poll, startGateway, type LogLine } from '../../helpers/gateway-process.ts';
import { findPortOffset } from '../../helpers/ports.ts';

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

describe('meshgate gateway broken reload', () => {
  it('keeps serving the last good config through bad YAML and a schema error, then takes the fix', async () => {
    const a = await startEchoServer('a');
    const b = await startEchoServer('b');
    upstreams.push(a, b);
    folder = await ConfigFolder.create({
      'gateway.yaml': docs(
        GATEWAY_CLASS,
        gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
      ),
      'services.yaml': docs(
        serviceYaml('default', 'a', a.port),
        serviceYaml('default', 'b', b.port),
      ),
      'routes.yaml': httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'a' }),
    });
    const offset = await findPortOffset([8080]);
    const gw = startGateway([
      '--config',
      folder.dir,
      '--port-offset',
      String(offset),
      '--workers',
      '1',
    ]);
    const { version } = await gw.ready();
    pool = new Pool(`http://127.0.0.1:${8080 + offset}`);
    const client = pool;
    const upstream = async () => {
      const res = await client.request({ method: 'GET', path: '/', headers: { host: 'x.test' } });
      await res.body.text();
      return `${res.statusCode} ${String(res.headers['x-upstream'])}`;
    };
    const rejections = () => gw.logs.filter((l) => l.msg.startsWith('reload rejected')).length;
    const configErrors = (): LogLine[] => gw.logs.filter((l) => l.msg.startsWith('config error'));

    // 1. Bad YAML: an unclosed flow sequence.
    await folder.write(
      'routes.yaml',
      'apiVersion: gateway.networking.k8s.io/v1\nkind: [HTTPRoute\n',
    );
    await gw.waitForLog((l) => l.msg.startsWith('reload rejected'), 'the bad YAML to be rejected');
    expect(configErrors()[0]).toMatchObject({ file: 'routes.yaml', doc: 1, line: 3 });
    expect(String(configErrors()[0]?.error)).toContain('invalid YAML');
    expect((await gw.admin<{ version: string }>('/config_dump')).body.version).toBe(version);
    expect(await upstream()).toBe('200 a');

    // 2. Valid YAML, a schema error: the path match type does not exist.
    await folder.write(
      'routes.yaml',
      httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'b' }).replace('PathPrefix', 'Prefix'),
    );
    await poll(async () => (rejections() === 2 ? true : undefined), 'the schema error');
    expect(configErrors()[1]).toMatchObject({
      file: 'routes.yaml',
      doc: 1,
      line: 7,
      field: 'spec.rules[0].matches[0].path.type',
      resource: 'HTTPRoute/web',
    });
    expect((await gw.admin<{ version: string }>('/config_dump')).body.version).toBe(version);
    expect((await gw.admin('/ready')).status).toBe(200);
    expect(await upstream()).toBe('200 a');

    // 3. The fix reloads.
    await folder.write(
      'routes.yaml',
      httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'b' }),
    );
    const fixed = await poll(async () => {
      const v = (await gw.admin<{ version: string }>('/config_dump')).body.version;
      return v !== version ? v : undefined;
    }, 'the fixed config');
    expect((await gw.ready()).version).toBe(fixed);
    expect(await upstream()).toBe('200 b');
    expect(rejections()).toBe(2);
    expect((await gw.stop()).code).toBe(0);
  });
});
