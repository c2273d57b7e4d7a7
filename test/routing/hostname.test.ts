import { describe, expect, it } from 'vitest';
import {
  compareHostnameSpecificity,
  hostnameCovers,
  hostnameMatches,
  intersectHostnames,
  normalizeHost,
  parseHostHeader,
} from '../../shared/routing/hostname.ts';

describe('normalizeHost', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Example.COM', 'example.com'],
    // "Implementations MUST ignore any port value specified in the HTTP Host header"
    ['very.specific.com:1234', 'very.specific.com'],
    ['example.com.', 'example.com'],
    ['EXAMPLE.com.:8443', 'example.com'],
    ['[::1]', '[::1]'],
    ['[::1]:8080', '[::1]'],
    ['[2001:DB8::1]:443', '[2001:db8::1]'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['', ''],
  ])('%j → %j', (host, want) => {
    expect(normalizeHost(host)).toBe(want);
  });
});

describe('parseHostHeader', () => {
  it.each([
    ['example.com', { hostname: 'example.com' }],
    ['Example.com:8080', { hostname: 'example.com', port: 8080 }],
    ['example.com:', { hostname: 'example.com' }],
    ['[::1]:443', { hostname: '[::1]', port: 443 }],
    ['10.0.0.1:65535', { hostname: '10.0.0.1', port: 65535 }],
  ])('%j', (value, want) => {
    expect(parseHostHeader(value)).toEqual(want);
  });

  it.each(['', ':80', 'exa mple.com', 'a/b', 'a:b:c', '[::1', '[::1]x', 'a.com:99999', 'a.com:8x'])(
    'rejects %j',
    (value) => {
      expect(parseHostHeader(value)).toBeUndefined();
    },
  );
});

describe('hostnameMatches (Gateway API wildcard = suffix match)', () => {
  // "a match for `*.example.com` would match both `test.example.com`, and
  //  `foo.test.example.com`, but not `example.com`."
  it.each([
    ['*.example.com', 'test.example.com', true],
    ['*.example.com', 'foo.test.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'testexample.com', false],
    ['*.example.com', '.example.com', false],
    ['example.com', 'example.com', true],
    ['example.com', 'a.example.com', false],
    ['*', 'anything.at.all', true],
  ])('%s vs %s → %s', (pattern, host, want) => {
    expect(hostnameMatches(pattern, host)).toBe(want);
  });
});

describe('hostnameCovers', () => {
  it.each([
    ['*.example.com', '*.example.com', true],
    ['*.example.com', '*.a.example.com', true],
    ['*.a.example.com', '*.example.com', false],
    ['*.example.com', 'a.example.com', true],
    ['a.example.com', '*.example.com', false],
    ['*', '*.example.com', true],
    ['*.example.com', '*', false],
  ])('%s ⊇ %s → %s', (general, specific, want) => {
    expect(hostnameCovers(general, specific)).toBe(want);
  });
});

describe('intersectHostnames (HTTPRouteSpec.Hostnames)', () => {
  it('either side unset: the other side, [] meaning any host', () => {
    expect(intersectHostnames(undefined, [])).toEqual([]);
    expect(intersectHostnames(undefined, ['a.com', '*.b.com'])).toEqual(['a.com', '*.b.com']);
    expect(intersectHostnames('test.example.com', [])).toEqual(['test.example.com']);
    expect(intersectHostnames('*.example.com', [])).toEqual(['*.example.com']);
  });

  // "A Listener with `test.example.com` as the hostname matches HTTPRoutes that have either not
  //  specified any hostnames, or have specified at least one of `test.example.com` or
  //  `*.example.com`."
  it('listener test.example.com', () => {
    expect(intersectHostnames('test.example.com', ['test.example.com'])).toEqual([
      'test.example.com',
    ]);
    // the more specific of the pair is kept: the listener's precise name
    expect(intersectHostnames('test.example.com', ['*.example.com'])).toEqual(['test.example.com']);
    expect(intersectHostnames('test.example.com', ['other.example.com'])).toBeNull();
    expect(intersectHostnames('test.example.com', ['example.com'])).toBeNull();
  });

  // "A Listener with `*.example.com` as the hostname matches HTTPRoutes that have either not
  //  specified any hostnames or have specified at least one hostname that matches the Listener
  //  hostname. For example, `*.example.com`, `test.example.com`, and `foo.test.example.com` would
  //  all match. On the other hand, `example.com` and `test.example.net` would not match."
  it('listener *.example.com', () => {
    expect(
      intersectHostnames('*.example.com', [
        '*.example.com',
        'test.example.com',
        'foo.test.example.com',
      ]),
    ).toEqual(['*.example.com', 'test.example.com', 'foo.test.example.com']);
    expect(intersectHostnames('*.example.com', ['example.com'])).toBeNull();
    expect(intersectHostnames('*.example.com', ['test.example.net'])).toBeNull();
    expect(intersectHostnames('*.example.com', ['*.a.example.com'])).toEqual(['*.a.example.com']);
    expect(intersectHostnames('*.a.example.com', ['*.example.com'])).toEqual(['*.a.example.com']);
  });

  // "if a Listener specified `*.example.com`, and the HTTPRoute specified `test.example.com` and
  //  `test.example.net`, `test.example.net` must not be considered for a match."
  it('drops route hostnames that do not match the listener', () => {
    expect(intersectHostnames('*.example.com', ['test.example.com', 'test.example.net'])).toEqual([
      'test.example.com',
    ]);
  });

  // conformance manifests tests/httproute-hostname-intersection.yaml
  it('HTTPRouteHostnameIntersection attachments', () => {
    expect(
      intersectHostnames('very.specific.com', [
        'non.matching.com',
        '*.nonmatchingwildcard.io',
        'very.specific.com',
      ]),
    ).toEqual(['very.specific.com']);
    expect(
      intersectHostnames('*.wildcard.io', [
        'non.matching.com',
        'wildcard.io',
        'foo.wildcard.io',
        'bar.wildcard.io',
        'foo.bar.wildcard.io',
      ]),
    ).toEqual(['foo.wildcard.io', 'bar.wildcard.io', 'foo.bar.wildcard.io']);
    expect(intersectHostnames('very.specific.com', ['non.matching.com', '*.specific.com'])).toEqual(
      ['very.specific.com'],
    );
    expect(intersectHostnames('*.anotherwildcard.io', ['*.anotherwildcard.io'])).toEqual([
      '*.anotherwildcard.io',
    ]);
    for (const l of ['very.specific.com', '*.wildcard.io', '*.anotherwildcard.io']) {
      expect(intersectHostnames(l, ['specific.but.wrong.com', 'wildcard.io'])).toBeNull();
    }
  });

  it('normalizes case and trailing dots and deduplicates', () => {
    expect(intersectHostnames('*.Example.com', ['A.example.com.', 'a.example.com'])).toEqual([
      'a.example.com',
    ]);
    expect(intersectHostnames('a.example.com', ['*.example.com', 'a.example.com'])).toEqual([
      'a.example.com',
    ]);
  });
});

describe('compareHostnameSpecificity', () => {
  // "precedence must be given to rules from the HTTPRoute with the largest number of:
  //  Characters in a matching non-wildcard hostname. Characters in a matching hostname."
  it('orders exact, then longer wildcard suffixes, then the catch-all', () => {
    const sorted = ['*', '*.com', 'b.example.com', '*.example.com', '*.a.example.com'].sort(
      compareHostnameSpecificity,
    );
    expect(sorted).toEqual(['b.example.com', '*.a.example.com', '*.example.com', '*.com', '*']);
  });
});
