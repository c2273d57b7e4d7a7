import { describe, expect, it } from 'vitest';
import { EndpointHealth } from '../../shared/backend/endpoint-health.ts';

describe('endpoint health and the panic threshold', () => {
  it('offers only healthy endpoints while enough are healthy', () => {
    const h = new EndpointHealth(4);
    h.setEjected(0, true);
    expect(h.panic).toBe(false);
    expect(h.availableCount).toBe(3);
    expect([0, 1, 2, 3].map((i) => h.available(i))).toEqual([false, true, true, true]);
  });

  it('offers every endpoint once fewer than 50% are healthy (Envoy panic mode)', () => {
    const h = new EndpointHealth(4);
    h.setEjected(0, true);
    h.setActiveFailed(1, true);
    expect(h.panic).toBe(false); // exactly 50% healthy is not below the threshold
    h.setActiveFailed(2, true);
    expect(h.panic).toBe(true);
    expect(h.availableCount).toBe(4);
    expect(h.healthyCount).toBe(1);
    h.setActiveFailed(2, false);
    expect(h.panic).toBe(false);
  });

  it('with a threshold of 0 never panics: no healthy endpoint means none at all', () => {
    const h = new EndpointHealth(2, 0);
    h.setEjected(0, true);
    h.setEjected(1, true);
    expect(h.panic).toBe(false);
    expect(h.availableCount).toBe(0);
  });

  it('counts an endpoint once when both checks fail it, and bumps the version on change', () => {
    const h = new EndpointHealth(3, 0);
    const v = h.version;
    h.setEjected(1, true);
    h.setActiveFailed(1, true);
    h.setActiveFailed(1, true); // no change
    expect(h.version).toBe(v + 2);
    expect(h.healthyCount).toBe(2);
    h.setEjected(1, false);
    expect(h.healthyCount).toBe(2);
    h.setActiveFailed(1, false);
    expect(h.healthyCount).toBe(3);
  });
});
