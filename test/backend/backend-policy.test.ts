import { describe, expect, it } from 'vitest';
import {
  BackendPolicies,
  compileBackendPolicySettings,
  type BackendPolicy,
  type BackendPolicySettings,
} from '../../shared/backend/backend-policy.ts';
import { endpointOrigin, type Endpoint } from '../../shared/backend/endpoint-set.ts';
import type { BackendTrafficPolicySpec } from '../../shared/config/schemas/envoy-gateway.ts';
import { FakeTime } from '../helpers/fake-time.ts';

type Spec = Partial<BackendTrafficPolicySpec>;

function settings(spec: Spec, rule?: Parameters<typeof compileBackendPolicySettings>[1]) {
  const s = compileBackendPolicySettings(spec, rule);
  if ('error' in s) throw new Error(s.error);
  return s;
}

function endpoints(...ports: number[]): Endpoint[] {
  return ports.map((port) => ({
    address: '127.0.0.1',
    port,
    origin: endpointOrigin('127.0.0.1', port),
  }));
}

describe('compiling a BackendTrafficPolicy for a rule', () => {
  it("applies Envoy Gateway's defaults: LeastRequest, breakers at 1024, panic at 50%, no retry", () => {
    expect(settings({})).toEqual({
      loadBalancer: { type: 'LeastRequest' },
      circuitBreaker: {
        maxConnections: 1024,
        maxPendingRequests: 1024,
        maxParallelRequests: 1024,
        maxParallelRetries: 1024,
      },
      panicThreshold: 50,
      requestTimeoutMs: 0,
      attemptTimeoutMs: 0,
    } satisfies BackendPolicySettings);
  });

  it("the HTTPRoute request timeout wins over the policy's, even when it is 0 (disabled)", () => {
    const spec: Spec = { timeout: { http: { requestTimeout: '5s' } } };
    expect(settings(spec).requestTimeoutMs).toBe(5_000);
    expect(settings(spec, { timeouts: { requestMs: 2_000 } }).requestTimeoutMs).toBe(2_000);
    expect(settings(spec, { timeouts: { requestMs: 0 } }).requestTimeoutMs).toBe(0);
  });

  it("the HTTPRoute retry replaces the policy's as a whole", () => {
    const spec: Spec = {
      retry: {
        numRetries: 5,
        retryOn: { triggers: ['5xx'] },
        perRetry: { timeout: '1s', backOff: { baseInterval: '100ms' } },
      },
    };
    expect(settings(spec).retry).toEqual({
      numRetries: 5,
      triggers: ['5xx'],
      statusCodes: [503],
      perTryTimeoutMs: 1_000,
      baseIntervalMs: 100,
    });
    expect(settings(spec, { retry: { codes: [502], attempts: 1, backoffMs: 10 } }).retry).toEqual({
      numRetries: 1,
      triggers: [
        'connect-failure',
        'refused-stream',
        'unavailable',
        'cancelled',
        'retriable-status-codes',
      ],
      statusCodes: [502],
      perTryTimeoutMs: 0,
      baseIntervalMs: 10,
    });
    // Without attempts and codes: Envoy Gateway's 2 retries on 503.
    expect(settings({}, { retry: { codes: [] } }).retry).toMatchObject({
      numRetries: 2,
      statusCodes: [503],
      baseIntervalMs: 25,
    });
  });

  it('bounds every attempt by backendRequest and maxStreamDuration', () => {
    expect(
      settings(
        { timeout: { http: { maxStreamDuration: '3s' } } },
        { timeouts: { backendRequestMs: 5_000 } },
      ).attemptTimeoutMs,
    ).toBe(3_000);
  });

  it('keeps the retry triggers the parser left (ignored gRPC triggers leave holes)', () => {
    const triggers = ['5xx', undefined, 'reset'] as unknown as ['5xx', 'reset'];
    expect(settings({ retry: { numRetries: 2, retryOn: { triggers } } }).retry?.triggers).toEqual([
      '5xx',
      'reset',
    ]);
    const onlyGrpc = [undefined] as unknown as ['5xx'];
    expect(
      settings({ retry: { numRetries: 2, retryOn: { triggers: onlyGrpc } } }).retry?.triggers,
    ).toEqual([]);
  });

  it('compiles consistent hashing, and refuses a table size that is not prime', () => {
    expect(
      settings({
        loadBalancer: {
          type: 'ConsistentHash',
          consistentHash: {
            type: 'Cookie',
            cookie: { name: 'sticky', ttl: '1h', attributes: { SameSite: 'Lax' } },
            tableSize: 65537,
          },
        },
      }).loadBalancer,
    ).toEqual({
      type: 'ConsistentHash',
      tableSize: 65537,
      hash: { type: 'Cookie', name: 'sticky', ttlSeconds: 3600, attributes: [['SameSite', 'Lax']] },
    });
    expect(
      settings({
        loadBalancer: {
          type: 'ConsistentHash',
          consistentHash: { type: 'Header', header: { name: 'X-User' }, tableSize: 13 },
        },
      }).loadBalancer,
    ).toMatchObject({ hash: { type: 'Headers', names: ['x-user'] } });
    expect(
      compileBackendPolicySettings({
        loadBalancer: {
          type: 'ConsistentHash',
          consistentHash: { type: 'SourceIP', tableSize: 100 },
        },
      }),
    ).toEqual({ error: 'loadBalancer.consistentHash.tableSize 100 is not a prime number' });
  });

  it('compiles health checks, breakers, fault injection and connection settings', () => {
    const s = settings({
      circuitBreaker: {
        maxConnections: 10,
        maxPendingRequests: 5,
        maxParallelRequests: 20,
        maxParallelRetries: 3,
        maxRequestsPerConnection: 100,
        perEndpoint: { maxConnections: 4 },
        retryBudget: { percent: { numerator: 1, denominator: 4 } },
      },
      healthCheck: {
        panicThreshold: 0,
        passive: {
          splitExternalLocalOriginErrors: false,
          interval: '2s',
          consecutiveLocalOriginFailures: 5,
          consecutive5XxErrors: 2,
          baseEjectionTime: '10s',
          maxEjectionPercent: 50,
          alwaysEjectOneEndpoint: true,
        },
        active: {
          type: 'HTTP',
          timeout: '500ms',
          interval: '1s',
          unhealthyThreshold: 2,
          healthyThreshold: 1,
          http: { path: '/healthz', expectedResponse: { type: 'Text', text: 'ok' } },
          overrides: { port: 9901 },
        },
      },
      faultInjection: { abort: { grpcStatus: 14, percentage: 100 } },
      timeout: { tcp: { connectTimeout: '2s' }, http: { connectionIdleTimeout: '30s' } },
    });
    expect(s.circuitBreaker.retryBudget).toEqual({ percent: 25, minRetryConcurrency: 3 });
    expect(s.panicThreshold).toBe(0);
    expect(s.outlierDetection).toMatchObject({
      intervalMs: 2_000,
      baseEjectionMs: 10_000,
      maxEjectionMs: 300_000,
      consecutive5xx: 2,
      consecutiveGatewayFailure: 0,
      alwaysEjectOne: true,
    });
    expect(s.activeHealthCheck).toMatchObject({
      type: 'HTTP',
      intervalMs: 1_000,
      timeoutMs: 500,
      port: 9901,
      http: {
        path: '/healthz',
        method: 'GET',
        expectedStatuses: [200],
        expectedBody: Buffer.from('ok'),
      },
    });
    expect(s.fault).toEqual({ abort: { grpcStatus: 14, percentage: 100 } });
    expect(s.connection).toEqual({
      connectTimeoutMs: 2_000,
      idleTimeoutMs: 30_000,
      maxRequestsPerConnection: 100,
      maxConnectionsPerEndpoint: 4,
    });
  });
});

/** A pool stand-in that records that it was closed. */
function fakeRuntime(time: FakeTime) {
  const pools: { origin: string; options: unknown; closed: boolean }[] = [];
  return {
    pools,
    runtime: {
      timers: time,
      random: () => 0,
      createPool: (origin: string, options: unknown) => {
        const p = { origin, options, closed: false };
        pools.push(p);
        return {
          request: () => new Promise(() => undefined),
          close: async () => {
            p.closed = true;
          },
        } as never;
      },
    },
  };
}

const HC_SPEC: Spec = {
  healthCheck: {
    active: {
      type: 'HTTP',
      timeout: '1s',
      interval: '3s',
      unhealthyThreshold: 3,
      healthyThreshold: 1,
      http: { path: '/healthz' },
    },
  },
};

describe('BackendPolicies across reloads', () => {
  function request(spec: Spec, eps: Endpoint[], scope = 'httproute/ns/r/rule/0') {
    return {
      policyId: 'BackendTrafficPolicy/ns/p',
      scope,
      backend: 'ns/svc:80',
      endpoints: eps,
      spec,
    };
  }

  it('keeps the same policy object, with its state, when nothing changed', () => {
    const time = new FakeTime();
    const { runtime } = fakeRuntime(time);
    const first = new BackendPolicies(runtime);
    const a = first.get(request({}, endpoints(1, 2))) as BackendPolicy;
    first.activate();
    a.breaker.tryAcquire();
    const second = new BackendPolicies(runtime, first);
    const b = second.get(request({}, endpoints(1, 2))) as BackendPolicy;
    second.activate();
    expect(b).toBe(a);
    expect(b.breaker.active).toBe(1);
    // The same rule twice in one view (a route on two listeners) gets one policy.
    expect(second.get(request({}, endpoints(1, 2)))).toBe(b);
  });

  it('rebuilds on a change but carries the breaker and what endpoints that stayed learned', () => {
    const time = new FakeTime();
    const { runtime } = fakeRuntime(time);
    const spec: Spec = {
      healthCheck: {
        passive: {
          splitExternalLocalOriginErrors: false,
          interval: '1s',
          consecutiveLocalOriginFailures: 5,
          consecutive5XxErrors: 1,
          baseEjectionTime: '30s',
          maxEjectionPercent: 100,
          alwaysEjectOneEndpoint: false,
        },
      },
    };
    const first = new BackendPolicies(runtime);
    const a = first.get(request(spec, endpoints(1, 2))) as BackendPolicy;
    first.activate();
    a.breaker.tryAcquire();
    a.onResponse(1, 500, 0); // ejects :2
    const second = new BackendPolicies(runtime, first);
    const b = second.get(request(spec, endpoints(2, 3))) as BackendPolicy;
    second.activate();
    expect(b).not.toBe(a);
    expect(b.breaker).toBe(a.breaker);
    expect(b.health.isEjected(0)).toBe(true); // :2 is now index 0
    expect(b.health.isEjected(1)).toBe(false);
  });

  it('keeps state per rule: two rules with the same policy and backend do not share it', () => {
    const { runtime } = fakeRuntime(new FakeTime());
    const set = new BackendPolicies(runtime);
    const a = set.get(request({}, endpoints(1), 'httproute/ns/r/rule/0'));
    const b = set.get(request({}, endpoints(1), 'httproute/ns/r/rule/1'));
    expect(a).not.toBe(b);
    expect(set.size).toBe(2);
  });

  it('reports a policy it cannot apply', () => {
    const set = new BackendPolicies(fakeRuntime(new FakeTime()).runtime);
    expect(
      set.get(
        request(
          {
            loadBalancer: {
              type: 'ConsistentHash',
              consistentHash: { type: 'SourceIP', tableSize: 10 },
            },
          },
          endpoints(1),
        ),
      ),
    ).toEqual({ error: 'loadBalancer.consistentHash.tableSize 10 is not a prime number' });
  });

  it('starts health checks on activate, stops the ones a new set dropped, and close leaves no timer', async () => {
    const time = new FakeTime();
    const { runtime, pools } = fakeRuntime(time);
    const first = new BackendPolicies(runtime);
    const a = first.get(request(HC_SPEC, endpoints(1, 2))) as BackendPolicy;
    expect(a.healthChecker?.isRunning).toBe(false);
    first.activate();
    expect(a.healthChecker?.isRunning).toBe(true);
    time.advance(1); // the first checks start (no jitter)
    expect(pools.filter((p) => !p.closed)).toHaveLength(2);

    // Same policy, other endpoints: a new checker; the old one stops once the new set serves.
    const second = new BackendPolicies(runtime, first);
    const b = second.get(request(HC_SPEC, endpoints(2, 3))) as BackendPolicy;
    expect(a.healthChecker?.isRunning).toBe(true);
    second.activate();
    await Promise.resolve();
    expect(a.healthChecker?.isRunning).toBe(false);
    expect(a.healthChecker?.pendingWork).toBe(0);
    expect(b.healthChecker?.isRunning).toBe(true);

    // A set without the policy stops it too.
    const third = new BackendPolicies(runtime, second);
    third.activate();
    await Promise.resolve();
    expect(b.healthChecker?.isRunning).toBe(false);
    expect(time.timerCount).toBe(0);
    expect(pools.every((p) => p.closed)).toBe(true);
  });

  it('close stops every check and closes the pools the set owns', async () => {
    const time = new FakeTime();
    const { runtime, pools } = fakeRuntime(time);
    const set = new BackendPolicies(runtime);
    const p = set.get(
      request({ ...HC_SPEC, timeout: { tcp: { connectTimeout: '2s' } } }, endpoints(1)),
    ) as BackendPolicy;
    set.activate();
    time.advance(1);
    expect(p.pools).toHaveLength(1);
    expect(pools.map((x) => x.options)).toContainEqual(
      expect.objectContaining({ connect: { timeout: 2_000 } }),
    );
    await set.close();
    expect(set.pendingHealthCheckWork).toBe(0);
    expect(time.timerCount).toBe(0);
    expect(pools.every((x) => x.closed)).toBe(true);
  });

  it('shares policy-owned pools across policies with the same settings and carries them over', async () => {
    const { runtime, pools } = fakeRuntime(new FakeTime());
    const spec: Spec = { timeout: { tcp: { connectTimeout: '2s' } } };
    const first = new BackendPolicies(runtime);
    const a = first.get(request(spec, endpoints(1), 'rule-a')) as BackendPolicy;
    const b = first.get(request(spec, endpoints(1), 'rule-b')) as BackendPolicy;
    expect(a.pools?.[0]).toBe(b.pools?.[0]);
    first.activate();
    const second = new BackendPolicies(runtime, first);
    const c = second.get(
      request({ ...spec, loadBalancer: { type: 'Random' } }, endpoints(1), 'rule-a'),
    ) as BackendPolicy;
    second.activate();
    await Promise.resolve();
    expect(c.pools?.[0]).toBe(a.pools?.[0]);
    expect(pools).toHaveLength(1);
    expect(pools[0]!.closed).toBe(false);
  });
});
