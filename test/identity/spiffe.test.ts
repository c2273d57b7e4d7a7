import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../shared/identity/errors.ts';
import {
  DEFAULT_TRUST_DOMAIN,
  formatPrincipal,
  formatSpiffeId,
  isSpiffeId,
  parsePrincipal,
  parseSpiffeId,
  parseWorkloadSpiffeId,
  principalToSpiffeId,
  spiffeIdToPrincipal,
  toWorkloadSpiffeId,
  workloadSpiffeId,
} from '../../shared/identity/spiffe.ts';

// Cases from the SPIFFE ID standard (standards/SPIFFE-ID.md §2), its examples and its rules.
describe('parseSpiffeId: valid ids', () => {
  it.each([
    ['spiffe://trustdomain', 'trustdomain', ''],
    ['spiffe://staging.example.com/payments/mysql', 'staging.example.com', '/payments/mysql'],
    ['spiffe://staging.example.com/payments/web-fe', 'staging.example.com', '/payments/web-fe'],
    [
      'spiffe://k8s-west.example.com/ns/staging/sa/default',
      'k8s-west.example.com',
      '/ns/staging/sa/default',
    ],
    [
      'spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453',
      'example.com',
      '/9eebccd2-12bf-40a6-b262-65fe0487d453',
    ],
    ['spiffe://trust_domain_name.example.com/x', 'trust_domain_name.example.com', '/x'],
    // §2.1: dotted-quad IPv4 is a valid trust domain name, processed like any other.
    ['spiffe://10.0.0.1/workload', '10.0.0.1', '/workload'],
    // §2.4: the path is case-sensitive and may hold uppercase letters.
    ['spiffe://td/Path/UPPER_case-1.2', 'td', '/Path/UPPER_case-1.2'],
    // Only "." and ".." are relative modifiers; other all-dot segments are plain names.
    ['spiffe://td/.../.hidden', 'td', '/.../.hidden'],
  ])('%s', (id, trustDomain, path) => {
    expect(parseSpiffeId(id)).toEqual({ trustDomain, path });
    expect(isSpiffeId(id)).toBe(true);
  });

  it('accepts ids up to 2048 bytes', () => {
    const id = `spiffe://td/${'a'.repeat(2048 - 'spiffe://td/'.length)}`;
    expect(id.length).toBe(2048);
    expect(parseSpiffeId(id).trustDomain).toBe('td');
  });
});

describe('parseSpiffeId: invalid ids', () => {
  it.each([
    ['', /cannot be empty/],
    ['http://td/path', /scheme must be "spiffe:\/\/"/],
    ['spiffe:/td/path', /scheme/],
    ['spiffe:td/path', /scheme/],
    ['td/path', /scheme/],
    // Canonical spelling only, as go-spiffe: one identity, one string.
    ['SPIFFE://td/path', /scheme must be lowercase/],
    ['spiffe://', /trust domain is missing/],
    ['spiffe:///path', /trust domain is missing/],
    // §2.1: the host must be lowercase [a-z0-9.-_], no userinfo, no port, no percent-encoding.
    ['spiffe://Example.com/path', /lowercase letters/],
    ['spiffe://user@td/path', /userinfo/],
    ['spiffe://user:pass@td/path', /userinfo/],
    ['spiffe://td:8080/path', /port/],
    ['spiffe://td:/path', /port/],
    ['spiffe://t%64/path', /percent-encoded/],
    ['spiffe://[::1]/path', /IPv6/],
    ['spiffe://td$/path', /lowercase letters/],
    // §2.2: no percent-encoding, no empty or dot segments, no trailing "/", [a-zA-Z0-9.-_].
    ['spiffe://td/', /trailing/],
    ['spiffe://td/path/', /trailing/],
    ['spiffe://td//path', /empty segments/],
    ['spiffe://td/a//b', /empty segments/],
    ['spiffe://td/./path', /dot segments/],
    ['spiffe://td/path/.', /dot segments/],
    ['spiffe://td/../path', /dot segments/],
    ['spiffe://td/ns/a/../b', /dot segments/],
    ['spiffe://td/pa%74h', /percent-encoded/],
    ['spiffe://td/ns%2Fother', /percent-encoded/],
    ['spiffe://td/pa th', /letters, digits/],
    ['spiffe://td/pa$th', /letters, digits/],
    ['spiffe://td/p@th', /letters, digits/],
    ['spiffe://td/päth', /letters, digits/],
    // §2: no query, no fragment.
    ['spiffe://td/path?query', /query/],
    ['spiffe://td?query', /query/],
    ['spiffe://td/path#fragment', /fragment/],
    // §2.3
    [`spiffe://td/${'a'.repeat(2049 - 'spiffe://td/'.length)}`, /longer than 2048/],
    [`spiffe://${'a'.repeat(256)}/path`, /longer than 255/],
  ])('%s', (id, reason) => {
    expect(() => parseSpiffeId(id)).toThrow(reason);
    expect(isSpiffeId(id)).toBe(false);
    try {
      parseSpiffeId(id);
    } catch (err) {
      expect(err).toBeInstanceOf(IdentityError);
      expect((err as IdentityError).code).toBe('MG_ERR_SPIFFE_ID_INVALID');
    }
  });
});

describe('workload ids', () => {
  it('builds spiffe://<td>/ns/<ns>/sa/<sa> with cluster.local by default', () => {
    expect(DEFAULT_TRUST_DOMAIN).toBe('cluster.local');
    expect(workloadSpiffeId({ namespace: 'default', serviceAccount: 'bookinfo-reviews' })).toBe(
      'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
    );
    expect(
      workloadSpiffeId({ namespace: 'prod', serviceAccount: 'web', trustDomain: 'example.org' }),
    ).toBe('spiffe://example.org/ns/prod/sa/web');
  });

  it('refuses parts that would change the path or break the id', () => {
    expect(() => workloadSpiffeId({ namespace: 'a/sa/b', serviceAccount: 'c' })).toThrow(
      /contains "\/"/,
    );
    expect(() => workloadSpiffeId({ namespace: '..', serviceAccount: 'c' })).toThrow(
      /dot segments/,
    );
    expect(() => workloadSpiffeId({ namespace: '', serviceAccount: 'c' })).toThrow(/empty/);
    expect(() => workloadSpiffeId({ namespace: 'a', serviceAccount: 'b%2F' })).toThrow(/percent/);
    expect(() =>
      workloadSpiffeId({ namespace: 'a', serviceAccount: 'b', trustDomain: 'Cluster.Local' }),
    ).toThrow(/lowercase/);
    expect(() => formatSpiffeId('td', ['ok', 'a?b'])).toThrow(/letters, digits/);
  });

  it('parses a workload id into trust domain, namespace and service account', () => {
    expect(parseWorkloadSpiffeId('spiffe://cluster.local/ns/default/sa/web')).toEqual({
      trustDomain: 'cluster.local',
      namespace: 'default',
      serviceAccount: 'web',
    });
  });

  it.each([
    'spiffe://cluster.local',
    'spiffe://cluster.local/ns/default',
    'spiffe://cluster.local/ns/default/sa',
    'spiffe://cluster.local/sa/web/ns/default',
    'spiffe://cluster.local/ns/default/sa/web/extra',
    'spiffe://cluster.local/x/ns/default/sa/web',
  ])('refuses %s as a workload id', (id) => {
    expect(() => parseWorkloadSpiffeId(id)).toThrow(/\/ns\/<namespace>\/sa\/<service-account>/);
  });
});

describe('Istio principals', () => {
  it('converts between principal and SPIFFE id both ways', () => {
    const id = 'spiffe://cluster.local/ns/foo/sa/sleep';
    const principal = 'cluster.local/ns/foo/sa/sleep';
    expect(spiffeIdToPrincipal(id)).toBe(principal);
    expect(principalToSpiffeId(principal)).toBe(id);
    expect(formatPrincipal({ namespace: 'foo', serviceAccount: 'sleep' })).toBe(principal);
    expect(parsePrincipal(principal)).toEqual({
      trustDomain: 'cluster.local',
      namespace: 'foo',
      serviceAccount: 'sleep',
    });
    expect(toWorkloadSpiffeId(principal)).toBe(id);
    expect(toWorkloadSpiffeId(id)).toBe(id);
  });

  it.each([
    'spiffe://cluster.local/ns/foo/sa/sleep',
    'cluster.local/ns/foo',
    'cluster.local/ns/foo/sa/sleep/',
    'Cluster.local/ns/foo/sa/sleep',
    '/ns/foo/sa/sleep',
    'cluster.local/ns/../sa/sleep',
  ])('refuses %s as a principal', (principal) => {
    expect(() => parsePrincipal(principal)).toThrow(IdentityError);
  });

  it('refuses a non-workload SPIFFE id as a principal source', () => {
    expect(() => spiffeIdToPrincipal('spiffe://cluster.local/payments/web')).toThrow(/workload id/);
  });
});
