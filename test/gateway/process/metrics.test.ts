// GET /metrics on the admin API of a real `meshgate gateway --workers 2`: requests spread over
// both workers (one connection each: node:cluster hands connections out in turn), and the
// counts the supervisor serves are the sums over the workers, per route rule, status and flags.

import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { ConfigFolder, httpRouteYaml } from '../../helpers/config-folder.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import {
  docs,
  GATEWAY_CLASS,
  gatewayYaml,
  serviceYaml,
  webGatewayFiles,
} from '../../helpers/gateway-config.ts';
import { gatewayTestFixtures, startGatewayOn8080 } from '../../helpers/gateway-process.ts';
import { freePort } from '../../helpers/ports.ts';

const fx = gatewayTestFixtures();

/** The value of the sample whose name and labels are exactly these (label order as written). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}} `;
  const line = text.split('\n').find((l) => l.startsWith(wanted));
  return line === undefined ? undefined : Number(line.slice(wanted.length));
}

describe('GET /metrics with two workers', () => {
  it('sums the requests, durations, upstream errors, rate limits and connections of both workers', async () => {
    fx.upstream = await startEchoServer('web');
    const closedPort = await freePort();
    fx.folder = await ConfigFolder.create({
      'gateway.yaml': docs(
        GATEWAY_CLASS,
        gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
      ),
      'services.yaml': docs(
        serviceYaml('default', 'web', fx.upstream.port),
        serviceYaml('default', 'down', closedPort),
      ),
      'routes.yaml': docs(
        httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'web', path: '/web' }),
        httpRouteYaml({ name: 'down', gateway: 'edge', backend: 'down', path: '/down' }),
        httpRouteYaml({ name: 'quota', gateway: 'edge', backend: 'web', path: '/quota' }),
        `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: quota, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: quota }]
  rateLimit:
    local: { rules: [{ limit: { requests: 2, unit: Hour } }] }`,
      ),
    });
    const { gw, url } = await startGatewayOn8080(fx.folder.dir, [
      '--workers',
      '2',
      '--access-log',
      'stdout',
    ]);
    await gw.ready();

    // A new connection per request, so that both workers get some.
    const send = async (path: string) => {
      const res = await request(`${url}${path}`, {
        headers: { host: 'shop.test', connection: 'close' },
      });
      await res.body.text();
      return res.statusCode;
    };
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push(await send('/web'));
    for (let i = 0; i < 3; i++) statuses.push(await send('/nowhere'));
    for (let i = 0; i < 2; i++) statuses.push(await send('/down'));
    for (let i = 0; i < 6; i++) statuses.push(await send('/quota'));
    expect(statuses.filter((s) => s === 200)).toHaveLength(22);
    expect(statuses.filter((s) => s === 404)).toHaveLength(3);
    expect(statuses.filter((s) => s === 503)).toHaveLength(2);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);

    const scraped = await gw.adminText('/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = scraped.body;
    const at = (route: string) => ({ port: '8080', listener: 'default/edge/http', route });
    const requests = (route: string, status: string, flags: string) =>
      sample(text, 'meshgate_gateway_requests_total', { ...at(route), status, flags });

    expect(requests('httproute/default/web/rule/0', '200', '-')).toBe(20);
    expect(requests('httproute/default/quota/rule/0', '200', '-')).toBe(2);
    expect(requests('httproute/default/quota/rule/0', '429', 'RL')).toBe(4);
    expect(requests('httproute/default/down/rule/0', '503', 'UF')).toBe(2);
    expect(
      sample(text, 'meshgate_gateway_requests_total', {
        port: '8080',
        listener: 'none',
        route: 'none',
        status: '404',
        flags: 'NR',
      }),
    ).toBe(3);
    expect(
      sample(
        text,
        'meshgate_gateway_request_duration_seconds_count',
        at('httproute/default/web/rule/0'),
      ),
    ).toBe(20);
    expect(
      sample(text, 'meshgate_gateway_request_duration_seconds_bucket', {
        ...at('httproute/default/web/rule/0'),
        le: '+Inf',
      }),
    ).toBe(20);
    expect(
      sample(text, 'meshgate_gateway_upstream_errors_total', {
        ...at('httproute/default/down/rule/0'),
        flags: 'UF',
      }),
    ).toBe(2);
    expect(
      sample(text, 'meshgate_ratelimit_limited_total', { policy: 'default/quota/local/0' }),
    ).toBe(4);
    expect(sample(text, 'meshgate_gateway_connections_total', { port: '8080' })).toBe(31);
    expect(sample(text, 'meshgate_gateway_active_connections', { port: '8080' })).toBeDefined();
    // Label values come from config: no request path appears in a series.
    expect(text).not.toContain('/nowhere');

    // Both workers served requests (their access log lines are flushed when they exit).
    expect((await gw.stop()).code).toBe(0);
    const pids = new Set(gw.logs.filter((l) => l.msg === 'request').map((l) => l.pid));
    expect(pids.size).toBe(2);
  });

  it('keeps the counts of a worker that died in the sums', async () => {
    fx.upstream = await startEchoServer('web');
    fx.folder = await ConfigFolder.create({
      ...webGatewayFiles(fx.upstream.port),
    });
    const { gw, url } = await startGatewayOn8080(fx.folder.dir, ['--workers', '2']);
    await gw.ready();
    for (let i = 0; i < 10; i++) {
      const res = await request(`${url}/`, {
        headers: { host: 'shop.test', connection: 'close' },
      });
      await res.body.text();
    }
    const served = (text: string) =>
      sample(text, 'meshgate_gateway_requests_total', {
        port: '8080',
        listener: 'default/edge/http',
        route: 'httproute/default/web/rule/0',
        status: '200',
        flags: '-',
      });
    expect(served((await gw.adminText('/metrics')).body)).toBe(10);

    // Each worker served about half (connections are handed out in turn): without the counts
    // of the dead one as it last gave them, the sum would drop.
    const workers = (await gw.admin<{ workers: { pid: number }[] }>('/workers')).body.workers;
    process.kill((workers[0] as { pid: number }).pid, 'SIGKILL');
    await gw.waitForLog((l) => l.msg === 'worker replaced', 'the replacement');
    await gw.ready();
    expect(served((await gw.adminText('/metrics')).body)).toBe(10);
    // And the replacement's own counts add to them.
    const res = await request(`${url}/`, {
      headers: { host: 'shop.test', connection: 'close' },
    });
    await res.body.text();
    expect(served((await gw.adminText('/metrics')).body)).toBe(11);
  });
});
