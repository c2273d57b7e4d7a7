import { describe, expect, it } from 'vitest';
import { EndpointHealth } from '../../shared/backend/endpoint-health.ts';
import { endpointOrigin, type Endpoint } from '../../shared/backend/endpoint-set.ts';
import {
  OutlierDetector,
  type OutlierDetectionConfig,
} from '../../shared/backend/outlier-detection.ts';

function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    address: '127.0.0.1',
    port: 9000 + i,
    origin: endpointOrigin('127.0.0.1', 9000 + i),
  }));
}

const BASE: OutlierDetectionConfig = {
  intervalMs: 1_000,
  baseEjectionMs: 10_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 100,
  alwaysEjectOne: false,
  consecutive5xx: 3,
  consecutiveGatewayFailure: 0,
  splitExternalLocalOriginErrors: false,
  consecutiveLocalOriginFailure: 5,
};

function detector(config: Partial<OutlierDetectionConfig> = {}, n = 4) {
  const eps = endpoints(n);
  const health = new EndpointHealth(n, 0);
  const d = new OutlierDetector({ ...BASE, ...config }, eps, health);
  d.advance(0); // the sweep grid starts at 0: sweeps at 1000, 2000, …
  return { d, health, eps };
}

describe('outlier detection: consecutive errors', () => {
  it('ejects after consecutive 5xx and not before; a success resets the count', () => {
    const { d, health } = detector();
    d.onResponse(0, 500, 1);
    d.onResponse(0, 503, 2);
    d.onResponse(0, 200, 3);
    d.onResponse(0, 500, 4);
    d.onResponse(0, 500, 5);
    expect(health.isEjected(0)).toBe(false);
    d.onResponse(0, 502, 6);
    expect(health.isEjected(0)).toBe(true);
    expect(d.snapshot(6)).toMatchObject({ ejectionsActive: 1, ejectionsEnforcedTotal: 1 });
  });

  it('4xx answers are successes for outlier detection', () => {
    const { d, health } = detector({ consecutive5xx: 2 });
    for (let t = 0; t < 10; t++) d.onResponse(0, 404, t);
    expect(health.isEjected(0)).toBe(false);
  });

  it('counts consecutive gateway failures (502/503/504) when that threshold is set', () => {
    const { d, health } = detector({ consecutive5xx: 0, consecutiveGatewayFailure: 2 });
    d.onResponse(1, 502, 1);
    d.onResponse(1, 500, 2); // a non-gateway 5xx resets the gateway count
    d.onResponse(1, 504, 3);
    expect(health.isEjected(1)).toBe(false);
    d.onResponse(1, 503, 4);
    expect(health.isEjected(1)).toBe(true);
  });

  it('without split, connect failures count as 503 and timeouts as 504', () => {
    const { d, health } = detector({ consecutive5xx: 0, consecutiveGatewayFailure: 3 });
    d.onLocalOriginFailure(2, 'connect-failure', 1);
    d.onLocalOriginFailure(2, 'timeout', 2);
    d.onLocalOriginFailure(2, 'reset', 3);
    expect(health.isEjected(2)).toBe(true);
  });

  it('with split, local-origin failures only feed their own count; a response resets it', () => {
    const { d, health } = detector({
      splitExternalLocalOriginErrors: true,
      consecutiveLocalOriginFailure: 2,
      consecutive5xx: 2,
    });
    d.onLocalOriginFailure(0, 'connect-failure', 1);
    d.onResponse(0, 500, 2); // resets the local count, 1 towards 5xx
    d.onLocalOriginFailure(0, 'timeout', 3);
    expect(health.isEjected(0)).toBe(false);
    d.onLocalOriginFailure(0, 'timeout', 4);
    expect(health.isEjected(0)).toBe(true);
  });

  it('a threshold of 0 disables that kind of ejection', () => {
    const { d, health } = detector({ consecutive5xx: 0 });
    for (let t = 0; t < 20; t++) d.onResponse(0, 500, t);
    expect(health.isEjected(0)).toBe(false);
  });
});

describe('outlier detection: how many, and for how long', () => {
  it('ejects at most maxEjectionPercent of the endpoints', () => {
    const { d, health } = detector({ maxEjectionPercent: 50, consecutive5xx: 1 });
    d.onResponse(0, 500, 1);
    d.onResponse(1, 500, 1);
    d.onResponse(2, 500, 1); // would make 75%
    expect([0, 1, 2].map((i) => health.isEjected(i))).toEqual([true, true, false]);
    expect(d.snapshot(1).ejectionsOverflow).toBe(1);
  });

  it("Envoy Gateway's default 10% ejects nothing among 2 endpoints unless alwaysEjectOne", () => {
    const few = detector({ maxEjectionPercent: 10, consecutive5xx: 1 }, 2);
    few.d.onResponse(0, 500, 1);
    expect(few.health.isEjected(0)).toBe(false);
    const one = detector({ maxEjectionPercent: 10, consecutive5xx: 1, alwaysEjectOne: true }, 2);
    one.d.onResponse(0, 500, 1);
    one.d.onResponse(1, 500, 1);
    expect([one.health.isEjected(0), one.health.isEjected(1)]).toEqual([true, false]);
  });

  it('returns an endpoint at the first sweep after baseEjectionTime × ejections', () => {
    const { d, health } = detector({ consecutive5xx: 1 });
    d.onResponse(0, 500, 500); // ejected at 500 for 10 s: due 10500, sweep at 11000
    d.advance(10_999);
    expect(health.isEjected(0)).toBe(true);
    expect(d.snapshot(10_999).ejected).toEqual([
      { endpoint: 'http://127.0.0.1:9000', sinceMs: 10_499, remainingMs: 1, ejections: 1 },
    ]);
    d.advance(11_000);
    expect(health.isEjected(0)).toBe(false);
    // Ejected again at once: twice as long (the multiplier is 2).
    d.onResponse(0, 500, 11_000);
    d.advance(30_999);
    expect(health.isEjected(0)).toBe(true);
    d.advance(31_000);
    expect(health.isEjected(0)).toBe(false);
  });

  it('un-ejection resets the counts, and the multiplier decays while healthy', () => {
    const { d, health } = detector({ consecutive5xx: 2 });
    d.onResponse(0, 500, 0);
    d.onResponse(0, 500, 0);
    d.advance(10_000);
    expect(health.isEjected(0)).toBe(false);
    d.onResponse(0, 500, 10_001); // one, not two: the count restarted
    expect(health.isEjected(0)).toBe(false);
    d.onResponse(0, 200, 10_002);
    // Healthy for ≥ 1 interval per sweep: the multiplier (1) drops to 0 at the next sweeps, so a
    // new ejection lasts the base time again.
    d.advance(20_000);
    d.onResponse(0, 500, 20_000);
    d.onResponse(0, 500, 20_000);
    d.advance(29_999);
    expect(health.isEjected(0)).toBe(true);
    d.advance(30_000);
    expect(health.isEjected(0)).toBe(false);
  });

  it('caps the ejection time at maxEjectionTime', () => {
    const { d, health } = detector({
      consecutive5xx: 1,
      baseEjectionMs: 10_000,
      maxEjectionMs: 15_000,
    });
    d.onResponse(0, 500, 0);
    d.advance(10_000);
    d.onResponse(0, 500, 10_000); // the second ejection in a row: 2 × 10 s, capped at 15 s
    d.advance(24_999);
    expect(health.isEjected(0)).toBe(true);
    d.advance(25_000);
    expect(health.isEjected(0)).toBe(false);
  });

  it('ejects on failure percentage at a sweep when enough endpoints had enough requests', () => {
    const { d, health } = detector(
      {
        consecutive5xx: 0,
        failurePercentage: { threshold: 50, minimumHosts: 3, requestVolume: 10 },
      },
      3,
    );
    for (let k = 0; k < 10; k++) {
      d.onResponse(0, k % 2 === 0 ? 500 : 200, 10 + k); // 50% failing
      d.onResponse(1, 200, 10 + k);
      d.onResponse(2, k < 2 ? 500 : 200, 10 + k);
    }
    d.advance(1_000);
    expect([0, 1, 2].map((i) => health.isEjected(i))).toEqual([true, false, false]);
  });

  it('does not judge failure percentage with too little traffic', () => {
    const { d, health } = detector(
      {
        consecutive5xx: 0,
        failurePercentage: { threshold: 50, minimumHosts: 2, requestVolume: 10 },
      },
      2,
    );
    for (let k = 0; k < 9; k++) d.onResponse(0, 500, 10);
    for (let k = 0; k < 10; k++) d.onResponse(1, 200, 10);
    d.advance(1_000);
    expect(health.isEjected(0)).toBe(false);
  });

  it('a passing active health check brings an ejected endpoint back', () => {
    const { d, health } = detector({ consecutive5xx: 1 });
    d.onResponse(3, 500, 5);
    expect(health.isEjected(3)).toBe(true);
    d.onActiveHealthCheckPassed(3, 6);
    expect(health.isEjected(3)).toBe(false);
  });

  it('catches up with a long idle stretch at once', () => {
    const { d, health } = detector({ consecutive5xx: 1 });
    d.onResponse(0, 500, 1);
    d.advance(10_000_000);
    expect(health.isEjected(0)).toBe(false);
    d.onResponse(0, 500, 10_000_001);
    d.advance(10_000_001 + 10_999);
    expect(health.isEjected(0)).toBe(false); // multiplier decayed to 0 → base time again
  });

  it('carries state over to a new endpoint list (reload), by endpoint', () => {
    const { d, eps } = detector({ consecutive5xx: 2 });
    d.onResponse(1, 500, 1);
    d.onResponse(1, 500, 1);
    d.onResponse(2, 500, 1);
    const next = [eps[2]!, eps[1]!, endpoints(5)[4]!];
    const health = new EndpointHealth(3, 0);
    const d2 = new OutlierDetector({ ...BASE, consecutive5xx: 2 }, next, health);
    d2.carryFrom(d);
    expect([0, 1, 2].map((i) => health.isEjected(i))).toEqual([false, true, false]);
    d2.onResponse(0, 500, 2); // the old endpoint 2 had one 5xx already
    expect(health.isEjected(0)).toBe(true);
    expect(d2.snapshot(2).ejectionsActive).toBe(2);
  });
});
