import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { ConfigFolder } from '../../helpers/config-folder.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { webGatewayFiles } from '../../helpers/gateway-config.ts';
import { gatewayTestFixtures, poll, startGatewayOn8080 } from '../../helpers/gateway-process.ts';

interface Workers {
  version: string;
  desired: number;
  workers: { id: number; pid: number; appliedVersion: string | null; listening: boolean }[];
}

const fx = gatewayTestFixtures();

describe('meshgate gateway --workers', () => {
  it('runs two workers on the same snapshot and replaces one that is killed', async () => {
    fx.upstream = await startEchoServer('web');
    fx.folder = await ConfigFolder.create({
      ...webGatewayFiles(fx.upstream.port),
    });
    const { gw, url } = await startGatewayOn8080(fx.folder.dir, ['--workers', '2']);
    const { version } = await gw.ready();

    const before = (await gw.admin<Workers>('/workers')).body;
    expect(before.desired).toBe(2);
    expect(before.workers).toHaveLength(2);
    for (const w of before.workers)
      expect(w).toMatchObject({ appliedVersion: version, listening: true });
    const victim = (before.workers[0] as Workers['workers'][number]).pid;
    const survivor = (before.workers[1] as Workers['workers'][number]).pid;

    process.kill(victim, 'SIGKILL');
    const replaced = await gw.waitForLog((l) => l.msg === 'worker replaced', 'the replacement');
    expect(replaced.replacedPid).toBe(victim);
    expect(gw.logs.find((l) => l.msg.startsWith('worker exited unexpectedly'))).toMatchObject({
      workerPid: victim,
      signal: 'SIGKILL',
    });

    // The replacement gets the current snapshot and /ready comes back.
    const after = await poll(async () => {
      const body = (await gw.admin<Workers>('/workers')).body;
      return body.workers.length === 2 && body.workers.every((w) => w.appliedVersion === version)
        ? body
        : undefined;
    }, 'the replacement to apply the snapshot');
    expect(after.workers.map((w) => w.pid).sort()).toEqual(
      [survivor, replaced.workerPid as number].sort(),
    );
    expect((await gw.ready()).version).toBe(version);

    const res = await request(`${url}/`, {
      headers: { host: 'x.test', connection: 'close' },
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect((await gw.stop()).code).toBe(0);
  });
});
