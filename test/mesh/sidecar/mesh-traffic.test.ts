import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  startTestControlPlane,
  type TestControlPlane,
} from '../../helpers/control-plane.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { send } from '../../helpers/http-request.ts';
import { endpointSliceYaml, joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import { killSidecars, startSidecar, type SidecarProcess } from '../../helpers/sidecar-process.ts';

// app → sidecar (outbound) → mTLS → sidecar (inbound) → app, with the real control plane
// (in-process) and real sidecar processes on loopback: name resolution, XFCC, GAMMA routes with
// a weighted canary and a header match, plain HTTP to an endpoint without a sidecar, NR and UH.

const NS = 'bookinfo';
let cp: TestControlPlane;
const apps: Record<string, EchoServer> = {};
const sidecars: Record<string, SidecarProcess> = {};

function config(): string {
  const p = (name: string) => (apps[name] as EchoServer).port;
  return joinYaml(
    serviceYaml({ name: 'productpage', namespace: NS, targetPort: p('productpage') }),
    serviceYaml({ name: 'ratings', namespace: NS, targetPort: p('ratings') }),
    // The canary's parent: the route attached to it sends to the version Services.
    serviceYaml({ name: 'reviews', namespace: NS, targetPort: p('reviews-v1') }),
    serviceYaml({
      name: 'reviews-v1',
      namespace: NS,
      selector: { app: 'reviews', version: 'v1' },
      targetPort: p('reviews-v1'),
    }),
    serviceYaml({
      name: 'reviews-v2',
      namespace: NS,
      selector: { app: 'reviews', version: 'v2' },
      targetPort: p('reviews-v2'),
    }),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews-canary, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - matches: [{ headers: [{ name: end-user, value: jason }] }]
      backendRefs: [{ name: reviews-v2, port: 9080 }]
    - backendRefs:
        - { name: reviews-v1, port: 9080, weight: 80 }
        - { name: reviews-v2, port: 9080, weight: 20 }`,
    // A workload without a sidecar: a static EndpointSlice, called in plain HTTP.
    serviceYaml({ name: 'legacy', namespace: NS, selector: null, targetPort: p('legacy') }),
    endpointSliceYaml({ service: 'legacy', namespace: NS, port: p('legacy') }),
    // Nobody runs it: no endpoints.
    serviceYaml({ name: 'nobody', namespace: NS, targetPort: 1 }),
  );
}

beforeAll(async () => {
  for (const name of ['productpage', 'ratings', 'reviews-v1', 'reviews-v2', 'legacy'])
    apps[name] = await startEchoServer(name);
  cp = await startTestControlPlane({ 'mesh.yaml': config() }, { pushDebounceMs: 20 });
  const start = (name: string, options: Partial<Parameters<typeof startSidecar>[1]> = {}) =>
    startSidecar(cp, {
      service: name,
      namespace: NS,
      appPort: (apps[name] as EchoServer).port,
      ...options,
    });
  sidecars.productpage = await start('productpage');
  sidecars.ratings = await start('ratings');
  sidecars['reviews-v1'] = await start('reviews-v1', {
    service: 'reviews',
    serviceAccount: 'reviews-v1',
    labels: { app: 'reviews', version: 'v1' },
  });
  sidecars['reviews-v2'] = await start('reviews-v2', {
    service: 'reviews',
    serviceAccount: 'reviews-v2',
    labels: { app: 'reviews', version: 'v2' },
  });
  await Promise.all(Object.values(sidecars).map((s) => s.ready()));
  // Every sidecar registered, and the caller's view lists each as a mesh endpoint.
  await (sidecars.productpage as SidecarProcess).meshEndpointsFor(
    `${NS}/ratings:9080`,
    `${NS}/reviews-v1:9080`,
    `${NS}/reviews-v2:9080`,
  );
});

afterAll(async () => {
  await killSidecars();
  await closeAll();
  await Promise.all(Object.values(apps).map((a) => a.close()));
});

interface Dump {
  identity: { spiffeId: string; certificateSha256: string };
  view: { destinations: { service: string; mesh: { spiffeId: string }[] }[] } | null;
}

describe('the mesh path: app → sidecar → mTLS → sidecar → app', () => {
  it('as an HTTP proxy: the app behind the peer sidecar sees XFCC with the caller; a forged XFCC is dropped', async () => {
    const out = await (sidecars.productpage as SidecarProcess).outbound();
    // Absolute form, as HTTP_PROXY clients send it.
    const r = await out.request({
      method: 'GET',
      path: 'http://ratings.bookinfo:9080/ratings/1?x=1',
      headers: {
        host: 'ratings.bookinfo:9080',
        'x-forwarded-client-cert': 'By=spiffe://evil;URI=spiffe://cluster.local/ns/x/sa/admin',
        'x-request-id': 'xfcc-1',
      },
    });
    const echo = (await r.body.json()) as {
      server: string;
      path: string;
      headers: Record<string, string>;
    };
    expect(r.statusCode).toBe(200);
    expect(echo.server).toBe('ratings');
    expect(echo.path).toBe('/ratings/1?x=1');
    const caller = (await (sidecars.productpage as SidecarProcess).admin<Dump>('/config_dump'))
      .body;
    const callee = (await (sidecars.ratings as SidecarProcess).admin<Dump>('/config_dump')).body;
    expect(echo.headers['x-forwarded-client-cert']).toBe(
      `By=${callee.identity.spiffeId};Hash=${caller.identity.certificateSha256};Subject="";URI=spiffe://cluster.local/ns/bookinfo/sa/productpage`,
    );
    expect(echo.headers['x-request-id']).toBe('xfcc-1');
    // Both access logs name the request: outbound with its route, inbound with the peer and decision.
    const outLine = await (sidecars.productpage as SidecarProcess).accessLog('xfcc-1');
    expect(outLine).toMatchObject({
      direction: 'outbound',
      status: 200,
      destination: 'bookinfo/ratings:9080',
      route: 'service/bookinfo/ratings:9080',
    });
    expect(String(outLine.upstream)).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const inLine = await (sidecars.ratings as SidecarProcess).accessLog('xfcc-1');
    expect(inLine).toMatchObject({
      direction: 'inbound',
      status: 200,
      mtls: 'mTLS',
      peer: 'cluster.local/ns/bookinfo/sa/productpage',
      authz: 'allow',
      reason: 'allowed: no ALLOW policy selects the workload',
    });
  });

  it('by Host header: svc, svc.ns, svc.ns.svc, svc.ns.svc.cluster.local; the port may be left out', async () => {
    const out = await (sidecars.productpage as SidecarProcess).outbound();
    for (const host of [
      'ratings',
      'ratings:9080',
      'ratings.bookinfo',
      'ratings.bookinfo.svc:9080',
      'ratings.bookinfo.svc.cluster.local',
      'RATINGS.bookinfo.svc.cluster.local.:9080',
    ]) {
      const res = await send(out, `http://127.0.0.1/by-host`, { host });
      expect(res.status, host).toBe(200);
      expect(res.echo().server, host).toBe('ratings');
    }
  });

  it('an unknown Service or port is a 404 (NR); a Service without endpoints a 503 (UH)', async () => {
    const out = await (sidecars.productpage as SidecarProcess).outbound();
    const unknown = await send(out, 'http://127.0.0.1/', { host: 'details.bookinfo:9080' });
    expect(unknown.status).toBe(404);
    expect(unknown.headers['content-type']).toBe('application/problem+json');
    expect(unknown.json()).toMatchObject({ code: 'MG_ERR_NO_ROUTE', response_flags: 'NR' });
    const otherNs = await send(out, 'http://127.0.0.1/', { host: 'ratings.default:9080' });
    expect(otherNs.status).toBe(404);
    const badPort = await send(out, 'http://127.0.0.1/', { host: 'ratings:9999' });
    expect(badPort.status).toBe(404);
    const none = await send(out, 'http://127.0.0.1/', { host: 'nobody:9080' });
    expect(none.status).toBe(503);
    expect(none.json()).toMatchObject({ code: 'MG_ERR_NO_HEALTHY_UPSTREAM', response_flags: 'UH' });
  });

  it('an endpoint without a sidecar (static EndpointSlice) is called in plain HTTP', async () => {
    const out = await (sidecars.productpage as SidecarProcess).outbound();
    const res = await send(out, 'http://127.0.0.1/plain', {
      host: 'legacy.bookinfo:9080',
      headers: { 'x-request-id': 'legacy-1' },
    });
    expect(res.status).toBe(200);
    expect(res.echo().server).toBe('legacy');
    expect(res.echo().headers['x-forwarded-client-cert']).toBeUndefined();
    const line = await (sidecars.productpage as SidecarProcess).accessLog('legacy-1');
    expect(line.upstream).toBe(`http://127.0.0.1:${(apps.legacy as EchoServer).port}`);
  });
});

describe('GAMMA mesh routes', () => {
  it('splits traffic by weight between the reviews v1 and v2 subsets (80/20)', async () => {
    const out = await (sidecars.productpage as SidecarProcess).outbound();
    const counts: Record<string, number> = {};
    const N = 200;
    for (let i = 0; i < N; i++) {
      const res = await send(out, 'http://127.0.0.1/reviews/1', { host: 'reviews:9080' });
      expect(res.status).toBe(200);
      const server = res.echo().server;
      counts[server] = (counts[server] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['reviews-v1', 'reviews-v2']);
    // Binomial(200, 0.8): mean 160, standard deviation ~5.7; the band is ±5 of them.
    expect(counts['reviews-v1']).toBeGreaterThanOrEqual(131);
    expect(counts['reviews-v1']).toBeLessThanOrEqual(189);
    // v1 and v2 are different workloads: their sidecars' identities say so.
    const v2 = (await (sidecars['reviews-v2'] as SidecarProcess).admin<Dump>('/config_dump')).body;
    expect(v2.identity.spiffeId).toBe('spiffe://cluster.local/ns/bookinfo/sa/reviews-v2');
  });

  it('a header match sends every request of end-user jason to v2', async () => {
    const out = await (sidecars.productpage as SidecarProcess).outbound();
    for (let i = 0; i < 30; i++) {
      const res = await send(out, 'http://127.0.0.1/reviews/2', {
        host: 'reviews.bookinfo:9080',
        headers: { 'end-user': 'jason', 'x-request-id': `jason-${i}` },
      });
      expect(res.status).toBe(200);
      expect(res.echo().server).toBe('reviews-v2');
    }
    const line = await (sidecars.productpage as SidecarProcess).accessLog('jason-0');
    expect(line.route).toBe('httproute/bookinfo/reviews-canary/rule/0');
  });
});
