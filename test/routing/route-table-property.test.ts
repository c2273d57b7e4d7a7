// Property: for random route sets and requests, the indexed matcher (host maps, exact-path map,
// prefix trie, regex list) picks exactly the winner of the linear explain walk.
// Seeded and bounded: 200 route sets × 200 requests, the same every run.

import { describe, expect, it } from 'vitest';
import type { HTTPRouteIR, PathMatchType } from '../../shared/config/snapshot.ts';
import {
  compileRouteTable,
  type RouteMatch,
  type RouteRequest,
  type RouteTableEntry,
} from '../../shared/routing/route-table.ts';
import { route, type MatchSpec } from './route-builders.ts';

/** mulberry32: tiny, seedable, good enough for test generation. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)] as T;
const chance = (rng: Rng, p: number): boolean => rng() < p;

const SEGMENTS = ['a', 'b', 'c', 'ab', 'abc'];
const ROUTE_HOSTS = [
  'a.example.com',
  'b.example.com',
  'example.com',
  '*.example.com',
  '*.a.example.com',
  '*.com',
  'A.Example.com.',
];
const REQUEST_HOSTS = [
  'a.example.com',
  'b.example.com',
  'c.a.example.com',
  'x.y.a.example.com',
  'example.com',
  'other.org',
  'com',
  'A.EXAMPLE.COM:8080',
  'b.example.com.',
  '[::1]:80',
  '',
];
const REGEXES = ['/a/.*', '/[ab]/c', '/a(/b)?', '.*', '/ab?/.*c', '/abc?', '/('];
const HEADER_NAMES = ['x', 'y', 'X-Foo'];
const QUERY_NAMES = ['p', 'q', 'P'];
const VALUES = ['1', '2'];
const TIMESTAMPS = [undefined, '2024-01-01T00:00:00Z', '2024-06-01T00:00:00Z', 'not a date'];

function randomPath(rng: Rng, maxDepth: number): string {
  const depth = int(rng, maxDepth + 1);
  const segs: string[] = [];
  for (let i = 0; i < depth; i++) segs.push(pick(rng, SEGMENTS));
  return `/${segs.join('/')}`;
}

function randomMatch(rng: Rng): MatchSpec {
  const r = rng();
  const type: PathMatchType = r < 0.3 ? 'Exact' : r < 0.85 ? 'PathPrefix' : 'RegularExpression';
  let path: string;
  if (type === 'RegularExpression') path = pick(rng, REGEXES);
  else {
    path = randomPath(rng, 3);
    if (type === 'PathPrefix' && path !== '/' && chance(rng, 0.3)) path += '/';
  }
  const spec: MatchSpec = { type, path };
  if (chance(rng, 0.25)) spec.method = pick(rng, ['GET', 'POST']);
  const values = (names: string[]) => {
    const out: [string, string, ('Exact' | 'RegularExpression')?][] = [];
    for (let i = int(rng, 3); i > 0; i--) {
      out.push(
        chance(rng, 0.2)
          ? [pick(rng, names), pick(rng, ['[12]', '1|3', '(']), 'RegularExpression']
          : [pick(rng, names), pick(rng, VALUES)],
      );
    }
    return out;
  };
  spec.headers = values(HEADER_NAMES);
  spec.query = values(QUERY_NAMES);
  return spec;
}

function randomEntries(rng: Rng): RouteTableEntry[] {
  const entries: RouteTableEntry[] = [];
  const keys = new Set<string>();
  const count = 1 + int(rng, 12);
  for (let i = 0; i < count; i++) {
    const key = `${pick(rng, ['ns1', 'ns2'])}/${pick(rng, ['a', 'b', 'c', 'd', 'e'])}`;
    if (keys.has(key)) continue;
    keys.add(key);
    const rules: MatchSpec[][] = [];
    for (let r = 1 + int(rng, 3); r > 0; r--) {
      const matches: MatchSpec[] = [];
      for (let m = 1 + int(rng, 3); m > 0; m--) matches.push(randomMatch(rng));
      rules.push(matches);
    }
    const created = pick(rng, TIMESTAMPS);
    const hostnames: string[] = [];
    for (let h = int(rng, 3); h > 0; h--) hostnames.push(pick(rng, ROUTE_HOSTS));
    const r: HTTPRouteIR = route(key, rules, created ? { created, hostnames } : { hostnames });
    entries.push({ route: r, hostnames, attachment: i });
    // the same route attached a second time (another listener on the port)
    if (chance(rng, 0.1)) entries.push({ route: r, hostnames: [pick(rng, ROUTE_HOSTS)] });
  }
  return entries;
}

function randomRequest(rng: Rng): RouteRequest {
  let path = randomPath(rng, 4);
  if (path !== '/' && chance(rng, 0.2)) path += '/';
  const headers = new Map<string, string>();
  for (const name of HEADER_NAMES) {
    if (chance(rng, 0.5)) headers.set(name.toLowerCase(), pick(rng, [...VALUES, '3']));
  }
  const query = new URLSearchParams();
  for (const name of QUERY_NAMES) {
    if (chance(rng, 0.5)) query.append(name, pick(rng, [...VALUES, '3']));
  }
  return {
    host: pick(rng, REQUEST_HOSTS),
    method: pick(rng, ['GET', 'POST', 'PUT']),
    path,
    headers: (n) => headers.get(n),
    query: chance(rng, 0.5) ? query : (n) => query.get(n) ?? undefined,
  };
}

function identity(m: RouteMatch | undefined) {
  if (!m) return undefined;
  return {
    route: m.route,
    ruleIndex: m.ruleIndex,
    matchIndex: m.matchIndex,
    entry: m.entry,
    hostname: m.hostname,
    prefixLength: m.prefixLength,
  };
}

// entry and route are compared by identity above; keep JSON to the scalar fields
function replacer(key: string, value: unknown): unknown {
  return key === 'route' || key === 'entry' ? undefined : value;
}

function describeMatch(m: ReturnType<typeof identity>): string {
  return m
    ? `${m.route.namespace}/${m.route.name}#${m.ruleIndex}.${m.matchIndex}@${m.hostname}`
    : '404';
}

describe('route table property', () => {
  it('match agrees with the linear explain walk (200 route sets × 200 requests)', () => {
    const rng = prng(0x5eed);
    let matched = 0;
    let checked = 0;
    const failures: string[] = [];
    for (let set = 0; set < 200; set++) {
      const entries = randomEntries(rng);
      const table = compileRouteTable(entries);
      for (let i = 0; i < 200; i++) {
        const req = randomRequest(rng);
        const fast = identity(table.match(req));
        const slow = table.explain(req);
        const agree =
          fast === undefined
            ? slow.winner === undefined
            : JSON.stringify(identity(slow.winner), replacer) === JSON.stringify(fast, replacer) &&
              slow.winner?.route === fast.route &&
              slow.winner.entry === fast.entry;
        // every step ahead of the winner lost for at least one reason
        const lost = slow.steps.slice(0, slow.winner ? -1 : undefined);
        if (!agree || lost.some((s) => s.mismatches.length === 0)) {
          failures.push(
            `set ${set} request ${i} ${req.host} ${req.method} ${req.path}: match ${describeMatch(fast)}, explain ${describeMatch(identity(slow.winner))}`,
          );
        }
        if (fast) matched++;
        checked++;
      }
    }
    expect(failures.slice(0, 10)).toEqual([]);
    expect(checked).toBe(40_000);
    // the generator must exercise both outcomes, or the property says little
    expect(matched).toBeGreaterThan(4_000);
    expect(checked - matched).toBeGreaterThan(4_000);
  });
});
