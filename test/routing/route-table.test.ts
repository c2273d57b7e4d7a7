import { describe, expect, it } from 'vitest';
import type { HTTPRouteIR } from '../../shared/config/snapshot.ts';
import {
  compileRouteTable,
  listenerRouteEntries,
  type RouteTableEntry,
} from '../../shared/routing/route-table.ts';
import { label, route } from './route-builders.ts';
import { routeRequest, type TestRequest } from './request.ts';

function table(routes: (HTTPRouteIR | RouteTableEntry)[]) {
  return compileRouteTable(
    routes.map((r) => ('route' in r ? r : { route: r, hostnames: r.hostnames })),
  );
}

function winner(routes: (HTTPRouteIR | RouteTableEntry)[], req: TestRequest): string {
  const t = table(routes);
  const fast = label(t.match(routeRequest(req)));
  // the linear explainer is the reference; every table test checks both
  expect(label(t.explain(routeRequest(req)).winner)).toBe(fast);
  return fast;
}

describe('HTTPRouteRule.Matches: any one match selects the rule', () => {
  // matches:
  // - path:
  //     value: "/foo"
  //   headers:
  //   - name: "version"
  //     value: "v2"
  // - path:
  //     value: "/v2/foo"
  // "For a request to match against this rule, a request must satisfy EITHER of the two
  //  conditions: path prefixed with `/foo` AND contains the header `version: v2`; path prefix of
  //  `/v2/foo`"
  const r = route('example', [
    [{ path: '/foo', headers: [['version', 'v2']] }, { path: '/v2/foo' }],
  ]);
  it.each<[TestRequest, string]>([
    [{ path: '/foo', headers: { version: 'v2' } }, 'example#0.0'],
    [{ path: '/foo/bar', headers: { Version: 'v2' } }, 'example#0.0'],
    [{ path: '/v2/foo' }, 'example#0.1'],
    [{ path: '/v2/foo/x', headers: { version: 'v2' } }, 'example#0.1'],
    [{ path: '/foo' }, '404'],
    [{ path: '/foo', headers: { version: 'v1' } }, '404'],
    [{ path: '/foobar', headers: { version: 'v2' } }, '404'],
    [{ path: '/v2' }, '404'],
  ])('%j → %s', (req, want) => {
    expect(winner([r], req)).toBe(want);
  });

  // "If no matches are specified, the default is a prefix path match on "/", which has the
  //  effect of matching every HTTP request." (the IR carries the default explicitly)
  it('the default match takes every request', () => {
    expect(winner([route('all', [[{}]])], { path: '/anything/at/all', method: 'DELETE' })).toBe(
      'all#0.0',
    );
  });
});

describe('PathMatchType', () => {
  // "an exact path match on `/abc` will only match requests to `/abc`, NOT `/abc/`, `/Abc`, or
  //  `/abcd`."
  it.each([
    ['/abc', 'exact#0.0'],
    ['/abc/', '404'],
    ['/Abc', '404'],
    ['/abcd', '404'],
  ])('Exact /abc: %s → %s', (path, want) => {
    expect(winner([route('exact', [[{ type: 'Exact', path: '/abc' }]])], { path })).toBe(want);
  });

  // "the paths `/abc`, `/abc/`, and `/abc/def` would all match the prefix `/abc`, but the path
  //  `/abcd` would not." "When specified, a trailing `/` is ignored."
  it.each([
    ['/abc', '/abc', 'prefix#0.0'],
    ['/abc', '/abc/', 'prefix#0.0'],
    ['/abc', '/abc/def', 'prefix#0.0'],
    ['/abc', '/abcd', '404'],
    ['/abc', '/ab', '404'],
    ['/abc/', '/abc', 'prefix#0.0'],
    ['/abc/', '/abc/def', 'prefix#0.0'],
    ['/abc/', '/abcd', '404'],
    ['/a/b', '/a/b/c/d', 'prefix#0.0'],
    ['/a/b', '/a/bc', '404'],
    ['/a/b', '/a', '404'],
    ['/', '/', 'prefix#0.0'],
    ['/', '/x/y', 'prefix#0.0'],
  ])('PathPrefix %s: %s → %s', (prefix, path, want) => {
    expect(winner([route('prefix', [[{ path: prefix }]])], { path })).toBe(want);
  });

  it('prefixes match element by element with merge slashes off too', () => {
    const t = table([route('p', [[{ path: '/a/b' }], [{ path: '/a' }]])]);
    const req = { ...routeRequest({ path: '/a' }), path: '/a//b' };
    expect(label(t.match(req))).toBe('p#1.0');
    expect(label(t.explain(req).winner)).toBe('p#1.0');
  });

  it('RegularExpression is an anchored full-path match', () => {
    const r = route('re', [[{ type: 'RegularExpression', path: '/users/[0-9]+' }]]);
    expect(winner([r], { path: '/users/42' })).toBe('re#0.0');
    expect(winner([r], { path: '/users/42/x' })).toBe('404');
    expect(winner([r], { path: '/v1/users/42' })).toBe('404');
    expect(winner([r], { path: '/users/4a2' })).toBe('404');
  });

  it('route path values are normalized like request paths', () => {
    const r = route('n', [[{ type: 'Exact', path: '/%7euser/caf%c3%a9' }], [{ path: '/%41bc/' }]]);
    expect(winner([r], { path: '/~user/caf%C3%A9' })).toBe('n#0.0');
    expect(winner([r], { path: '/%7Euser/caf%c3%a9' })).toBe('n#0.0');
    expect(winner([r], { path: '/Abc/x' })).toBe('n#1.0');
  });
});

describe('precedence across rules and routes (HTTPRouteRule.Matches)', () => {
  // "Proxy or Load Balancer routing configuration generated from HTTPRoutes MUST prioritize
  //  matches based on the following criteria, continuing on ties. Across all rules specified on
  //  applicable Routes, precedence must be given to the match having:
  //  * "Exact" path match.
  //  * "Prefix" path match with largest number of characters.
  //  * Method match.
  //  * Largest number of header matches.
  //  * Largest number of query param matches.
  //  ...
  //  If ties still exist across multiple Routes, matching precedence MUST be determined in order
  //  of the following criteria, continuing on ties:
  //  * The oldest Route based on creation timestamp.
  //  * The Route appearing first in alphabetical order by "{namespace}/{name}".
  //  If ties still exist within an HTTPRoute, matching precedence MUST be granted to the FIRST
  //  matching rule (in list order) with a match meeting the above criteria."
  const cases: [string, HTTPRouteIR[], TestRequest, string][] = [
    [
      'Exact beats a longer PathPrefix and every other criterion',
      [
        route('z-prefix', [[{ path: '/a/b', method: 'GET', headers: [['x', '1']] }]]),
        route('z-exact', [[{ type: 'Exact', path: '/a/b' }]], { created: '2030-01-01T00:00:00Z' }),
      ],
      { path: '/a/b', headers: { x: '1' } },
      'z-exact#0.0',
    ],
    [
      'longer PathPrefix beats method, headers and age',
      [
        route(
          'old',
          [[{ path: '/a', method: 'GET', headers: [['x', '1']], query: [['q', '1']] }]],
          {
            created: '2000-01-01T00:00:00Z',
          },
        ),
        route('new', [[{ path: '/a/b' }]], { created: '2030-01-01T00:00:00Z' }),
      ],
      { path: '/a/b/c?q=1', headers: { x: '1' } },
      'new#0.0',
    ],
    [
      'PathPrefix length counts characters, trailing "/" ignored',
      [route('r', [[{ path: '/abc/' }], [{ path: '/abc', method: 'GET' }]])],
      { path: '/abc/d' },
      'r#1.0',
    ],
    [
      'method match beats header matches',
      [
        route('r', [
          [
            {
              headers: [
                ['a', '1'],
                ['b', '2'],
              ],
            },
          ],
          [{ method: 'GET' }],
        ]),
      ],
      { path: '/', headers: { a: '1', b: '2' } },
      'r#1.0',
    ],
    [
      'more header matches win',
      [
        route('r', [
          [{ headers: [['a', '1']] }],
          [
            {
              headers: [
                ['a', '1'],
                ['b', '2'],
              ],
            },
          ],
        ]),
      ],
      { path: '/', headers: { a: '1', b: '2' } },
      'r#1.0',
    ],
    [
      'header matches beat query matches',
      [
        route('r', [
          [
            {
              query: [
                ['a', '1'],
                ['b', '2'],
              ],
            },
          ],
          [{ headers: [['a', '1']] }],
        ]),
      ],
      { path: '/?a=1&b=2', headers: { a: '1' } },
      'r#1.0',
    ],
    [
      'more query param matches win',
      [
        route('r', [
          [{ query: [['a', '1']] }],
          [
            {
              query: [
                ['a', '1'],
                ['b', '2'],
              ],
            },
          ],
        ]),
      ],
      { path: '/?a=1&b=2' },
      'r#1.0',
    ],
    [
      'oldest route wins a tie',
      [
        route('a', [[{ path: '/x' }]], { created: '2024-05-01T00:00:00Z' }),
        route('b', [[{ path: '/x' }]], { created: '2024-04-01T00:00:00Z' }),
      ],
      { path: '/x' },
      'b#0.0',
    ],
    [
      'a route without creationTimestamp counts as the newest',
      [
        route('a', [[{ path: '/x' }]]),
        route('b', [[{ path: '/x' }]], { created: '2024-04-01T00:00:00Z' }),
      ],
      { path: '/x' },
      'b#0.0',
    ],
    [
      'then "{namespace}/{name}" alphabetically (namespace first)',
      [route('b/a', [[{ path: '/x' }]]), route('a/z', [[{ path: '/x' }]])],
      { path: '/x' },
      'z#0.0',
    ],
    [
      'then the first rule of the route',
      [route('r', [[{ path: '/x', headers: [['h', 'no']] }], [{ path: '/x' }], [{ path: '/x' }]])],
      { path: '/x' },
      'r#1.0',
    ],
    [
      'then the first match of the rule',
      [route('r', [[{ path: '/y' }, { path: '/x' }, { path: '/x' }]])],
      { path: '/x' },
      'r#0.1',
    ],
    [
      'RegularExpression comes after every PathPrefix (implementation-specific)',
      [route('r', [[{ type: 'RegularExpression', path: '/a/.*' }], [{ path: '/' }]])],
      { path: '/a/b' },
      'r#1.0',
    ],
    [
      'RegularExpression wins when no Exact or PathPrefix matches',
      [route('r', [[{ type: 'RegularExpression', path: '/a/.*' }], [{ path: '/b' }]])],
      { path: '/a/b' },
      'r#0.0',
    ],
    [
      'among regexes the longer pattern first (as Envoy Gateway)',
      [
        route('r', [
          [{ type: 'RegularExpression', path: '/a/.*' }],
          [{ type: 'RegularExpression', path: '/a/b.*' }],
        ]),
      ],
      { path: '/a/bc' },
      'r#1.0',
    ],
    [
      'headers are matched by lowercase name, only the first entry of a name counts',
      [
        route('r', [
          [
            {
              headers: [
                ['Version', 'one'],
                ['version', 'two'],
              ],
            },
          ],
        ]),
      ],
      { path: '/', headers: { VERSION: 'one' } },
      'r#0.0',
    ],
    [
      'query param names are case-sensitive',
      [route('r', [[{ query: [['animal', 'whale']] }], [{ query: [['ANIMAL', 'Whale']] }]])],
      { path: '/?ANIMAL=Whale' },
      'r#1.0',
    ],
    [
      'repeated query params: the first value',
      [route('r', [[{ query: [['a', '2']] }], [{ query: [['a', '1']] }]])],
      { path: '/?a=1&a=2' },
      'r#1.0',
    ],
    [
      'header and query regexes are anchored',
      [
        route('r', [
          [{ headers: [['v', 'v[0-9]', 'RegularExpression']] }],
          [{ query: [['q', 'ab|cd', 'RegularExpression']] }],
        ]),
      ],
      { path: '/?q=cd', headers: { v: 'v10' } },
      'r#1.0',
    ],
    [
      'methods compare exactly',
      [route('r', [[{ method: 'GET' }]])],
      { path: '/', method: 'get' },
      '404',
    ],
  ];
  it.each(cases)('%s', (_name, routes, req, want) => {
    expect(winner(routes, req)).toBe(want);
  });
});

describe('hostnames', () => {
  const exact = route('exact', [[{ path: '/a' }]], { hostnames: ['a.example.com'] });
  const wide = route('wide', [[{ path: '/' }]], { hostnames: ['*.example.com'] });
  const narrow = route('narrow', [[{ path: '/' }]], { hostnames: ['*.b.example.com'] });
  const any = route('any', [[{ path: '/' }]]);
  const all = [any, wide, narrow, exact];

  // "In the event that multiple HTTPRoutes specify intersecting hostnames (e.g. overlapping
  //  wildcard matching and exact matching hostnames), precedence must be given to rules from the
  //  HTTPRoute with the largest number of: Characters in a matching non-wildcard hostname.
  //  Characters in a matching hostname."
  it.each<[string, string, string]>([
    ['a.example.com', '/a', 'exact#0.0'],
    ['c.b.example.com', '/a', 'narrow#0.0'],
    ['x.y.b.example.com', '/a', 'narrow#0.0'],
    ['b.example.com', '/a', 'wide#0.0'],
    ['c.example.com', '/a', 'wide#0.0'],
    ['example.com', '/a', 'any#0.0'],
    ['other.org', '/', 'any#0.0'],
    ['A.Example.COM.:8443', '/a', 'exact#0.0'],
    ['[::1]:80', '/', 'any#0.0'],
  ])('%s %s → %s', (host, path, want) => {
    expect(winner(all, { host, path })).toBe(want);
  });

  // Decision: no fall-through to a less specific hostname (Envoy Gateway: one Envoy virtual host
  // per hostname, and Envoy picks exactly one virtual host).
  it('does not fall through from a more specific hostname to a less specific one', () => {
    expect(winner(all, { host: 'a.example.com', path: '/b' })).toBe('404');
    expect(winner([wide, any], { host: 'c.example.com', path: '/' })).toBe('wide#0.0');
    expect(
      winner([route('w', [[{ path: '/only' }]], { hostnames: ['*.example.com'] }), any], {
        host: 'c.example.com',
        path: '/other',
      }),
    ).toBe('404');
  });

  it('explains the shadowed hostname', () => {
    const t = table(all);
    const e = t.explain(routeRequest({ host: 'a.example.com', path: '/b' }));
    expect(e.host).toBe('a.example.com');
    expect(e.selectedHostname).toBe('a.example.com');
    expect(e.winner).toBeUndefined();
    const byRoute = Object.fromEntries(
      e.steps.map((s) => [s.route, s.mismatches.map((m) => m.kind)]),
    );
    expect(byRoute).toEqual({
      'default/exact': ['path'],
      'default/narrow': ['host'],
      'default/wide': ['host-shadowed'],
      'default/any': ['host-shadowed'],
    });
    expect(t.hostnames).toEqual(['a.example.com', '*.b.example.com', '*.example.com', '*']);
  });

  it('one route under several hostnames joins each host group', () => {
    const r = route('multi', [[{ path: '/m' }]], { hostnames: ['x.com', '*.y.com'] });
    expect(winner([r], { host: 'x.com', path: '/m' })).toBe('multi#0.0');
    expect(winner([r], { host: 'a.y.com', path: '/m' })).toBe('multi#0.0');
    expect(winner([r], { host: 'y.com', path: '/m' })).toBe('404');
    expect(table([r]).match(routeRequest({ host: 'a.y.com', path: '/m' }))?.hostname).toBe(
      '*.y.com',
    );
  });

  it('rules are grouped by effective (intersected) hostname, not the route original', () => {
    // HTTPRouteHostnameIntersection: a "*.specific.com" route on a "very.specific.com" listener
    // lands in the very.specific.com group next to the route that names it exactly.
    const a = route('a', [[{ path: '/s1' }]], { hostnames: ['very.specific.com'] });
    const b = route('b', [[{ path: '/s3' }]], { hostnames: ['*.specific.com'] });
    const entries = [
      { route: a, hostnames: ['very.specific.com'] },
      { route: b, hostnames: ['very.specific.com'] },
    ];
    expect(winner(entries, { host: 'very.specific.com', path: '/s3' })).toBe('b#0.0');
    expect(winner(entries, { host: 'foo.specific.com', path: '/s3' })).toBe('404');
  });
});

describe('RouteMatch', () => {
  it('carries entry, attachment, rule and prefixLength', () => {
    const r = route('r', [[{ type: 'Exact', path: '/e' }], [{ path: '/api/' }], [{ path: '/' }]]);
    const attachment = { route: 'default/r', hostnames: [], rules: [{}, {}, {}] };
    const t = compileRouteTable([{ route: r, hostnames: [], attachment }]);
    const e = t.match(routeRequest({ path: '/e' }));
    expect(e).toMatchObject({
      route: r,
      rule: r.rules[0],
      ruleIndex: 0,
      matchIndex: 0,
      hostname: '*',
    });
    expect(e?.prefixLength).toBeUndefined();
    expect(e?.entry.attachment).toBe(attachment);
    const p = t.match(routeRequest({ path: '/api/v1/x' }));
    expect(p).toMatchObject({ ruleIndex: 1, prefixLength: 4 });
    expect('/api/v1/x'.slice(p?.prefixLength)).toBe('/v1/x');
    expect(t.match(routeRequest({ path: '/other' }))?.prefixLength).toBe(0);
  });

  it('is built once: the same object answers every matching request', () => {
    const t = table([route('r', [[{ path: '/a' }]])]);
    const first = t.match(routeRequest({ path: '/a/1' }));
    expect(t.match(routeRequest({ path: '/a/2' }))).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it('accepts a query lookup function instead of URLSearchParams', () => {
    const t = table([route('r', [[{ query: [['k', 'v']] }]])]);
    const base = routeRequest({ path: '/' });
    expect(label(t.match({ ...base, query: (n) => (n === 'k' ? 'v' : undefined) }))).toBe('r#0.0');
    expect(label(t.match({ ...base, query: () => undefined }))).toBe('404');
  });
});

describe('invalid regular expressions fail closed', () => {
  it('never match, are listed, and leave the rest of the table working', () => {
    const r = route('r', [
      [{ type: 'RegularExpression', path: '/a/(' }],
      [{ headers: [['x', '[', 'RegularExpression']] }],
      [{ path: '/b' }],
    ]);
    const t = table([r]);
    expect(t.invalid.map((i) => [i.route, i.ruleIndex, i.matchIndex])).toEqual([
      ['default/r', 0, 0],
      ['default/r', 1, 0],
    ]);
    expect(label(t.match(routeRequest({ path: '/a/(', headers: { x: '[' } })))).toBe('404');
    expect(label(t.match(routeRequest({ path: '/b' })))).toBe('r#2.0');
    const e = t.explain(routeRequest({ path: '/', headers: { x: '[' } }));
    expect(e.steps.find((s) => s.ruleIndex === 1)?.mismatches.map((m) => m.kind)).toEqual([
      'invalid',
    ]);
  });
});

describe('explain', () => {
  it('lists every candidate ahead of the winner with its reasons, then the winner', () => {
    const t = table([
      route('r', [
        [{ type: 'Exact', path: '/a/b', method: 'POST' }],
        [{ path: '/a/b', headers: [['v', '2']], query: [['q', 'x']] }],
        [{ path: '/a' }],
        [{ path: '/' }],
      ]),
    ]);
    const e = t.explain(routeRequest({ path: '/a/b?q=y', headers: { v: '1' } }));
    expect(e.selectedHostname).toBe('*');
    expect(e.steps.map((s) => [s.ruleIndex, s.mismatches.map((m) => m.kind)])).toEqual([
      [0, ['method']],
      [1, ['header', 'query']],
      [2, []],
    ]);
    expect(e.steps[1]?.mismatches.map((m) => m.message)).toEqual([
      'header "v" = "2" required, got "1"',
      'query param "q" = "x" required, got "y"',
    ]);
    expect(label(e.winner)).toBe('r#2.0');
  });

  it('walks everything when nothing matches', () => {
    const t = table([route('r', [[{ path: '/x' }]], { hostnames: ['a.com'] })]);
    const e = t.explain(routeRequest({ host: 'b.com', path: '/y' }));
    expect(e.selectedHostname).toBeUndefined();
    expect(e.steps).toHaveLength(1);
    expect(e.steps[0]?.mismatches.map((m) => m.kind)).toEqual(['host', 'path']);
  });
});

describe('route entries from the snapshot', () => {
  const a = route('a', [[{}]]);
  const b = route('b', [[{}]], { hostnames: ['x.example.com'] });
  const routes = new Map([
    ['default/a', a],
    ['default/b', b],
  ]);

  it('listener: attachments without hostnames take the listener hostname', () => {
    const entries = listenerRouteEntries(
      {
        hostname: '*.example.com',
        routes: [
          { route: 'default/a', hostnames: [] },
          { route: 'default/b', hostnames: ['x.example.com'] },
          { route: 'default/missing', hostnames: [] },
        ],
      },
      routes,
    );
    expect(entries.map((e) => [e.route.name, e.hostnames])).toEqual([
      ['a', ['*.example.com']],
      ['b', ['x.example.com']],
    ]);
    const any = listenerRouteEntries({ routes: [{ route: 'default/a', hostnames: [] }] }, routes);
    expect(any[0]?.hostnames).toEqual([]);
  });
});
