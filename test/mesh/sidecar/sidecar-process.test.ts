import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshgate } from '../../helpers/cli.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { FakeDiscovery, viewOf } from '../../helpers/fake-discovery.ts';
import { joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import { killSidecars, startSidecar } from '../../helpers/sidecar-process.ts';

// `meshgate sidecar` as a process: its flags (and the gateway's mesh flags), and SIGTERM: it leaves the registry (its stream
// ends), stops accepting, lets the request in flight finish, and exits 0.

let discovery: FakeDiscovery;
let app: EchoServer;
let release: (() => void) | undefined;
let arrived: (() => void) | undefined;

beforeAll(async () => {
  discovery = await FakeDiscovery.start();
  // /slow is answered when the test says so: the request is in flight until then.
  app = await startEchoServer('app', (req, res) => {
    if (req.url !== '/slow') return false;
    arrived?.();
    release = () => res.end('slow done');
    return true;
  });
  discovery.push(
    viewOf('v1', joinYaml(serviceYaml({ name: 'app', namespace: 'ns', targetPort: app.port }))),
  );
});

afterAll(async () => {
  await killSidecars();
  await discovery.close();
  await app.close();
});

describe('meshgate sidecar (process)', () => {
  it('refuses incomplete or wrong flags with the usage (exit 2)', async () => {
    const missing = await meshgate(['sidecar', '--service', 'a']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--namespace is required');
    expect(missing.stderr).toContain('usage: meshgate sidecar --service NAME');
    const base = [
      'sidecar',
      '--service',
      'a',
      '--namespace',
      'ns',
      '--service-account',
      'a',
      '--app-port',
      '8080',
      '--token',
      '/etc/hostname',
      '--control-plane-ca',
      '/etc/hostname',
    ];
    const plain = await meshgate([...base, '--control-plane', 'http://127.0.0.1:15010']);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('expected the discovery URL, https://HOST:15010');
    const labels = await meshgate([
      ...base,
      '--control-plane',
      'https://127.0.0.1:15010',
      '--labels',
      'app',
    ]);
    expect(labels.code).toBe(2);
    expect(labels.stderr).toContain('--labels app: expected k=v,k=v');
    const help = await meshgate(['help']);
    expect(help.stdout).toContain('meshgate sidecar --service NAME --namespace NS');
  });

  it('meshgate gateway: --config or the three mesh flags, not both', async () => {
    const both = await meshgate([
      'gateway',
      '--config',
      '/tmp',
      '--control-plane',
      'https://127.0.0.1:15010',
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --config DIR (standalone) or --control-plane URL');
    const partial = await meshgate(['gateway', '--control-plane', 'https://127.0.0.1:15010']);
    expect(partial.code).toBe(2);
    expect(partial.stderr).toContain(
      '--control-plane URL, --token FILE and --control-plane-ca FILE go together',
    );
  });

  it('SIGTERM: leaves the mesh, finishes the request in flight, refuses new connections, exits 0', async () => {
    const sidecar = await startSidecar(discovery, {
      service: 'app',
      namespace: 'ns',
      appPort: app.port,
    });
    await sidecar.ready();
    await discovery.until(() => (discovery.streams.length === 1 ? true : undefined), 'the stream');
    const ports = await sidecar.ports();
    // PERMISSIVE (no PeerAuthentication): a plaintext caller is served.
    const pool = new Pool(`http://127.0.0.1:${ports.inbound}`);
    try {
      const inFlight = new Promise<void>((resolve) => (arrived = resolve));
      const response = pool.request({ method: 'GET', path: '/slow', headers: { host: 'app' } });
      await inFlight;
      sidecar.process.signal('SIGTERM');
      await sidecar.process.waitForLog((l) => l.msg === 'draining', 'the drain');
      // Its stream ended: the control plane deregisters it.
      await discovery.until(
        () => (discovery.streams.length === 0 ? true : undefined),
        'the stream to end',
      );
      const fresh = new Pool(`http://127.0.0.1:${ports.inbound}`);
      await expect(
        fresh.request({ method: 'GET', path: '/after', headers: { host: 'app' } }),
      ).rejects.toThrow();
      await fresh.destroy();
      (release as () => void)();
      const res = await response;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('slow done');
      const exit = await sidecar.process.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      const stopped = sidecar.logs.find((l) => l.msg === 'stopped');
      expect(stopped?.inflightLeft).toBe(0);
    } finally {
      await pool.destroy();
    }
  });
});
