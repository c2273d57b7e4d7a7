import { describe, expect, it } from 'vitest';
import { ConfigFolder } from '../../helpers/config-folder.ts';
import { startEchoServer } from '../../helpers/echo-server.ts';
import { webGatewayFiles } from '../../helpers/gateway-config.ts';
import { gatewayTestFixtures, startGatewayOn8080 } from '../../helpers/gateway-process.ts';
import { fire, outsideWindowEdge } from './traffic.ts';

// `meshgate gateway --workers 2` with a local limit: the workers lease from the supervisor, so
// the gateway as a whole admits the limit (one count per gateway, not per worker).

const fx = gatewayTestFixtures();

describe('local rate limits across workers', () => {
  it('admits the limit once for the whole gateway, whichever worker serves', async () => {
    await outsideWindowEdge('Day');
    fx.upstream = await startEchoServer('web');
    fx.folder = await ConfigFolder.create({
      ...webGatewayFiles(fx.upstream.port),
      'quota.yaml': `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: quota, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: web }]
  rateLimit:
    local:
      rules:
        - limit: { requests: 60, unit: Day }`,
    });
    const { gw, url } = await startGatewayOn8080(fx.folder.dir, [
      '--workers',
      '2',
      '--access-log',
      'stdout',
    ]);
    await gw.ready();
    // A new connection per request: node:cluster hands connections to the workers in turn.
    const statuses = await fire([`${url}/`], 100, 4);
    const admitted = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    // Never over; under by at most the tokens a worker still holds (leases of 1 near the end).
    expect(admitted).toBeLessThanOrEqual(60);
    expect(admitted).toBeGreaterThanOrEqual(58);
    // Both workers served admitted requests (their access log lines carry their pid).
    const servedBy = new Set(
      gw.logs.filter((l) => l.msg === 'request' && l.status === 200).map((l) => l.pid),
    );
    expect(servedBy.size).toBe(2);
    expect((await gw.stop()).code).toBe(0);
  });
});
