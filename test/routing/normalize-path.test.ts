import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ESCAPED_SLASHES_ACTION,
  normalizePath,
  removeDotSegments,
  type EscapedSlashesAction,
  type PathNormalization,
} from '../../shared/routing/normalize-path.ts';

function path(raw: string, options?: PathNormalization): string {
  const n = normalizePath(raw, options);
  if (!n.ok) throw new Error(`rejected ${raw}: ${n.reason}`);
  return n.path;
}

describe('normalizePath: RFC 3986 normalization (Envoy normalize_path)', () => {
  it.each([
    // already normal paths do not change
    ['/', '/'],
    ['/xyz', '/xyz'],
    ['/x/y/z', '/x/y/z'],
    ['/A/B/C', '/A/B/C'], // no case normalization of the path itself
    // dot segments, §5.2.4
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/../../../../c', '/c'], // more ".." than segments stops at the root
    ['/../a', '/a'],
    ['/./a/b', '/a/b'],
    ['/..', '/'],
    ['/a/..', '/'],
    ['/a/.', '/a/'],
    ['/a/b/..', '/a/'],
    ['/a/.b/..c', '/a/.b/..c'], // not dot segments
    // percent-encoding: unreserved decoded, the rest kept with uppercase hex (§6.2.2)
    ['/%7E', '/~'],
    ['/%7e', '/~'],
    ['/%41', '/A'],
    ['/%61%62c', '/abc'],
    ['/%2D%2E%5F%7E', '/-._~'],
    ['/a/b/%2E%2E/c', '/a/c'], // decoded dots are dot segments
    ['/a/b/%2e%2e/c', '/a/c'],
    ['/a/b/%2E./c', '/a/c'],
    ['/a/b/%2E/c', '/a/b/c'],
    ['/%c0%af', '/%C0%AF'],
    ['/%25', '/%25'], // "%" itself stays escaped
    ['/a%3fb', '/a%3Fb'], // an escaped "?" is not a query
    ['/%3Aa%40', '/%3Aa%40'], // escaped sub-delims stay escaped
    // literal backslash is a separator (Chromium/Envoy)
    ['/a/..\\c', '/c'],
    // characters that may not appear in a path are encoded
    ['/a b', '/a%20b'],
    ['/caf\u00e9', '/caf%C3%A9'],
    ['/{x}|^', '/%7Bx%7D%7C%5E'],
    // sub-delims, ":" and "@" are fine as they are
    ["/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="],
  ])('%s → %s', (raw, want) => {
    expect(path(raw)).toBe(want);
  });
});

describe('normalizePath: merge slashes (Envoy merge_slashes, Envoy Gateway default on)', () => {
  it.each([
    ['//a///b', '/a/b'],
    ['/a//b/c/', '/a/b/c/'],
    ['/a/b/c//', '/a/b/c/'],
    ['//', '/'],
    // dot segments first, then merge (Envoy's order): the ".." eats the empty segment
    ['/a//../b', '/a/b'],
  ])('%s → %s', (raw, want) => {
    expect(path(raw)).toBe(want);
  });

  it('keeps runs of slashes with disableMergeSlashes', () => {
    expect(path('//a///b', { disableMergeSlashes: true })).toBe('//a///b');
    expect(path('/a//../b', { disableMergeSlashes: true })).toBe('/a/b');
  });
});

describe('normalizePath: query', () => {
  it('splits off the query and leaves it untouched', () => {
    expect(normalizePath('/a//b?x=//y&z=%2f')).toEqual({
      ok: true,
      path: '/a/b',
      query: 'x=//y&z=%2f',
      redirect: false,
    });
    expect(normalizePath('/a?')).toMatchObject({ ok: true, path: '/a', query: '' });
    expect(normalizePath('/a??b')).toMatchObject({ ok: true, path: '/a', query: '?b' });
  });
});

describe('normalizePath: escapedSlashesAction (Envoy Gateway ClientTrafficPolicy path)', () => {
  it('defaults to UnescapeAndRedirect, as Envoy Gateway', () => {
    expect(DEFAULT_ESCAPED_SLASHES_ACTION).toBe('UnescapeAndRedirect');
    expect(normalizePath('/a%2Fb?q=1')).toEqual({
      ok: true,
      path: '/a/b',
      query: 'q=1',
      redirect: true,
    });
  });

  const cases: [string, EscapedSlashesAction, { path: string; redirect: boolean } | 'reject'][] = [
    ['/a%2Fb', 'KeepUnchanged', { path: '/a%2Fb', redirect: false }],
    ['/a%2fb', 'KeepUnchanged', { path: '/a%2Fb', redirect: false }], // hex uppercased
    ['/a%5cb', 'KeepUnchanged', { path: '/a%5Cb', redirect: false }],
    ['/a/..%2Fb', 'KeepUnchanged', { path: '/a/..%2Fb', redirect: false }], // not a dot segment
    ['/a%2Fb', 'RejectRequest', 'reject'],
    ['/a%5Cb', 'RejectRequest', 'reject'],
    ['/a%2fb', 'UnescapeAndForward', { path: '/a/b', redirect: false }],
    ['/a%5Cb', 'UnescapeAndForward', { path: '/a/b', redirect: false }],
    ['/a%2F%2Fb', 'UnescapeAndForward', { path: '/a/b', redirect: false }], // then merged
    ['/a%2F..%2Fb', 'UnescapeAndForward', { path: '/b', redirect: false }], // then resolved
    ['/a%2fb', 'UnescapeAndRedirect', { path: '/a/b', redirect: true }],
    ['/a%5cb', 'UnescapeAndRedirect', { path: '/a/b', redirect: true }],
    ['/a/b', 'UnescapeAndRedirect', { path: '/a/b', redirect: false }],
    ['/a//b', 'UnescapeAndRedirect', { path: '/a/b', redirect: false }], // only escapes redirect
  ];
  it.each(cases)('%s with %s', (raw, action, want) => {
    const n = normalizePath(raw, { escapedSlashesAction: action });
    if (want === 'reject') {
      expect(n.ok).toBe(false);
      if (!n.ok) expect(n.reason).toMatch(/escaped slash/);
    } else {
      expect(n).toMatchObject({ ok: true, ...want });
    }
  });
});

describe('normalizePath: invalid input is rejected with a reason', () => {
  it.each([
    ['', /start with "\/"/],
    ['a/b', /start with "\/"/],
    ['*', /start with "\/"/],
    ['http://example.com/a', /start with "\/"/],
    ['/%zz', /bad percent-escape "%zz"/],
    ['/%', /bad percent-escape/],
    ['/%4', /bad percent-escape/],
    ['/a%g1', /bad percent-escape/],
    ['/a%00b', /%00/], // Envoy rejects "/xyz/%00.%00./abc"
    ['/a\u0000b', /control character/],
    ['/a\nb', /control character/],
    ['/a\tb', /control character/],
    ['/a\u007fb', /control character/],
    ['/a#frag', /fragment/],
    ['/a?x#frag', /fragment/],
    ['/a?x=\r', /control character/],
    ['/\ud800', /surrogate/],
  ])('%j', (raw, reason) => {
    const n = normalizePath(raw);
    expect(n.ok).toBe(false);
    if (!n.ok) expect(n.reason).toMatch(reason);
  });
});

describe('normalizePath is idempotent', () => {
  it.each(['/a/./b/../c//d', '/%7e%2f%41', '/a%2Fb/..', '/x y/%c0%af', '/a/..\\c/'])(
    '%s',
    (raw) => {
      for (const action of ['KeepUnchanged', 'UnescapeAndForward'] as const) {
        const once = path(raw, { escapedSlashesAction: action });
        expect(path(once, { escapedSlashesAction: action })).toBe(once);
      }
    },
  );
});

describe('removeDotSegments (RFC 3986 §5.2.4 examples, absolute paths)', () => {
  it.each([
    ['/a/b/c/./../../g', '/a/g'],
    ['/b/c/.', '/b/c/'],
    ['/b/c/..', '/b/'],
    ['/../g', '/g'],
    ['/./g', '/g'],
    ['/g.', '/g.'],
    ['/..g', '/..g'],
  ])('%s → %s', (input, want) => {
    expect(removeDotSegments(input)).toBe(want);
  });
});
