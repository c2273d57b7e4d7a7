import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { FakeDiscovery, viewOf } from '../../helpers/fake-discovery.ts';
import { send } from '../../helpers/http-request.ts';
import { endpointSliceYaml, joinYaml, serviceYaml } from '../../helpers/mesh-config.ts';
import { killSidecars, startSidecar, type SidecarProcess } from '../../helpers/sidecar-process.ts';

// How a sidecar takes views: each one applied whole and acknowledged; one that cannot be applied
// (here a mesh route whose regular expression does not compile, which the real control plane
// never sends) refused with a NACK that says why, the previous view still serving.

const NS = 'app';
let discovery: FakeDiscovery;
let upstream: EchoServer;
let sidecar: SidecarProcess;

function config(extra = ''): string {
  return joinYaml(
    serviceYaml({ name: 'web', namespace: NS, targetPort: 1 }),
    serviceYaml({ name: 'up', namespace: NS, selector: null, targetPort: upstream.port }),
    endpointSliceYaml({ service: 'up', namespace: NS, port: upstream.port }),
    ...(extra ? [extra] : []),
  );
}

function routeYaml(path: string, header: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: up-route, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: up, port: 9080 }]
  rules:
    - matches: [{ path: { type: RegularExpression, value: "${path}" } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-route, value: ${header} }] }
      backendRefs: [{ name: up, port: 9080 }]`;
}

beforeAll(async () => {
  upstream = await startEchoServer('up');
  discovery = await FakeDiscovery.start();
  discovery.push(viewOf('v1', config()));
  sidecar = await startSidecar(discovery, { service: 'web', namespace: NS, appPort: 1 });
  await sidecar.ready();
});

afterAll(async () => {
  await killSidecars();
  await discovery.close();
  await upstream.close();
});

interface Dump {
  view: { version: string };
  lastNack: { version: string; error: string } | null;
}

describe('views from the control plane', () => {
  it('applies a view and ACKs it', async () => {
    expect(await discovery.ackOf('v1')).toMatchObject({ ok: true });
    const dump = (await sidecar.admin<Dump>('/config_dump')).body;
    expect(dump.view.version).toBe('v1');
    const res = await send(await sidecar.outbound(), 'http://127.0.0.1/a', { host: 'up:9080' });
    expect(res.status).toBe(200);
    expect(res.echo().headers['x-route']).toBeUndefined();
  });

  it('NACKs a view whose route regex does not compile and keeps serving the previous one', async () => {
    // The compiled snapshot is frozen: change a copy.
    const bad = structuredClone(viewOf('v2', config(routeYaml('/ok/.*', 'v2'))));
    // A regular expression that does not compile: what a newer control plane (or a bug) might send.
    const rule = bad.routes[0]?.rules[0];
    if (!rule) throw new Error('no route compiled');
    (rule.matches[0] as { path: { type: string; value: string } }).path.value = '/ok/(';
    discovery.push(bad);
    const nack = await discovery.ackOf('v2');
    expect(nack.ok).toBe(false);
    expect(nack.error).toContain('/ok/(');
    expect(nack.error).toMatch(/regular expression/);
    const dump = (await sidecar.admin<Dump>('/config_dump')).body;
    expect(dump.view.version).toBe('v1');
    expect(dump.lastNack).toMatchObject({ version: 'v2' });
    const res = await send(await sidecar.outbound(), 'http://127.0.0.1/ok/1', { host: 'up:9080' });
    expect(res.status).toBe(200);
    expect(res.echo().headers['x-route']).toBeUndefined();
    const stats = (
      await sidecar.admin<Record<string, { labels: Record<string, string>; value: number }[]>>(
        '/stats',
      )
    ).body;
    expect(stats.meshgate_sidecar_views_total).toContainEqual({
      labels: { result: 'nack' },
      value: 1,
    });
  });

  it('applies the next good view', async () => {
    discovery.push(viewOf('v3', config(routeYaml('/ok/.*', 'v3'))));
    expect(await discovery.ackOf('v3')).toMatchObject({ ok: true });
    const res = await send(await sidecar.outbound(), 'http://127.0.0.1/ok/2', { host: 'up:9080' });
    expect(res.status).toBe(200);
    expect(res.echo().headers['x-route']).toBe('v3');
    // The route's regex decides: another path matches no rule of the route.
    const miss = await send(await sidecar.outbound(), 'http://127.0.0.1/other', {
      host: 'up:9080',
    });
    expect(miss.status).toBe(404);
    expect(miss.json()).toMatchObject({ code: 'MG_ERR_NO_ROUTE' });
  });
});
