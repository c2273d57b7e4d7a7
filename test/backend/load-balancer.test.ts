import { describe, expect, it } from 'vitest';
import { AllAvailable, EndpointHealth } from '../../shared/backend/endpoint-health.ts';
import { endpointOrigin, type Endpoint } from '../../shared/backend/endpoint-set.ts';
import {
  buildMaglevTable,
  chooseEndpoint,
  cookieValue,
  createLoadBalancer,
  hashRequest,
  isPrime,
  LeastRequestBalancer,
  MaglevBalancer,
  queryParam,
  RandomBalancer,
  RoundRobinBalancer,
  type HashRequest,
} from '../../shared/backend/load-balancer.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    address: `10.0.0.${i + 1}`,
    port: 8080,
    origin: endpointOrigin(`10.0.0.${i + 1}`, 8080),
  }));
}

function request(
  headers: Record<string, string> = {},
  clientIP = '192.0.2.1',
  query = '',
): HashRequest {
  return { header: (n) => headers[n], clientIP, query };
}

describe('RoundRobin', () => {
  it('cycles through the endpoints in order', () => {
    const lb = new RoundRobinBalancer(3, new AllAvailable(3));
    const random = seededRandom(1);
    expect([0, 1, 2, 3, 4, 5].map(() => lb.pick())).toEqual([0, 1, 2, 0, 1, 2]);
    expect(chooseEndpoint(lb, random, undefined, undefined)).toBe(0);
  });

  it('skips endpoints that are not available, and answers -1 when none is', () => {
    const health = new EndpointHealth(3, 0);
    const lb = new RoundRobinBalancer(3, health);
    health.setEjected(1, true);
    expect([1, 2, 3, 4].map(() => lb.pick())).toEqual([0, 2, 0, 2]);
    health.setEjected(0, true);
    health.setEjected(2, true);
    expect(lb.pick()).toBe(-1);
  });
});

describe('Random', () => {
  it('spreads evenly over the available endpoints only', () => {
    const health = new EndpointHealth(4, 0);
    health.setActiveFailed(3, true);
    const lb = new RandomBalancer(4, health);
    const random = seededRandom(7);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[lb.pick(random)]!++;
    expect(counts[3]).toBe(0);
    for (const c of counts.slice(0, 3)) expect(c).toBeGreaterThan(900);
  });
});

describe('LeastRequest', () => {
  it('prefers the endpoint with fewer requests in flight (two distinct choices)', () => {
    const lb = new LeastRequestBalancer(2, new AllAvailable(2));
    const random = seededRandom(3);
    lb.onRequestStart(0);
    lb.onRequestStart(0);
    for (let i = 0; i < 50; i++) expect(lb.pick(random)).toBe(1);
    lb.onRequestEnd(0);
    lb.onRequestEnd(0);
    lb.onRequestEnd(0); // never below zero
    expect(lb.active[0]).toBe(0);
  });

  it('with many endpoints, the busy one is rarely chosen', () => {
    const lb = new LeastRequestBalancer(5, new AllAvailable(5));
    const random = seededRandom(11);
    for (let i = 0; i < 10; i++) lb.onRequestStart(2);
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 1000; i++) counts[lb.pick(random)]!++;
    expect(counts[2]).toBe(0);
  });

  it('only compares available endpoints', () => {
    const health = new EndpointHealth(3, 0);
    const lb = new LeastRequestBalancer(3, health);
    health.setEjected(1, true);
    const random = seededRandom(5);
    for (let i = 0; i < 100; i++) expect(lb.pick(random)).not.toBe(1);
  });
});

describe('Maglev consistent hash', () => {
  it('only accepts prime table sizes (checked by the policy compiler)', () => {
    expect([65537, 5000011, 2, 3, 13].every(isPrime)).toBe(true);
    expect([1, 4, 65536, 100].some(isPrime)).toBe(false);
  });

  it('fills the table evenly', () => {
    const table = buildMaglevTable(
      endpoints(5).map((e) => e.origin),
      65537,
    );
    const counts = [0, 0, 0, 0, 0];
    for (const slot of table) counts[slot]!++;
    for (const c of counts) expect(Math.abs(c - 65537 / 5)).toBeLessThan(65537 / 5 / 20);
  });

  it('sends a key to the same endpoint every time', () => {
    const lb = new MaglevBalancer(
      endpoints(4).map((e) => e.origin),
      new AllAvailable(4),
      65537,
    );
    const random = seededRandom(1);
    for (const key of [1, 42, 0xdeadbeef, 123456789]) {
      const first = lb.pick(random, key, 0);
      for (let i = 0; i < 20; i++) expect(lb.pick(random, key, 0)).toBe(first);
    }
  });

  it('moves only the keys of an endpoint that leaves (minimal disruption)', () => {
    const all = endpoints(5).map((e) => e.origin);
    const before = buildMaglevTable(all, 65537);
    const remaining = all.filter((_, i) => i !== 2);
    const after = buildMaglevTable(remaining, 65537);
    const keys = 20_000;
    const random = seededRandom(9);
    let stayed = 0;
    let owned = 0;
    for (let k = 0; k < keys; k++) {
      const h = Math.floor(random() * 0x100000000);
      const was = all[before[h % 65537]!];
      const now = remaining[after[h % 65537]!];
      if (was === all[2]) {
        owned++;
        continue;
      }
      if (was === now) stayed++;
    }
    // Every key of the endpoints that stayed keeps its endpoint, but for a few percent.
    expect(stayed / (keys - owned)).toBeGreaterThan(0.95);
  });

  it('re-maps only the keys of an ejected endpoint, and takes them back when it returns', () => {
    const health = new EndpointHealth(4, 0);
    const lb = new MaglevBalancer(
      endpoints(4).map((e) => e.origin),
      health,
      65537,
    );
    const random = seededRandom(4);
    const keys = Array.from({ length: 2000 }, (_, i) => (i * 2654435761) >>> 0);
    const before = keys.map((k) => lb.pick(random, k, 0));
    health.setEjected(1, true);
    const during = keys.map((k) => lb.pick(random, k, 0));
    expect(during).not.toContain(1);
    const movedOthers = keys.filter((_, i) => before[i] !== 1 && during[i] !== before[i]).length;
    expect(movedOthers / keys.length).toBeLessThan(0.05);
    health.setEjected(1, false);
    expect(keys.map((k) => lb.pick(random, k, 0))).toEqual(before);
  });

  it('picks at random without a key, and elsewhere on re-selection', () => {
    const lb = new MaglevBalancer(
      endpoints(3).map((e) => e.origin),
      new AllAvailable(3),
      13,
    );
    const random = seededRandom(2);
    const seen = new Set(Array.from({ length: 100 }, () => lb.pick(random, undefined, 0)));
    expect(seen.size).toBe(3);
    const key = 77;
    const first = lb.pick(random, key, 0);
    expect(chooseEndpoint(lb, random, key, [first])).not.toBe(first);
  });
});

describe('chooseEndpoint (retry host predicate)', () => {
  it('avoids endpoints already tried when another is available', () => {
    const rr = createLoadBalancer({ type: 'RoundRobin' }, endpoints(3), new AllAvailable(3));
    const random = seededRandom(8);
    for (let i = 0; i < 10; i++) expect(chooseEndpoint(rr, random, undefined, [0, 1])).toBe(2);
    // Random re-draws at most 5 times (Envoy's host_selection_retry_max_attempts), so it misses
    // the one untried endpoint of three only (2/3)^5 ≈ 13% of the time.
    const lb = createLoadBalancer({ type: 'Random' }, endpoints(3), new AllAvailable(3));
    let untried = 0;
    for (let i = 0; i < 1000; i++)
      if (chooseEndpoint(lb, random, undefined, [0, 1]) === 2) untried++;
    expect(untried).toBeGreaterThan(820);
    expect(untried).toBeLessThan(920);
  });

  it('falls back to a tried endpoint when it is the only one', () => {
    const lb = createLoadBalancer({ type: 'RoundRobin' }, endpoints(1), new AllAvailable(1));
    expect(chooseEndpoint(lb, seededRandom(1), undefined, [0])).toBe(0);
  });
});

describe('request hash keys', () => {
  it('hashes headers, combining several; none present gives no key', () => {
    const policy = { type: 'Headers', names: ['x-user', 'x-tenant'] } as const;
    const a = hashRequest(policy, request({ 'x-user': 'ann' })).hash;
    const b = hashRequest(policy, request({ 'x-user': 'ann', 'x-tenant': 't1' })).hash;
    expect(a).toBe(hashRequest(policy, request({ 'x-user': 'ann' })).hash);
    expect(b).not.toBe(a);
    expect(hashRequest(policy, request({})).hash).toBeUndefined();
  });

  it('hashes the client IP for SourceIP', () => {
    const p = { type: 'SourceIP' } as const;
    expect(hashRequest(p, request({}, '10.1.1.1')).hash).toBe(
      hashRequest(p, request({}, '10.1.1.1')).hash,
    );
    expect(hashRequest(p, request({}, '10.1.1.1')).hash).not.toBe(
      hashRequest(p, request({}, '10.1.1.2')).hash,
    );
  });

  it('hashes query parameters', () => {
    const p = { type: 'QueryParams', names: ['user'] } as const;
    expect(queryParam('a=1&user=j%20d', 'user')).toBe('j d');
    expect(hashRequest(p, request({}, '', 'user=jd')).hash).toBe(
      hashRequest(p, request({}, '', 'x=1&user=jd')).hash,
    );
    expect(hashRequest(p, request({}, '', 'x=1')).hash).toBeUndefined();
  });

  it('reads a cookie, quotes removed', () => {
    expect(cookieValue('a=1; session="abc"; b=2', 'session')).toBe('abc');
    expect(cookieValue('a=1', 'session')).toBeUndefined();
  });

  it('generates the cookie when a ttl is set, with the Set-Cookie Envoy would send', () => {
    const p = {
      type: 'Cookie',
      name: 'sticky',
      ttlSeconds: 3600,
      attributes: [['SameSite', 'Strict']] as const,
    } as const;
    const first = hashRequest(p, request({}), () => '192.0.2.1:5000|198.51.100.1:80');
    expect(first.setCookie).toMatch(
      /^sticky="[0-9a-f]{16}"; Max-Age=3600; SameSite=Strict; HttpOnly$/,
    );
    const value = /"(.+)"/.exec(first.setCookie ?? '')![1]!;
    // The request that comes back with the cookie hashes the same as the one that got it.
    const next = hashRequest(p, request({ cookie: `sticky="${value}"` }));
    expect(next.hash).toBe(first.hash);
    expect(next.setCookie).toBeUndefined();
    // Without a ttl nothing is generated and the request has no key.
    expect(hashRequest({ ...p, ttlSeconds: undefined }, request({})).hash).toBeUndefined();
  });
});
