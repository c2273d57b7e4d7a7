import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { isAlive, killGateways, poll, startGateway } from '../../helpers/gateway-process.ts';
import { findPortOffset } from '../../helpers/ports.ts';

let upstream: EchoServer | undefined;
let folder: ConfigFolder | undefined;
let pool: Pool | undefined;
const held: ServerResponse[] = [];

afterEach(async () => {
  for (const res of held.splice(0)) res.destroy();
  await pool?.destroy();
  await killGateways();
  await upstream?.close();
  await folder?.remove();
  upstream = folder = pool = undefined;
});

/** Whether a new TCP connection to the port is refused (true) or accepted (false). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('meshgate gateway drain', () => {
  it('on SIGTERM lets the request in flight finish, refuses new connections, and exits 0', async () => {
    // The slow upstream answers /slow only when the test says so (after the checks below), so
    // the request is certainly in flight when SIGTERM arrives and while new connections are tried.
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
    const port = 8080 + offset;
    const gw = startGateway([
      '--config',
      folder.dir,
      '--port-offset',
      String(offset),
      '--workers',
      '1',
      '--drain-seconds',
      '20',
    ]);
    await gw.ready();
    const workerPids = (
      await gw.admin<{ workers: { pid: number }[] }>('/workers')
    ).body.workers.map((w) => w.pid);

    pool = new Pool(`http://127.0.0.1:${port}`);
    const inflight = pool.request({ method: 'GET', path: '/slow', headers: { host: 'x.test' } });
    inflight.catch(() => {}); // awaited below; a failure must not go unhandled first
    await slowArrived;

    gw.signal('SIGTERM');
    await gw.waitForLog((l) => l.msg === 'worker draining', 'the worker to start draining');
    await poll(async () => ((await refused(port)) ? true : undefined), 'new connections refused');
    expect(gw.logs.some((l) => l.msg === 'stopped')).toBe(false);

    const body = JSON.stringify({ slow: 'done' });
    (held[0] as ServerResponse).writeHead(200, { 'content-type': 'application/json' }).end(body);
    const res = await inflight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe(body);

    expect(await gw.exited).toEqual({ code: 0, signal: null });
    expect(gw.logs.find((l) => l.msg === 'stopped')).toMatchObject({ forced: false });
    expect(gw.logs.some((l) => l.msg.startsWith('worker did not finish draining'))).toBe(false);
    expect([gw.pid, ...workerPids].filter(isAlive)).toEqual([]);
  });
});
