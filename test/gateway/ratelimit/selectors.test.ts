import { describe, expect, it } from 'vitest';
import {
  compileSelectors,
  DISTINCT_SEPARATOR as SEP,
  type SelectableRequest,
} from '../../../gateway/ratelimit/selectors.ts';
import { rateLimitSelectCondition } from '../../../shared/config/schemas/envoy-gateway.ts';

// clientSelectors as Envoy Gateway defines them: headers, query parameters, methods, path and
// source CIDR; Distinct gives a bucket per value; every condition must hold.

function req(over: Partial<SelectableRequest> & { headers?: Record<string, string> } = {}) {
  const headers = over.headers ?? {};
  return {
    method: over.method ?? 'GET',
    path: over.path ?? '/',
    query: over.query ?? '',
    clientIP: over.clientIP ?? '10.0.0.1',
    header: (n: string) => headers[n],
  } satisfies SelectableRequest;
}

/** Parses through the schema, so defaults (type Exact, invert false) are as in a real config. */
function selector(...conditions: unknown[]) {
  return compileSelectors(conditions.map((c) => rateLimitSelectCondition.parse(c)));
}

describe('rate-limit clientSelectors', () => {
  it('selects every request when there are none', () => {
    expect(compileSelectors()(req())).toBe('');
    expect(compileSelectors([])(req({ method: 'POST' }))).toBe('');
  });

  it('matches headers exactly (case-sensitive values), by regular expression, and inverted', () => {
    const exact = selector({ headers: [{ name: 'X-Plan', value: 'free' }] });
    expect(exact(req({ headers: { 'x-plan': 'free' } }))).toBe('');
    expect(exact(req({ headers: { 'x-plan': 'Free' } }))).toBeUndefined();
    expect(exact(req())).toBeUndefined();
    const regex = selector({
      headers: [{ name: 'x-plan', type: 'RegularExpression', value: 'free|trial' }],
    });
    expect(regex(req({ headers: { 'x-plan': 'trial' } }))).toBe('');
    // The whole value must match.
    expect(regex(req({ headers: { 'x-plan': 'free-plus' } }))).toBeUndefined();
    const inverted = selector({ headers: [{ name: 'x-plan', value: 'gold', invert: true }] });
    expect(inverted(req({ headers: { 'x-plan': 'free' } }))).toBe('');
    expect(inverted(req({ headers: { 'x-plan': 'gold' } }))).toBeUndefined();
    // A missing header does not match the value, so the inverted condition holds.
    expect(inverted(req())).toBe('');
  });

  it('gives each distinct header value its own bucket, and skips requests without the header', () => {
    const perUser = selector({ headers: [{ name: 'x-user', type: 'Distinct' }] });
    expect(perUser(req({ headers: { 'x-user': 'alice' } }))).toBe(`${SEP}alice`);
    expect(perUser(req({ headers: { 'x-user': 'bob' } }))).toBe(`${SEP}bob`);
    expect(perUser(req())).toBeUndefined();
    // Long values are hashed: the key stays short.
    const long = perUser(req({ headers: { 'x-user': 'u'.repeat(500) } }));
    expect(long?.length).toBeLessThan(60);
    expect(long).toBe(perUser(req({ headers: { 'x-user': 'u'.repeat(500) } })));
  });

  it('matches any listed method and none of the inverted ones', () => {
    const writes = selector({ methods: [{ value: 'POST' }, { value: 'PUT' }] });
    expect(writes(req({ method: 'PUT' }))).toBe('');
    expect(writes(req({ method: 'GET' }))).toBeUndefined();
    const notGet = selector({ methods: [{ value: 'GET', invert: true }] });
    expect(notGet(req({ method: 'DELETE' }))).toBe('');
    expect(notGet(req({ method: 'GET' }))).toBeUndefined();
  });

  it('matches paths by whole-segment prefix, exactly, or by regular expression', () => {
    const prefix = selector({ path: { value: '/api' } });
    expect(prefix(req({ path: '/api' }))).toBe('');
    expect(prefix(req({ path: '/api/orders' }))).toBe('');
    expect(prefix(req({ path: '/apix' }))).toBeUndefined();
    const exact = selector({ path: { type: 'Exact', value: '/login' } });
    expect(exact(req({ path: '/login' }))).toBe('');
    expect(exact(req({ path: '/login/x' }))).toBeUndefined();
    const regex = selector({ path: { type: 'RegularExpression', value: '/orders/\\d+' } });
    expect(regex(req({ path: '/orders/42' }))).toBe('');
    expect(regex(req({ path: '/orders/42/items' }))).toBeUndefined();
    const notAdmin = selector({ path: { value: '/admin', invert: true } });
    expect(notAdmin(req({ path: '/shop' }))).toBe('');
    expect(notAdmin(req({ path: '/admin/users' }))).toBeUndefined();
  });

  it('matches the client address against a CIDR: one bucket for the range, or one per address', () => {
    const range = selector({ sourceCIDR: { value: '192.168.0.0/16' } });
    expect(range(req({ clientIP: '192.168.4.2' }))).toBe('');
    expect(range(req({ clientIP: '10.0.0.1' }))).toBeUndefined();
    expect(range(req({ clientIP: '::1' }))).toBeUndefined();
    const perClient = selector({ sourceCIDR: { type: 'Distinct', value: '0.0.0.0/0' } });
    expect(perClient(req({ clientIP: '203.0.113.7' }))).toBe(`${SEP}203.0.113.7`);
    const v6 = selector({ sourceCIDR: { value: '2001:db8::/32' } });
    expect(v6(req({ clientIP: '2001:db8::5' }))).toBe('');
    expect(v6(req({ clientIP: '10.0.0.1' }))).toBeUndefined();
    const outside = selector({ sourceCIDR: { value: '10.0.0.0/8', invert: true } });
    expect(outside(req({ clientIP: '10.1.2.3' }))).toBeUndefined();
    expect(outside(req({ clientIP: '172.16.0.1' }))).toBe('');
  });

  it('matches query parameters, Distinct included', () => {
    const perKey = selector({ queryParams: [{ name: 'key', type: 'Distinct' }] });
    expect(perKey(req({ query: 'a=1&key=k%201' }))).toBe(`${SEP}k 1`);
    expect(perKey(req({ query: 'a=1' }))).toBeUndefined();
    const debug = selector({ queryParams: [{ name: 'debug', value: 'true' }] });
    expect(debug(req({ query: 'debug=true' }))).toBe('');
    expect(debug(req({ query: 'debug=false' }))).toBeUndefined();
  });

  it('needs every condition, and every field of one, to hold; distinct values in order', () => {
    const s = selector(
      { methods: [{ value: 'POST' }], headers: [{ name: 'x-tenant', type: 'Distinct' }] },
      { sourceCIDR: { type: 'Distinct', value: '10.0.0.0/8' } },
    );
    expect(s(req({ method: 'POST', headers: { 'x-tenant': 't1' }, clientIP: '10.9.9.9' }))).toBe(
      `${SEP}t1${SEP}10.9.9.9`,
    );
    expect(
      s(req({ method: 'GET', headers: { 'x-tenant': 't1' }, clientIP: '10.9.9.9' })),
    ).toBeUndefined();
    expect(
      s(req({ method: 'POST', headers: { 'x-tenant': 't1' }, clientIP: '192.0.2.1' })),
    ).toBeUndefined();
  });
});
