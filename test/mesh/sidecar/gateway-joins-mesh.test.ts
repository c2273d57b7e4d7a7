import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  startTestControlPlane,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { GATEWAY_CLASS, gatewayYaml } from '../../helpers/gateway-config.ts';
import { killGateways, startGateway, type GatewayProcess } from '../../helpers/gateway-process.ts';
import { send } from '../../helpers/http-request.ts';
import { endpointSliceYaml, joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import { runLoad } from '../../helpers/mesh-load.ts';
import { findPortOffset } from '../../helpers/ports.ts';
import { killSidecars, startSidecar, type SidecarProcess } from '../../helpers/sidecar-process.ts';

// The edge gateway as a mesh client: `meshgate gateway --control-plane … --token …` gets its
// identity (the token's: meshgate-system/meshgate-gateway) and its listeners from the control
// plane, and calls the services' sidecars over mTLS, so that an AuthorizationPolicy can allow
// exactly the gateway. A service without a sidecar is still called in plain HTTP.

const NS = 'shop';
const GATEWAY_PRINCIPAL = 'cluster.local/ns/meshgate-system/sa/meshgate-gateway';
let cp: TestControlPlane;
let gateway: GatewayProcess;
let edge: Pool;
let offset: number;
const apps: Record<string, EchoServer> = {};
const sidecars: Record<string, SidecarProcess> = {};
let dir: string;

function config(): string {
  const port = (n: string) => (apps[n] as EchoServer).port;
  return joinYaml(
    GATEWAY_CLASS,
    gatewayYaml(NS, 'edge', `    - { name: http, port: 80, protocol: HTTP }`),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: ${NS} }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /legacy } }]
      backendRefs: [{ name: legacy, port: 8080 }]`,
    serviceYaml({ name: 'api', namespace: NS, port: 8080, targetPort: port('api') }),
    serviceYaml({ name: 'client', namespace: NS, port: 8080, targetPort: port('client') }),
    serviceYaml({
      name: 'legacy',
      namespace: NS,
      selector: null,
      port: 8080,
      targetPort: port('legacy'),
    }),
    endpointSliceYaml({ service: 'legacy', namespace: NS, port: port('legacy') }),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${NS} }
spec:
  mtls: { mode: STRICT }`,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-only-gateway, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: api } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["${GATEWAY_PRINCIPAL}"] } }]`,
  );
}

beforeAll(async () => {
  for (const name of ['api', 'client', 'legacy']) apps[name] = await startEchoServer(name);
  cp = await startTestControlPlane({ 'mesh.yaml': config() }, { pushDebounceMs: 20 });
  for (const name of ['api', 'client'])
    sidecars[name] = await startSidecar(cp, {
      service: name,
      namespace: NS,
      appPort: (apps[name] as EchoServer).port,
    });
  await Promise.all(Object.values(sidecars).map((s) => s.ready()));
  dir = await mkdtemp(join(tmpdir(), 'meshgate-gateway-mesh-'));
  const ca = join(dir, 'root.pem');
  await writeFile(ca, cp.rootPem);
  const token = await cp.tokenFile('meshgate-system', 'meshgate-gateway');
  offset = await findPortOffset([80]);
  gateway = startGateway([
    '--control-plane',
    cp.discoveryUrl,
    '--token',
    token,
    '--control-plane-ca',
    ca,
    '--port-offset',
    String(offset),
    '--workers',
    '2',
  ]);
  await gateway.ready();
  edge = new Pool(`http://127.0.0.1:${80 + offset}`);
  // The gateway's view lists the api sidecar once it has registered.
  for (let i = 0; i < 200; i++) {
    const res = await send(edge, `http://127.0.0.1/api/warm`, { host: 'shop.example' });
    if (res.status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  await edge?.destroy();
  await killGateways();
  await killSidecars();
  await closeAll();
  await Promise.all(Object.values(apps).map((a) => a.close()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the gateway joins the mesh', () => {
  it('gets its identity from the token and its view from the control plane', async () => {
    const joined = await gateway.waitForLog((l) => l.msg === 'joined the mesh', 'joining');
    expect(joined.spiffeId).toBe(`spiffe://${GATEWAY_PRINCIPAL}`);
    const status = (await (await fetch(`${cp.adminUrl}/status`)).json()) as {
      proxies: { kind: string; identity: string; state: string }[];
    };
    expect(status.proxies.find((p) => p.kind === 'gateway')).toMatchObject({
      identity: `spiffe://${GATEWAY_PRINCIPAL}`,
      state: 'SYNCED',
    });
  });

  it('gateway → mTLS → sidecar → app: the app sees the gateway as the caller; the policy allows it', async () => {
    const res = await send(edge, 'http://127.0.0.1/api/items?x=1', {
      host: 'shop.example',
      headers: { 'x-request-id': 'edge-1' },
    });
    expect(res.status).toBe(200);
    const echo = res.echo();
    expect(echo.server).toBe('api');
    expect(echo.path).toBe('/api/items?x=1');
    expect(echo.headers['x-forwarded-client-cert']).toMatch(
      new RegExp(
        `^By=spiffe://cluster\\.local/ns/${NS}/sa/api;Hash=[0-9a-f]{64};Subject="";URI=spiffe://${GATEWAY_PRINCIPAL.replaceAll('.', '\\.')}$`,
      ),
    );
    const line = await (sidecars.api as SidecarProcess).accessLog('edge-1');
    expect(line).toMatchObject({
      peer: GATEWAY_PRINCIPAL,
      authz: 'allow',
      policy: `${NS}/api-only-gateway`,
      mtls: 'mTLS',
    });
  });

  it('another mesh caller is denied by the same policy', async () => {
    const out = await (sidecars.client as SidecarProcess).outbound();
    const res = await send(out, 'http://127.0.0.1/api/items', {
      host: 'api:8080',
      headers: { 'x-request-id': 'client-1' },
    });
    expect(res.status).toBe(403);
    expect(res.body).toBe('RBAC: access denied');
    const denials = (
      await (sidecars.api as SidecarProcess).admin<{
        recent: { requestId: string; peer: string; reason: string }[];
      }>('/denials')
    ).body.recent;
    expect(denials.find((d) => d.requestId === 'client-1')).toMatchObject({
      peer: `cluster.local/ns/${NS}/sa/client`,
      reason: `denied: no ALLOW policy matches (${NS}/api-only-gateway)`,
    });
  });

  it('a service without a sidecar is called in plain HTTP', async () => {
    const res = await send(edge, 'http://127.0.0.1/legacy/x', { host: 'shop.example' });
    expect(res.status).toBe(200);
    expect(res.echo().server).toBe('legacy');
    expect(res.echo().headers['x-forwarded-client-cert']).toBeUndefined();
  });

  it('serves a bounded load through its workers to the sidecar without a failure', async () => {
    const result = await runLoad({
      dispatcher: edge,
      host: 'shop.example',
      path: '/api/load',
      concurrency: 8,
      maxRequests: 400,
    });
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(400);
  });
});
