import type { ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { isAlive, killGateways, poll, startGateway } from '../../helpers/gateway-process.ts';
import { findPortOffset } from '../../helpers/ports.ts';

let folder: ConfigFolder | undefined;
let upstream: EchoServer | undefined;
let pool: Pool | undefined;
const held: ServerResponse[] = [];

afterEach(async () => {
  for (const res of held.splice(0)) res.destroy();
  await pool?.destroy();
  await killGateways();
  await upstream?.close();
  await folder?.remove();
  folder = upstream = pool = undefined;
});

/** A gateway with two workers in front of an upstream that holds /slow until the test answers. */
async function startTwoWorkers() {
  let arrived!: () => void;
  const slowArrived = new Promise<void>((resolve) => (arrived = resolve));
  upstream = await startEchoServer('slow', (req, res) => {
    if (req.url !== '/slow') return false;
    held.push(res);
    arrived();
    return true;
  });
  folder = await ConfigFolder.create({
    'gateway.yaml': docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    ),
    'services.yaml': serviceYaml('default', 'slow', upstream.port),
    'routes.yaml': httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'slow' }),
  });
  const offset = await findPortOffset([8080]);
  const gw = startGateway([
    '--config',
    folder.dir,
    '--port-offset',
    String(offset),
    '--workers',
    '2',
    '--drain-seconds',
    '20',
  ]);
  await gw.ready();
  const { body } = await gw.admin<{ workers: { pid: number }[] }>('/workers');
  pool = new Pool(`http://127.0.0.1:${8080 + offset}`);
  return { gw, workerPids: body.workers.map((w) => w.pid), slowArrived, client: pool };
}

describe('meshgate gateway signals', () => {
  it("a terminal's Ctrl-C (SIGINT to the whole process group) drains through the primary", async () => {
    const { gw, workerPids } = await startTwoWorkers();
    process.kill(-gw.pid, 'SIGINT');
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    // The workers did not die of the SIGINT: they drained when the primary told them to.
    const exits = gw.logs.filter((l) => l.msg === 'worker exited');
    expect(exits.map((l) => [l.code, l.signal])).toEqual([
      [0, null],
      [0, null],
    ]);
    expect(workerPids.filter(isAlive)).toEqual([]);
  });

  it('workers finish the requests in flight and leave when the primary disappears', async () => {
    const { gw, workerPids, slowArrived, client } = await startTwoWorkers();
    const inflight = client.request({ method: 'GET', path: '/slow', headers: { host: 'x.test' } });
    inflight.catch(() => {}); // awaited below; a failure must not go unhandled first
    await slowArrived;
    process.kill(gw.pid, 'SIGKILL');
    await gw.exited;
    // Still in flight with the primary gone: answered, not cut.
    (held[0] as ServerResponse).writeHead(200).end('late');
    const res = await inflight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('late');
    await poll(
      async () => (workerPids.some(isAlive) ? undefined : true),
      'the orphaned workers to exit',
    );
  });
});
