// BackendTrafficPolicy healthCheck.passive (outlier detection), through real sockets with the
// gateway's clock injected: an endpoint answering 5xx is ejected, traffic moves to the healthy
// one, and the endpoint comes back after the ejection time.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import {
  backendTrafficPolicyYaml,
  closeAll,
  GATEWAY,
  routeYaml,
  serviceFor,
  startUpstreams,
} from '../../helpers/backend-traffic.ts';
import type { EchoServer } from '../../helpers/echo-server.ts';
import { docs } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';

let upstreams: EchoServer[] = [];
let gw: GatewayUnderTest;
let failing = true;
let clock = 1_000_000;
const agent = new Agent({ keepAliveTimeout: 1_000 });

beforeAll(async () => {
  // upstream-1 answers 500 while `failing`.
  upstreams = await startUpstreams('od', 2, (name, req, res) => {
    if (name !== 'od-1' || !failing) return false;
    req.resume();
    res.writeHead(500, { 'x-upstream': name }).end('broken');
    return true;
  });
  gw = await startGateway(
    docs(
      GATEWAY,
      serviceFor('pair', upstreams),
      routeYaml(
        'od',
        `    - matches: [{ path: { type: PathPrefix, value: / } }]
      backendRefs: [{ name: pair, port: 80 }]`,
      ),
      backendTrafficPolicyYaml(
        'od',
        'od',
        `  loadBalancer: { type: RoundRobin }
  healthCheck:
    passive:
      consecutive5XxErrors: 2
      interval: 1s
      baseEjectionTime: 10s
      maxEjectionPercent: 50`,
      ),
    ),
    { now: () => clock },
  );
});

afterAll(async () => {
  await agent.close();
  await gw?.server.currentView?.close();
  await gw?.close();
  await closeAll(upstreams);
});

async function upstreamsOf(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = await send(agent, gw.url(80, `/x/${i}`));
    out.push(`${a.headers['x-upstream']}:${a.status}`);
  }
  return out;
}

describe('outlier detection', () => {
  it('ejects the endpoint that answers 5xx, then sends everything to the healthy one', async () => {
    // Round robin: od-0, od-1 (500), od-0, od-1 (500, the second in a row: ejected).
    expect(await upstreamsOf(4)).toEqual(['od-0:200', 'od-1:500', 'od-0:200', 'od-1:500']);
    expect(await upstreamsOf(10)).toEqual(Array(10).fill('od-0:200'));
    const snapshot = gw.server.currentView?.backendPolicies.snapshot(clock)[0];
    expect(snapshot?.outlierDetection).toMatchObject({
      ejectionsActive: 1,
      ejected: [{ endpoint: `http://127.0.0.1:${upstreams[1]!.port}`, ejections: 1 }],
    });
  });

  it('takes the endpoint back after the ejection time', async () => {
    failing = false;
    clock += 9_000;
    expect(await upstreamsOf(4)).toEqual(Array(4).fill('od-0:200'));
    clock += 2_000; // 11 s after the ejection: the 10 s are over at the next 1 s sweep
    const back = await upstreamsOf(4);
    expect(back.filter((u) => u === 'od-1:200')).toHaveLength(2);
    expect(
      gw.server.currentView?.backendPolicies.snapshot(clock)[0]?.outlierDetection,
    ).toMatchObject({
      ejectionsActive: 0,
      ejected: [],
    });
  });
});
