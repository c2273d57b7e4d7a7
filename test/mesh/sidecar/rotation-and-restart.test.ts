import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import {
  connect as netConnect,
  createServer as createNetServer,
  type AddressInfo,
  type Socket,
} from 'node:net';
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
import { killGateways } from '../../helpers/gateway-process.ts';
import { startMeshGateway } from '../../helpers/mesh-gateway.ts';
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

/** An edge Gateway whose one route sends everything to the back Service. */
const EDGE_TO_BACK = joinYaml(
  GATEWAY_CLASS,
  gatewayYaml(NS, 'edge', `    - { name: http, port: 80, protocol: HTTP }`),
  `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: back, namespace: ${NS} }
spec:
  parentRefs: [{ name: edge }]
  rules: [{ backendRefs: [{ name: back, port: 9080 }] }]`,
);

type Stats = Record<string, { labels: Record<string, string>; value: number }[]>;

/** Waits until the gateway answers 200 through its route (its view and mTLS pools are up). */
async function edgeServes(edge: Pool): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const res = await edge.request({ method: 'GET', path: '/warm', headers: { host: 'x' } });
    await res.body.dump();
    if (res.statusCode === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rotations(s: SidecarProcess): Promise<number> {
  const stats = (await s.admin<Stats>('/stats')).body;
  return stats.meshgate_sidecar_certificate_rotations_total?.[0]?.value ?? 0;
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
    await caller.meshEndpointsFor(`${NS}/back:9080`);
    const [r0caller, r0callee] = [await rotations(caller), await rotations(callee)];
    const serial0 = (await callee.admin<{ identity: { serialNumber: string } }>('/config_dump'))
      .body.identity.serialNumber;

    const result = await runLoad({
      dispatcher: await caller.outbound(),
      host: 'back:9080',
      concurrency: 8,
      minRequests: 200,
      maxRequests: 200_000,
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
      { 'mesh.yaml': joinYaml(yaml, EDGE_TO_BACK) },
      { pushDebounceMs: 20, workloadCertTtlMs: 4_000 },
    );
    const callee = await startSidecar(cp, {
      service: 'back',
      namespace: NS,
      appPort: back.port,
      accessLog: 'off',
    });
    await callee.ready();
    const { gateway, offset } = await startMeshGateway(cp);
    await gateway.ready();
    const edge = new Pool(`http://127.0.0.1:${80 + offset}`);
    try {
      await edgeServes(edge);
      const renewed = () =>
        gateway.logs.filter((l) => l.msg === 'workload certificate renewed').length;
      const r0 = renewed();
      const result = await runLoad({
        dispatcher: edge,
        host: 'shop.example',
        concurrency: 8,
        minRequests: 200,
        maxRequests: 200_000,
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

/** `meshgate control-plane` as a process on a config and a data folder, with what proxies need. */
async function controlPlaneProcess(yaml: string): Promise<{
  access: ControlPlaneAccess;
  discoveryPort: number;
  adminPort: number;
  /** SIGTERM (expecting exit 0), then a new process on the same folders and ports. */
  stop(): Promise<void>;
  restart(): Promise<void>;
}> {
  const config = await ConfigFolder.create({ 'mesh.yaml': yaml });
  dirs.push(config.dir);
  const data = await mkdtemp(join(tmpdir(), 'meshgate-cp-data-'));
  dirs.push(data);
  const args = ['--config', config.dir, '--data', data];
  let cp = startControlPlaneProcess(args);
  const { discoveryPort, adminPort } = await cp.ports();
  const rootPem = await readFile(join(data, 'ca/root-cert.pem'), 'utf8');
  const tokens = new JoinTokenStore(data);
  let n = 0;
  return {
    discoveryPort,
    adminPort,
    access: {
      discoveryUrl: `https://127.0.0.1:${discoveryPort}`,
      rootPem,
      async tokenFile(namespace, serviceAccount) {
        const { token } = await tokens.create({ namespace, serviceAccount });
        const file = join(data, `token-${++n}`);
        await writeFile(file, `${token}\n`, { mode: 0o600 });
        return file;
      },
    },
    async stop() {
      const exit = await cp.process.stop();
      expect(exit.code).toBe(0);
    },
    async restart() {
      cp = startControlPlaneProcess([
        ...args,
        '--discovery-port',
        String(discoveryPort),
        '--admin-port',
        String(adminPort),
      ]);
      await cp.ports();
    },
  };
}

/** Waits until `count` proxies are connected to the control plane and SYNCED. */
async function allSynced(adminPort: number, count: number): Promise<void> {
  let states: string[] = [];
  for (let i = 0; i < 400; i++) {
    const res = await fetch(`http://127.0.0.1:${adminPort}/status`);
    const status = (await res.json()) as { proxies: { state: string }[] };
    states = status.proxies.map((p) => p.state);
    if (states.length === count && states.every((s) => s === 'SYNCED')) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(states).toEqual(Array.from({ length: count }, () => 'SYNCED'));
}

describe('control plane restart', () => {
  it('`meshgate control-plane` stopped and started again during traffic: no request fails, the sidecars reconnect', async () => {
    const { front, back, yaml } = await twoApps();
    const cp = await controlPlaneProcess(yaml);
    const caller = await startSidecar(cp.access, {
      service: 'front',
      namespace: NS,
      appPort: front.port,
      accessLog: 'off',
    });
    const callee = await startSidecar(cp.access, {
      service: 'back',
      namespace: NS,
      appPort: back.port,
      accessLog: 'off',
    });
    await Promise.all([caller.ready(), callee.ready()]);
    await caller.meshEndpointsFor(`${NS}/back:9080`);

    let phase: 'before' | 'away' | 'back' | 'done' = 'before';
    const load = startLoad({
      dispatcher: await caller.outbound(),
      host: 'back.web:9080',
      concurrency: 4,
      maxRequests: 200_000,
      stop: () => phase === 'done',
    });
    const sentBy = async (count: number) => {
      for (let i = 0; i < 2_000 && load.result.sent < count; i++)
        await new Promise((r) => setTimeout(r, 10));
    };
    await sentBy(200);
    await cp.stop();
    phase = 'away';
    // Traffic goes on while nobody is there to push config or renew certificates.
    const whileAway = load.result.sent;
    await sentBy(whileAway + 200);
    expect(
      (await caller.admin<{ controlPlane: { connected: boolean } }>('/config_dump')).body
        .controlPlane.connected,
    ).toBe(false);
    await cp.restart();
    phase = 'back';
    // Both sidecars are connected again and in sync with the new control plane.
    await allSynced(cp.adminPort, 2);
    await sentBy(load.result.sent + 200);
    phase = 'done';
    const result = await load.finished;
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(result.sent);
    expect(result.sent).toBeGreaterThanOrEqual(600);
  });

  // Regression: a restarted control plane starts with an empty registry, and its first views to
  // the proxies that reconnected first omitted the sidecars not back yet: the gateway, which keeps
  // no endpoints of its own, answered 503 UH until the callee's sidecar had reconnected too.
  it('with a gateway and two sidecars under load: no request fails while the callee is the last to come back', async () => {
    const { front, back, yaml } = await twoApps();
    const cp = await controlPlaneProcess(joinYaml(yaml, EDGE_TO_BACK));
    // The callee reaches the control plane through a door the test holds shut after the restart,
    // so it comes back last whatever the reconnect backoffs draw.
    const door = await controlPlaneDoor(cp.discoveryPort);
    const caller = await startSidecar(cp.access, {
      service: 'front',
      namespace: NS,
      appPort: front.port,
      accessLog: 'off',
    });
    const callee = await startSidecar(
      { ...cp.access, discoveryUrl: door.url },
      { service: 'back', namespace: NS, appPort: back.port, accessLog: 'off' },
    );
    const { gateway, offset } = await startMeshGateway(cp.access);
    await Promise.all([caller.ready(), callee.ready(), gateway.ready()]);
    await caller.meshEndpointsFor(`${NS}/back:9080`);
    const edge = new Pool(`http://127.0.0.1:${80 + offset}`);
    try {
      await edgeServes(edge);
      let done = false;
      const loads = [edge, await caller.outbound()].map((dispatcher, i) =>
        startLoad({
          dispatcher,
          host: i === 0 ? 'shop.example' : 'back.web:9080',
          concurrency: 4,
          maxRequests: 1_000_000,
          stop: () => done,
        }),
      );
      const sentBy = async (more: number) => {
        const target = Math.min(...loads.map((l) => l.result.sent)) + more;
        for (let i = 0; i < 2_000 && loads.some((l) => l.result.sent < target); i++)
          await new Promise((r) => setTimeout(r, 10));
      };
      await sentBy(100);
      await cp.stop();
      door.shut();
      await sentBy(100);
      await cp.restart();
      // The gateway and the caller are back and served; the callee is still outside.
      await allSynced(cp.adminPort, 2);
      await sentBy(300);
      door.open();
      await allSynced(cp.adminPort, 3);
      await sentBy(100);
      done = true;
      for (const result of await Promise.all(loads.map((l) => l.finished))) {
        expect(result.failures).toEqual([]);
        expect(result.ok).toBe(result.sent);
      }
    } finally {
      await edge.destroy();
      await door.close();
    }
  }, 60_000);
});

/** A TCP forwarder to the discovery port that the test can shut (connections refused) and open. */
async function controlPlaneDoor(discoveryPort: number): Promise<{
  url: string;
  shut(): void;
  open(): void;
  close(): Promise<void>;
}> {
  let shut = false;
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    if (shut) {
      client.destroy();
      return;
    }
    const upstream = netConnect(discoveryPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    shut() {
      shut = true;
      for (const s of sockets) s.destroy();
    },
    open() {
      shut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
