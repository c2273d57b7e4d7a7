import { describe, expect, it } from 'vitest';
import { canonicalIp, ipBlocksMatcher } from '../../shared/authz/ip-match.ts';
import {
  isPathTemplate,
  istioStringMatcher,
  pathMatcher,
} from '../../shared/authz/string-match.ts';

describe('Istio string match', () => {
  // authorization_policy.proto, message Rule:
  // "Any string field in the rule supports Exact, Prefix, Suffix and Presence match:
  //  - Exact match: "abc" will match on value "abc".
  //  - Prefix match: "abc*" will match on value "abc" and "abcd".
  //  - Suffix match: "*abc" will match on value "abc" and "xabc".
  //  - Presence match: "*" will match when value is not empty."
  it.each([
    ['abc', 'abc', true],
    ['abc', 'abcd', false],
    ['abc', 'ABC', false],
    ['abc*', 'abc', true],
    ['abc*', 'abcd', true],
    ['abc*', 'xabc', false],
    ['*abc', 'abc', true],
    ['*abc', 'xabc', true],
    ['*abc', 'abcx', false],
    ['*', 'x', true],
    ['*', '', false],
    ['*', undefined, false],
    ['abc', undefined, false],
    // Istio tests "*" first, then a leading "*": "*a*" is the suffix "a*", literally.
    ['*a*', 'ba*', true],
    ['*a*', 'bab', false],
  ] as const)('%s on %s → %s', (pattern, value, want) => {
    expect(istioStringMatcher(pattern)(value)).toBe(want);
  });

  // Operation.hosts: "A list of hosts as specified in the HTTP request. The match is
  // case-insensitive." The Istio ingress test denies "DENY.B.COM" and "Deny.Suffix.B.Com" with
  // hosts ["deny.b.com", "*.suffix.b.com", "prefix.b.*"].
  it.each([
    ['deny.b.com', 'DENY.B.COM', true],
    ['deny.b.com', 'Deny.B.Com', true],
    ['*.suffix.b.com', 'Deny.Suffix.B.Com', true],
    ['prefix.b.*', 'PREFIX.B.COM', true],
    ['deny.b.com', 'deny.b.com:80', false],
    ['deny.b.com:*', 'deny.b.com:80', true],
  ] as const)('host %s on %s → %s (case-insensitive)', (pattern, value, want) => {
    expect(istioStringMatcher(pattern, { ignoreCase: true })(value)).toBe(want);
  });
});

describe('path templates', () => {
  // Istio API (Operation.paths): "If a path in the list contains the `{*}` or `{**}` operator, it
  // will be interpreted as an Envoy Uri Template." Envoy: `{*}` matches one path segment, `{**}`
  // any run of segments. Rows from Istio's TestAuthz_PathTemplating.
  it.each([
    ['/allow/admin/{**}', '/allow/admin/', true],
    ['/allow/admin/{**}', '/allow/admin', false],
    ['/allow/admin/{**}', '/allow/user/', false],
    ['/allow/admin/{**}', '/allow/admin/temp.txt', true],
    ['/allow/admin/{**}', '/allow/admin/foo/temp.txt', true],
    ['/foo/{*}/bar/{**}', '/foo/buzz/bar/bat.txt', true],
    ['/foo/{*}/bar/{**}', '/foo/buzz/bar/bat/fuzz.txt', true],
    ['/foo/{*}/bar/{**}', '/foo/bar/bat.txt', false],
    ['/foo/{*}/bar/{**}', '/foo//bar/bat.txt', false],
    ['/store/{**}/cart', '/store//cart', true],
    ['/store/{**}/cart', '/store/cart', false],
    ['/store/{**}/cart', '/store/a/b/cart', true],
    ['/a/{*}', '/a/b/c', false],
    ['/a/{*}.txt', '/a/b.txt', true],
  ] as const)('%s on %s → %s', (template, path, want) => {
    expect(isPathTemplate(template)).toBe(true);
    expect(pathMatcher(template)(path)).toBe(want);
  });

  it('a path without an operator keeps the string match', () => {
    expect(isPathTemplate('/public*')).toBe(false);
    expect(pathMatcher('/public*')('/public/x')).toBe(true);
    expect(pathMatcher('*/presenter')('/x/presenter')).toBe(true);
    // Regex characters in a template are literal.
    expect(pathMatcher('/a.b/{*}')('/axb/c')).toBe(false);
  });
});

describe('IP blocks', () => {
  // Source.ipBlocks: "Single IP (e.g. "203.0.113.4") and CIDR (e.g. "203.0.113.0/24") are
  // supported." The ingress test: remoteIpBlocks ["172.17.72.46", "192.168.4.0/23"] catches
  // 172.17.72.46 and 192.168.5.233, not 10.4.5.6.
  it.each([
    ['172.17.72.46', true],
    ['192.168.5.233', true],
    ['192.168.6.1', false],
    ['10.4.5.6', false],
    ['::ffff:172.17.72.46', true],
    [undefined, false],
    ['not-an-ip', false],
  ] as const)('%s → %s', (ip, want) => {
    expect(ipBlocksMatcher(['172.17.72.46', '192.168.4.0/23'])(ip)).toBe(want);
  });

  it('IPv6 blocks and the IPv4-mapped form', () => {
    expect(ipBlocksMatcher(['2001:db8::/32'])('2001:db8::1')).toBe(true);
    expect(ipBlocksMatcher(['2001:db8::/32'])('2001:db9::1')).toBe(false);
    expect(canonicalIp('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(canonicalIp('::1')).toBe('::1');
  });
});
