// `meshgate control-plane` as a real process: `meshgate token create --control-plane URL` against
// it, a proxy that bootstraps with that token, `meshgate status --json`, and SIGTERM: a goaway to
// every stream and exit 0. A folder that does not parse at start is exit 1.

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { meshgate } from '../../helpers/cli.ts';
import { ConfigFolder } from '../../helpers/config-folder.ts';
import {
  closeAll,
  RecordingClient,
  sidecarHello,
  statusWhen,
  testLogger,
} from '../../helpers/control-plane.ts';
import {
  killControlPlanes,
  startControlPlaneProcess,
} from '../../helpers/control-plane-process.ts';
import type { GatewayProcess } from '../../helpers/gateway-process.ts';

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: bookinfo }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
`;

const folders: string[] = [];
afterEach(async () => {
  await closeAll();
  await killControlPlanes();
  for (const f of folders.splice(0)) await rm(f, { recursive: true, force: true });
});

/** The process's exit, or an error with its logs when it has not exited in time. */
function exitedWithin(p: GatewayProcess, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.exited.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`still running after ${ms} ms\n${p.describe()}`)),
        ms,
      );
    }),
  ]);
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  folders.push(dir);
  return dir;
}

describe('meshgate control-plane (process)', () => {
  it('creates join tokens for `meshgate token create`, serves proxies, reports them in `meshgate status --json`, and stops on SIGTERM', async () => {
    const config = await ConfigFolder.create({ 'services.yaml': SERVICES });
    folders.push(config.dir);
    const data = await tempDir('meshgate-cp-data-');
    const cp = startControlPlaneProcess(['--config', config.dir, '--data', data]);
    const { discoveryPort, adminPort } = await cp.ports();
    const adminUrl = `http://127.0.0.1:${adminPort}`;

    const created = await meshgate([
      'token',
      'create',
      '--namespace',
      'bookinfo',
      '--service-account',
      'reviews',
      '--ttl',
      '10m',
      '--control-plane',
      adminUrl,
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^mgjt_[A-Za-z0-9_-]{43}\n$/);
    expect(created.stderr).toContain('namespace bookinfo, service account reviews');
    const tokenFile = join(data, 'reviews.token');
    await writeFile(tokenFile, created.stdout, { mode: 0o600 });

    // The root was generated in the data folder on first start.
    expect(existsSync(join(data, 'ca/root-key.pem'))).toBe(true);
    const rootPem = await readFile(join(data, 'ca/root-cert.pem'), 'utf8');
    const client = new RecordingClient({
      controlPlaneUrl: `https://127.0.0.1:${discoveryPort}`,
      rootCaPem: rootPem,
      tokenFile,
      hello: sidecarHello('reviews'),
      logger: testLogger('reviews'),
      reconnectBackoff: { initialMs: 50, maxMs: 200 },
    });
    const credentials = await client.client.start();
    const view = await client.client.firstView;
    await statusWhen({ adminUrl }, (p) => p[0]?.state === 'SYNCED', 'synced');

    const status = await meshgate(['status', '--control-plane', adminUrl, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const body = JSON.parse(status.stdout) as { version: string; proxies: unknown[] };
    expect(body.proxies).toEqual([
      {
        proxyId: 'sidecar~bookinfo~reviews',
        kind: 'sidecar',
        identity: 'spiffe://cluster.local/ns/bookinfo/sa/reviews',
        namespace: 'bookinfo',
        service: 'reviews',
        address: '127.0.0.1',
        connectedAt: expect.any(String),
        latestVersion: view.version,
        ackedVersion: view.version,
        state: 'SYNCED',
        certificateExpiry: credentials.notAfter.toISOString(),
      },
    ]);
    expect(body.version).toBe(view.snapshotVersion);

    const reasons: string[] = [];
    client.client.on('disconnected', (reason) => reasons.push(reason));
    cp.process.signal('SIGTERM');
    await client.until(() => reasons.length > 0, 'the goaway');
    expect(reasons[0]).toBe('goaway: the control plane is shutting down');
    expect(await exitedWithin(cp.process, 10_000)).toEqual({ code: 0, signal: null });
    expect(cp.process.logs.map((l) => l.msg)).toContain('stopped');
    // The proxy keeps its view while the control plane is away.
    expect(client.client.currentView).toBe(view);
  });

  it('exits 1 when the config folder does not parse at start, naming the file', async () => {
    const config = await ConfigFolder.create({
      'services.yaml': 'kind: Service\n  metadata: [oops\n',
    });
    folders.push(config.dir);
    const data = await tempDir('meshgate-cp-data-');
    const cp = startControlPlaneProcess(['--config', config.dir, '--data', data]);
    expect((await cp.process.exited).code).toBe(1);
    expect(cp.process.logs.some((l) => l.msg.startsWith('config error: services.yaml'))).toBe(true);
  });

  it('refuses bad flags with the usage (exit 2)', async () => {
    const missing = await meshgate(['control-plane', '--config', '.']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--config DIR and --data DIR are required');
    const ttl = await meshgate([
      'control-plane',
      '--config',
      '.',
      '--data',
      '/tmp',
      '--workload-cert-ttl',
      'soon',
    ]);
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toContain('--workload-cert-ttl soon');
    const unreachable = await meshgate(['status', '--control-plane', 'http://127.0.0.1:1']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('is `meshgate control-plane` running there?');
  });
});
