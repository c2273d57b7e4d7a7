import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { JoinTokenStore } from '../../../shared/identity/join-tokens.ts';
import { ConfigFolder } from '../../helpers/config-folder.ts';
import { closeAll, startTestControlPlane } from '../../helpers/control-plane.ts';
import {
  killControlPlanes,
  startControlPlaneProcess,
} from '../../helpers/control-plane-process.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { GATEWAY_CLASS, gatewayYaml } from '../../helpers/gateway-config.ts';
import { killGateways, startGateway } from '../../helpers/gateway-process.ts';
import { findPortOffset } from '../../helpers/ports.ts';
import { joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import { runLoad, startLoad } from '../../helpers/mesh-load.ts';
import {
  killSidecars,
  startSidecar,
  type ControlPlaneAccess,
  type SidecarProcess,
} from '../../helpers/sidecar-process.ts';

// The two things a mesh must survive while traffic flows: its certificates being replaced (the
// control plane issues them with a short lifetime, renewed at half-life), and the control plane
// going away and coming back (the sidecars keep serving their last good view and reconnect).

const NS = 'web';
const apps: EchoServer[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await killGateways();
  await killSidecars();
  await closeAll();
  await killControlPlanes();
  await Promise.all(apps.splice(0).map((a) => a.close()));
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function twoApps(): Promise<{ front: EchoServer; back: EchoServer; yaml: string }> {
  const front = await startEchoServer('front');
  const back = await startEchoServer('back');
  apps.push(front, back);
  return {
    front,
    back,
    yaml: joinYaml(
      serviceYaml({ name: 'front', namespace: NS, targetPort: front.port }),
      serviceYaml({ name: 'back', namespace: NS, targetPort: back.port }),
      `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: ${NS} }
spec:
  mtls: { mode: STRICT }`,
    ),
  };
}

type Stats = Record<string, { labels: Record<string, string>; value: number }[]>;

async function rotations(s: SidecarProcess): Promise<number> {
  const stats = (await s.admin<Stats>('/stats')).body;
  return stats.meshgate_sidecar_certificate_rotations_total?.[0]?.value ?? 0;
}

/** Waits until the caller's view lists the callee as a mesh endpoint. */
async function meshEndpointKnown(caller: SidecarProcess, key: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const dump = (
      await caller.admin<{ view: { destinations: { service: string; mesh: unknown[] }[] } | null }>(
        '/config_dump',
      )
    ).body;
    if (dump.view?.destinations.some((d) => d.service === key && d.mesh.length > 0)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${key} never became a mesh endpoint in the caller's view`);
}

describe('certificate rotation', () => {
  it('replaces the certificates of both sides again and again under load, and drops no request', async () => {
    const { front, back, yaml } = await twoApps();
    // 4 s certificates: renewed at half-life, so several times during the run.
    const cp = await startTestControlPlane(
      { 'mesh.yaml': yaml },
      { pushDebounceMs: 20, workloadCertTtlMs: 4_000 },
    );
    const caller = await startSidecar(cp, {
      service: 'front',
      namespace: NS,
      appPort: front.port,
      accessLog: 'off',
    });
    const callee = await startSidecar(cp, {
      service: 'back',
      namespace: NS,
      appPort: back.port,
      accessLog: 'off',
    });
    await Promise.all([caller.ready(), callee.ready()]);
    await meshEndpointKnown(caller, `${NS}/back:9080`);
    const [r0caller, r0callee] = [await rotations(caller), await rotations(callee)];
    const serial0 = (await callee.admin<{ identity: { serialNumber: string } }>('/config_dump'))
      .body.identity.serialNumber;

    const result = await runLoad({
      dispatcher: await caller.outbound(),
      host: 'back:9080',
      concurrency: 8,
      minRequests: 200,
      maxRequests: 20_000,
      // Until each side has rotated at least three times while the load ran.
      stop: async () =>
        (await rotations(caller)) >= r0caller + 3 && (await rotations(callee)) >= r0callee + 3,
    });
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(result.sent);
    expect(await rotations(caller)).toBeGreaterThanOrEqual(r0caller + 3);
    expect(await rotations(callee)).toBeGreaterThanOrEqual(r0callee + 3);
    const serial1 = (await callee.admin<{ identity: { serialNumber: string } }>('/config_dump'))
      .body.identity.serialNumber;
    expect(serial1).not.toBe(serial0);
    // The peers' handshakes were verified all along: the callee's app always saw the caller.
    expect(back.requests.at(-1)?.headers['x-forwarded-client-cert']).toContain(
      `URI=spiffe://cluster.local/ns/${NS}/sa/front`,
    );
  });
});

describe('certificate rotation at the edge', () => {
  it('the gateway hands each renewed certificate to its workers, which keep calling the sidecar over mTLS', async () => {
    const { back, yaml } = await twoApps();
    const cp = await startTestControlPlane(
      {
        'mesh.yaml': joinYaml(
          yaml,
          GATEWAY_CLASS,
          gatewayYaml(NS, 'edge', `    - { name: http, port: 80, protocol: HTTP }`),
          `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: back, namespace: ${NS} }
spec:
  parentRefs: [{ name: edge }]
  rules: [{ backendRefs: [{ name: back, port: 9080 }] }]`,
        ),
      },
      { pushDebounceMs: 20, workloadCertTtlMs: 4_000 },
    );
    const callee = await startSidecar(cp, {
      service: 'back',
      namespace: NS,
      appPort: back.port,
      accessLog: 'off',
    });
    await callee.ready();
    const dir = await mkdtemp(join(tmpdir(), 'meshgate-gateway-rotation-'));
    dirs.push(dir);
    await writeFile(join(dir, 'root.pem'), cp.rootPem);
    const offset = await findPortOffset([80]);
    const gateway = startGateway([
      '--control-plane',
      cp.discoveryUrl,
      '--token',
      await cp.tokenFile('meshgate-system', 'meshgate-gateway'),
      '--control-plane-ca',
      join(dir, 'root.pem'),
      '--port-offset',
      String(offset),
      '--workers',
      '2',
    ]);
    await gateway.ready();
    const edge = new Pool(`http://127.0.0.1:${80 + offset}`);
    try {
      for (let i = 0; i < 200; i++) {
        const res = await edge.request({ method: 'GET', path: '/warm', headers: { host: 'x' } });
        await res.body.dump();
        if (res.statusCode === 200) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const renewed = () =>
        gateway.logs.filter((l) => l.msg === 'workload certificate renewed').length;
      const r0 = renewed();
      const result = await runLoad({
        dispatcher: edge,
        host: 'shop.example',
        concurrency: 8,
        minRequests: 200,
        maxRequests: 20_000,
        stop: () => renewed() >= r0 + 3,
      });
      expect(result.failures).toEqual([]);
      expect(result.ok).toBe(result.sent);
      expect(renewed()).toBeGreaterThanOrEqual(r0 + 3);
      expect(back.requests.at(-1)?.headers['x-forwarded-client-cert']).toContain(
        'URI=spiffe://cluster.local/ns/meshgate-system/sa/meshgate-gateway',
      );
    } finally {
      await edge.destroy();
    }
  });
});

describe('control plane restart', () => {
  it('`meshgate control-plane` stopped and started again during traffic: no request fails, the sidecars reconnect', async () => {
    const { front, back, yaml } = await twoApps();
    const config = await ConfigFolder.create({ 'mesh.yaml': yaml });
    dirs.push(config.dir);
    const data = await mkdtemp(join(tmpdir(), 'meshgate-cp-data-'));
    dirs.push(data);
    const args = ['--config', config.dir, '--data', data];
    let cp = startControlPlaneProcess(args);
    const { discoveryPort, adminPort } = await cp.ports();
    const { readFile } = await import('node:fs/promises');
    const rootPem = await readFile(join(data, 'ca/root-cert.pem'), 'utf8');
    const tokens = new JoinTokenStore(data);
    let n = 0;
    const access: ControlPlaneAccess = {
      discoveryUrl: `https://127.0.0.1:${discoveryPort}`,
      rootPem,
      async tokenFile(namespace, serviceAccount) {
        const { token } = await tokens.create({ namespace, serviceAccount });
        const file = join(data, `token-${++n}`);
        await writeFile(file, `${token}\n`, { mode: 0o600 });
        return file;
      },
    };
    const caller = await startSidecar(access, {
      service: 'front',
      namespace: NS,
      appPort: front.port,
      accessLog: 'off',
    });
    const callee = await startSidecar(access, {
      service: 'back',
      namespace: NS,
      appPort: back.port,
      accessLog: 'off',
    });
    await Promise.all([caller.ready(), callee.ready()]);
    await meshEndpointKnown(caller, `${NS}/back:9080`);

    let phase: 'before' | 'away' | 'back' | 'done' = 'before';
    const load = startLoad({
      dispatcher: await caller.outbound(),
      host: 'back.web:9080',
      concurrency: 4,
      maxRequests: 20_000,
      stop: () => phase === 'done',
    });
    const sentBy = async (count: number) => {
      for (let i = 0; i < 2_000 && load.result.sent < count; i++)
        await new Promise((r) => setTimeout(r, 10));
    };
    await sentBy(200);
    const exit = await cp.process.stop();
    expect(exit.code).toBe(0);
    phase = 'away';
    // Traffic goes on while nobody is there to push config or renew certificates.
    const whileAway = load.result.sent;
    await sentBy(whileAway + 200);
    expect(
      (await caller.admin<{ controlPlane: { connected: boolean } }>('/config_dump')).body
        .controlPlane.connected,
    ).toBe(false);
    cp = startControlPlaneProcess([
      ...args,
      '--discovery-port',
      String(discoveryPort),
      '--admin-port',
      String(adminPort),
    ]);
    await cp.ports();
    phase = 'back';
    // Both sidecars are connected again and in sync with the new control plane.
    for (let i = 0; i < 400; i++) {
      const res = await fetch(`http://127.0.0.1:${adminPort}/status`);
      const status = (await res.json()) as { proxies: { state: string }[] };
      if (status.proxies.length === 2 && status.proxies.every((p) => p.state === 'SYNCED')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const status = (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as {
      proxies: { state: string }[];
    };
    expect(status.proxies.map((p) => p.state)).toEqual(['SYNCED', 'SYNCED']);
    await sentBy(load.result.sent + 200);
    phase = 'done';
    const result = await load.finished;
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(result.sent);
    expect(result.sent).toBeGreaterThanOrEqual(600);
  });
});
