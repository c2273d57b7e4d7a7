// BackendTrafficPolicy faultInjection through real sockets: aborts answer the configured status
// (flag FI) without reaching the upstream; delays hold the request, then forward it.

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
const agent = new Agent({ keepAliveTimeout: 1_000 });

beforeAll(async () => {
  upstreams = await startUpstreams('fi', 1);
  const route = (name: string) =>
    routeYaml(
      name,
      `    - matches: [{ path: { type: PathPrefix, value: /${name} } }]
      backendRefs: [{ name: fi, port: 80 }]`,
    );
  gw = await startGateway(
    docs(
      GATEWAY,
      serviceFor('fi', upstreams),
      route('abort'),
      backendTrafficPolicyYaml(
        'abort',
        'abort',
        `  faultInjection: { abort: { httpStatus: 418 } }`,
      ),
      route('grpc-abort'),
      backendTrafficPolicyYaml(
        'grpc-abort',
        'grpc-abort',
        `  faultInjection: { abort: { grpcStatus: 14, percentage: 100 } }`,
      ),
      route('delay'),
      backendTrafficPolicyYaml(
        'delay',
        'delay',
        `  faultInjection: { delay: { fixedDelay: 250ms, percentage: 100 } }`,
      ),
      route('never'),
      backendTrafficPolicyYaml(
        'never',
        'never',
        `  faultInjection: { abort: { httpStatus: 500, percentage: 0 } }`,
      ),
    ),
  );
});

afterAll(async () => {
  await agent.close();
  await gw?.server.currentView?.close();
  await gw?.close();
  await closeAll(upstreams);
});

describe('fault injection', () => {
  it('aborts every request with the configured status and the flag FI', async () => {
    const before = upstreams[0]!.requests.length;
    for (let i = 0; i < 5; i++) {
      const a = await send(agent, gw.url(80, `/abort/${i}`));
      expect(a.status).toBe(418);
      expect(a.headers['meshgate-response-flags']).toBe('FI');
      expect(a.json()).toMatchObject({ code: 'MG_ERR_FAULT_ABORT', status: 418 });
    }
    expect(upstreams[0]!.requests.length).toBe(before);
  });

  it('answers a gRPC abort as a trailers-only response', async () => {
    const a = await send(agent, gw.url(80, '/grpc-abort/x'));
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/grpc');
    expect(a.headers['grpc-status']).toBe('14');
    expect(a.body).toBe('');
  });

  it('delays a request, then forwards it', async () => {
    const started = Date.now();
    const a = await send(agent, gw.url(80, '/delay/x'));
    expect(a.status).toBe(200);
    expect(a.echo().path).toBe('/delay/x');
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
  });

  it('never aborts at 0%', async () => {
    const a = await send(agent, gw.url(80, '/never/x'));
    expect(a.status).toBe(200);
  });
});
