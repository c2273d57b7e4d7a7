import type { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  startTestControlPlane,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { send } from '../../helpers/http-request.ts';
import { issueCredentials, mtlsPool } from '../../helpers/mesh-credentials.ts';
import { joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import { killSidecars, startSidecar, type SidecarProcess } from '../../helpers/sidecar-process.ts';

// AuthorizationPolicy end to end: real sidecars, the real control plane. httpbin allows only
// sleep's principal and denies /admin to everyone; a denial is Envoy's 403 "RBAC: access denied"
// (text/plain), is logged and listed on /denials with the policy and rule that decided; the path
// is normalized before any policy sees it, so the usual bypass spellings are denied too.

const NS = 'foo';
let cp: TestControlPlane;
const apps: Record<string, EchoServer> = {};
const sidecars: Record<string, SidecarProcess> = {};
const pools: Pool[] = [];

interface Denials {
  total: number;
  recent: {
    requestId: string;
    peer: string | null;
    path: string;
    normalizedPath?: string;
    status: number;
    policy?: string;
    action?: string;
    rule?: number;
    reason: string;
  }[];
}

beforeAll(async () => {
  for (const name of ['httpbin', 'sleep', 'other']) apps[name] = await startEchoServer(name);
  const port = (n: string) => (apps[n] as EchoServer).port;
  cp = await startTestControlPlane(
    {
      'mesh.yaml': joinYaml(
        ...['httpbin', 'sleep', 'other'].map((name) =>
          serviceYaml({ name, namespace: NS, port: 8000, targetPort: port(name) }),
        ),
        `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${NS} }
spec:
  mtls: { mode: STRICT }`,
        `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: httpbin } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin", "/admin/*"] } }]`,
        `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-sleep, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: httpbin } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/${NS}/sa/sleep"] } }]`,
      ),
    },
    { pushDebounceMs: 20 },
  );
  for (const name of ['httpbin', 'sleep', 'other'])
    sidecars[name] = await startSidecar(cp, { service: name, namespace: NS, appPort: port(name) });
  await Promise.all(Object.values(sidecars).map((s) => s.ready()));
  // Both callers reach httpbin through its sidecar: it must be in their views first.
  await Promise.all(
    ['sleep', 'other'].map((n) =>
      (sidecars[n] as SidecarProcess).meshEndpointsFor(`${NS}/httpbin:8000`),
    ),
  );
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.destroy()));
  await killSidecars();
  await closeAll();
  await Promise.all(Object.values(apps).map((a) => a.close()));
});

const httpbin = () => sidecars.httpbin as SidecarProcess;

async function denials(): Promise<Denials> {
  return (await httpbin().admin<Denials>('/denials')).body;
}

describe('AuthorizationPolicy at the sidecar', () => {
  it('allows exactly the principal the ALLOW policy names, and the log says which rule allowed', async () => {
    const out = await (sidecars.sleep as SidecarProcess).outbound();
    const res = await send(out, 'http://127.0.0.1/ip', {
      host: 'httpbin:8000',
      headers: { 'x-request-id': 'allow-1' },
    });
    expect(res.status).toBe(200);
    expect(res.echo().server).toBe('httpbin');
    const line = await httpbin().accessLog('allow-1');
    expect(line).toMatchObject({
      authz: 'allow',
      peer: `cluster.local/ns/${NS}/sa/sleep`,
      policy: `${NS}/allow-sleep`,
      rule: 0,
      action: 'ALLOW',
    });
  });

  it('another caller: 403 "RBAC: access denied" because no ALLOW policy matches', async () => {
    const out = await (sidecars.other as SidecarProcess).outbound();
    const res = await send(out, 'http://127.0.0.1/ip', {
      host: 'httpbin.foo:8000',
      headers: { 'x-request-id': 'other-1' },
    });
    expect(res.status).toBe(403);
    expect(res.body).toBe('RBAC: access denied');
    expect(res.headers['content-type']).toBe('text/plain');
    const d = (await denials()).recent.find((x) => x.requestId === 'other-1');
    expect(d).toMatchObject({
      peer: `cluster.local/ns/${NS}/sa/other`,
      status: 403,
      reason: `denied: no ALLOW policy matches (${NS}/allow-sleep)`,
    });
    expect(d?.policy).toBeUndefined();
  });

  it('a DENY on a path wins over the ALLOW; /denials and the log name the policy and rule', async () => {
    const out = await (sidecars.sleep as SidecarProcess).outbound();
    const res = await send(out, 'http://127.0.0.1/admin/users', {
      host: 'httpbin:8000',
      headers: { 'x-request-id': 'deny-1' },
    });
    expect(res.status).toBe(403);
    expect(res.body).toBe('RBAC: access denied');
    expect(res.headers['content-type']).toBe('text/plain');
    const d = (await denials()).recent.find((x) => x.requestId === 'deny-1');
    expect(d).toMatchObject({
      peer: `cluster.local/ns/${NS}/sa/sleep`,
      path: '/admin/users',
      status: 403,
      policy: `${NS}/deny-admin`,
      action: 'DENY',
      rule: 0,
      reason: `denied by ${NS}/deny-admin rule 0`,
    });
    const logged = await httpbin().process.waitForLog(
      (l) => l.msg === 'request denied' && l.request_id === 'deny-1',
      'the denial log line',
    );
    expect(logged).toMatchObject({ policy: `${NS}/deny-admin`, rule: 0, action: 'DENY' });
    const line = await httpbin().accessLog('deny-1');
    expect(line).toMatchObject({ status: 403, authz: 'deny', flags: 'RBAC' });
    // The app never saw it.
    expect((apps.httpbin as EchoServer).requests.some((r) => r.path.includes('admin'))).toBe(false);
  });

  it('path normalization bypass attempts sent straight to the inbound port are denied on the normalized path', async () => {
    const credentials = await issueCredentials(cp.dataDir, NS, 'sleep');
    const ports = await httpbin().ports();
    const direct = mtlsPool(`https://127.0.0.1:${ports.inbound}`, credentials, {
      rootPem: cp.rootPem,
    });
    pools.push(direct);
    const attempts: [string, string][] = [
      ['/public/../admin', '/admin'],
      ['/%61dmin', '/admin'],
      ['//admin', '/admin'],
      ['/admin/./', '/admin/'],
      ['/./admin/users/', '/admin/users/'],
      ['/admin%2Fusers', '/admin/users'],
      ['/admin\\users', '/admin/users'],
    ];
    for (const [i, [path, normalized]] of attempts.entries()) {
      const id = `bypass-${i}`;
      const res = await direct.request({
        method: 'GET',
        path,
        headers: { host: 'httpbin:8000', 'x-request-id': id },
      });
      const body = await res.body.text();
      expect(res.statusCode, path).toBe(403);
      expect(body, path).toBe('RBAC: access denied');
      const d = (await denials()).recent.find((x) => x.requestId === id);
      expect(d, path).toMatchObject({
        path,
        normalizedPath: normalized,
        policy: `${NS}/deny-admin`,
      });
    }
    // Climbing out of /admin is not a way in either: the app gets the normalized path.
    const out = await direct.request({
      method: 'GET',
      path: '/admin/../public',
      headers: { host: 'httpbin:8000' },
    });
    const echo = (await out.body.json()) as { path: string };
    expect(out.statusCode).toBe(200);
    expect(echo.path).toBe('/public');
    expect((apps.httpbin as EchoServer).requests.some((r) => r.path.includes('admin'))).toBe(false);
  });

  it('counts denials by policy in the metrics', async () => {
    const metrics = await fetch(
      `http://127.0.0.1:${(await httpbin().ports()).metrics}/stats/prometheus`,
    );
    const text = await metrics.text();
    expect(text).toMatch(
      new RegExp(
        `meshgate_sidecar_authz_denials_total\\{policy="${NS}/deny-admin",status="403"\\} \\d+`,
      ),
    );
    expect(text).toMatch(
      /meshgate_sidecar_requests_total\{direction="inbound",status="403",flags="RBAC"\} \d+/,
    );
    expect(text).toMatch(/meshgate_sidecar_certificate_expiry_timestamp_seconds \d+/);
  });
});
