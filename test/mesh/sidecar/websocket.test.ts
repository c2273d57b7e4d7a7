// WebSockets across the mesh, on real sockets: the app calls a Service through its sidecar's
// outbound listener with an Upgrade, which goes over mTLS to the callee's sidecar, is authorized
// there like any request (AuthorizationPolicy on the upgrade request), and reaches the app; the
// 101 comes back and raw frames pass both ways. The edge gateway, a mesh client, does the same.

import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  startTestControlPlane,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { GATEWAY_CLASS, gatewayYaml } from '../../helpers/gateway-config.ts';
import { killGateways } from '../../helpers/gateway-process.ts';
import { joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import { startMeshGateway } from '../../helpers/mesh-gateway.ts';
import { killSidecars, startSidecar, type SidecarProcess } from '../../helpers/sidecar-process.ts';
import {
  ACCEPT,
  readBytes,
  sendUpgrade,
  startWebSocketEcho,
  textFrame,
  type WebSocketEcho,
} from '../../helpers/websocket.ts';

const NS = 'chat';
const FRONT = `spiffe://cluster.local/ns/${NS}/sa/front`;
const GATEWAY = 'spiffe://cluster.local/ns/meshgate-system/sa/meshgate-gateway';
let cp: TestControlPlane;
let front: EchoServer;
let back: WebSocketEcho;
let caller: SidecarProcess;
let callee: SidecarProcess;
let edgePort: number;

beforeAll(async () => {
  front = await startEchoServer('front');
  back = await startWebSocketEcho();
  cp = await startTestControlPlane(
    {
      'mesh.yaml': joinYaml(
        serviceYaml({ name: 'front', namespace: NS, targetPort: front.port }),
        serviceYaml({ name: 'back', namespace: NS, targetPort: back.port }),
        GATEWAY_CLASS,
        gatewayYaml(NS, 'edge', `    - { name: http, port: 80, protocol: HTTP }`),
        `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: back, namespace: ${NS} }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /ws } }]
      backendRefs: [{ name: back, port: 9080 }]`,
        `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: ${NS} }
spec:
  mtls: { mode: STRICT }`,
        `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: back-chat, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: back } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/${NS}/sa/front", "cluster.local/ns/meshgate-system/sa/meshgate-gateway"] } }]
      to: [{ operation: { paths: ["/ws/*"] } }]`,
      ),
    },
    { pushDebounceMs: 20 },
  );
  caller = await startSidecar(cp, {
    service: 'front',
    namespace: NS,
    appPort: front.port,
    accessLog: 'off',
  });
  callee = await startSidecar(cp, { service: 'back', namespace: NS, appPort: back.port });
  const { gateway, offset } = await startMeshGateway(cp, { workers: 1 });
  edgePort = 80 + offset;
  await Promise.all([caller.ready(), callee.ready(), gateway.ready()]);
  await caller.meshEndpointsFor(`${NS}/back:9080`);
}, 60_000);

afterAll(async () => {
  await killGateways();
  await killSidecars();
  await closeAll();
  await back?.close();
  await front?.close();
});

async function echoes(socket: Socket, rest: Buffer): Promise<void> {
  for (const text of ['hello', 'across the mesh']) {
    const frame = textFrame(text);
    socket.write(frame);
    expect((await readBytes(socket, frame.length, rest)).equals(frame)).toBe(true);
    rest = Buffer.alloc(0);
  }
}

describe('WebSocket through the sidecars', () => {
  // Regression: the sidecars had no 'upgrade' handler, so a WebSocket between two workloads of
  // the mesh could not be opened at all.
  it('app → outbound → mTLS → inbound → app: 101, frames both ways, the callee app sees the caller', async () => {
    const before = back.seen.length;
    const outbound = (await caller.ports()).outbound;
    const { socket, head, rest } = await sendUpgrade(outbound, '/ws/room?id=7', 'back:9080');
    try {
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
      expect(head.toLowerCase()).toContain(`sec-websocket-accept: ${ACCEPT.toLowerCase()}`);
      await echoes(socket, rest);
      const seen = back.seen[before];
      expect(seen?.url).toBe('/ws/room?id=7');
      expect(seen?.headers.upgrade).toBe('websocket');
      expect(seen?.headers['x-forwarded-proto']).toBe('https');
      expect(seen?.headers['x-forwarded-client-cert']).toContain(`URI=${FRONT}`);
    } finally {
      socket.destroy();
    }
    const line = await callee.process.waitForLog(
      (l) => l.msg === 'request' && l.path === '/ws/room?id=7',
      'the callee access log line of the upgrade',
    );
    expect(line).toMatchObject({ status: 101, peer: FRONT.slice('spiffe://'.length) });
  });

  it('the upgrade request is authorized at the callee: a path the policy does not allow is a 403', async () => {
    const before = back.seen.length;
    const outbound = (await caller.ports()).outbound;
    const { socket, head } = await sendUpgrade(outbound, '/admin', 'back:9080');
    socket.destroy();
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 403 /);
    expect(head.toLowerCase()).toContain('meshgate-response-flags: rbac');
    expect(back.seen.length).toBe(before);
  });

  // Regression: the gateway sent upgrades to a sidecar endpoint through its plain HTTP pools,
  // without its workload certificate, so a STRICT sidecar refused them.
  it('the edge gateway opens a WebSocket to a sidecar over mTLS, as its identity', async () => {
    const before = back.seen.length;
    const { socket, head, rest } = await sendUpgrade(edgePort, '/ws/edge', 'chat.example');
    try {
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
      await echoes(socket, rest);
      expect(back.seen[before]?.headers['x-forwarded-client-cert']).toContain(`URI=${GATEWAY}`);
    } finally {
      socket.destroy();
    }
  });
});
