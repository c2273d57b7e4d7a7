// Route lookup cost as the table grows: 10, 1,000 and 10,000 routes over several hostnames
// (exact names, wildcards, catch-all), exact and prefix paths of 2–5 segments, some method and
// header matches and a few regexes per host. Each workload cycles through 1,024 pre-built
// requests; ns/lookup from process.hrtime.bigint over a fixed number of lookups after warm-up.
// Target: a lookup in 10,000 routes costs no more than 3x one in 10.
//
// Run alone: node --import tsx bench/route-match.ts

import { pathToFileURL } from 'node:url';
import type { HTTPRouteIR, MatchIR } from '../shared/config/snapshot.ts';
import { normalizePath } from '../shared/routing/normalize-path.ts';
import {
  compileRouteTable,
  type RouteRequest,
  type RouteTableEntry,
} from '../shared/routing/route-table.ts';
import { formatTable, nsPerOp, type Bench, type BenchRow } from './bench.ts';

const SIZES = [10, 1_000, 10_000];
const ITERATIONS = 200_000;
const WARMUP = 50_000;
const REQUESTS_PER_WORKLOAD = 1_024;

const HOSTS = [
  'api.example.com',
  'shop.example.com',
  'admin.example.com',
  'auth.example.com',
  'static.example.com',
  'm.example.com',
  '*.apps.example.com',
  '*.example.com',
  '', // no hostname: the catch-all group
];
const TOP = ['api', 'v1', 'v2', 'shop', 'users', 'orders', 'catalog', 'search', 'admin', 'assets'];
const DEEP = ['items', 'detail', 'list', 'v1', 'status', 'config'];

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

interface Generated {
  entries: RouteTableEntry[];
  /** Per route: a host that reaches it, and its path match. */
  targets: { host: string; match: MatchIR }[];
}

function requestHost(hostname: string): string {
  if (hostname === '') return 'www.other.org';
  if (hostname.startsWith('*.')) return `tenant-7.${hostname.slice(2)}`;
  return hostname;
}

function generate(n: number): Generated {
  const entries: RouteTableEntry[] = [];
  const targets: Generated['targets'] = [];
  for (let i = 0; i < n; i++) {
    const hostname = HOSTS[i % HOSTS.length] as string;
    const depth = 2 + (i % 4); // 2..5 segments
    const segs = [TOP[i % TOP.length] as string, `svc${i}`];
    for (let d = 2; d < depth; d++) segs.push(DEEP[(i + d) % DEEP.length] as string);
    const match: MatchIR = {
      path: { type: i % 3 === 0 ? 'Exact' : 'PathPrefix', value: `/${segs.join('/')}` },
      headers: i % 10 === 2 ? [{ type: 'Exact', name: 'x-version', value: 'v2' }] : [],
      queryParams: [],
    };
    if (i % 10 === 1) match.method = 'GET';
    const route: HTTPRouteIR = {
      namespace: `team-${i % 20}`,
      name: `route-${i}`,
      creationTimestamp: new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString(),
      hostnames: hostname ? [hostname] : [],
      rules: [
        {
          index: 0,
          matches: [match],
          filters: [],
          backends: [
            { kind: 'Service', namespace: 'x', name: `svc${i}`, port: 80, weight: 1, filters: [] },
          ],
        },
      ],
    };
    entries.push({ route, hostnames: route.hostnames });
    targets.push({ host: requestHost(hostname), match });
  }
  // A few regexes per host group, and a "/" fallback on the catch-all host only.
  HOSTS.forEach((hostname, h) => {
    const matches: MatchIR[] = [0, 1, 2].map((k) => ({
      path: {
        type: 'RegularExpression',
        value: `/${TOP[(h + k) % TOP.length]}/legacy-[0-9]+(/.*)?`,
      },
      headers: [],
      queryParams: [],
    }));
    if (hostname === '')
      matches.push({ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] });
    entries.push({
      route: {
        namespace: 'platform',
        name: `regex-${h}`,
        hostnames: hostname ? [hostname] : [],
        rules: [{ index: 0, matches, filters: [], backends: [] }],
      },
      hostnames: hostname ? [hostname] : [],
    });
  });
  return { entries, targets };
}

function request(host: string, path: string, match?: MatchIR): RouteRequest {
  const headers = new Map<string, string>();
  if (match?.headers.length) headers.set('x-version', 'v2');
  return {
    host,
    method: 'GET',
    path,
    headers: (name) => headers.get(name),
    query: new URLSearchParams(),
  };
}

type Workload =
  'exact hit' | 'prefix hit, 2-3 segs' | 'prefix hit, 4-5 segs +2' | 'regex hit' | 'miss' | 'mixed';

function workloads(g: Generated, seed: number): Record<Workload, RouteRequest[]> {
  const rng = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)] as T;
  const exact = g.targets.filter((t) => t.match.path.type === 'Exact');
  const prefix = g.targets.filter((t) => t.match.path.type === 'PathPrefix');
  const shallow = prefix.filter((t) => t.match.path.value.split('/').length <= 4);
  const deep = prefix.filter((t) => t.match.path.value.split('/').length > 4);
  const out: Record<Workload, RouteRequest[]> = {
    'exact hit': [],
    'prefix hit, 2-3 segs': [],
    'prefix hit, 4-5 segs +2': [],
    'regex hit': [],
    miss: [],
    mixed: [],
  };
  for (let i = 0; i < REQUESTS_PER_WORKLOAD; i++) {
    const e = pick(exact.length ? exact : g.targets);
    out['exact hit'].push(request(e.host, e.match.path.value, e.match));
    const s = pick(shallow.length ? shallow : prefix);
    out['prefix hit, 2-3 segs'].push(request(s.host, `${s.match.path.value}/42`, s.match));
    const d = pick(deep.length ? deep : prefix);
    out['prefix hit, 4-5 segs +2'].push(request(d.host, `${d.match.path.value}/42/more`, d.match));
    // a host with a name (the catch-all group has a "/" fallback, so nothing misses there)
    const h = Math.floor(rng() * (HOSTS.length - 1));
    const host = requestHost(HOSTS[h] as string);
    const regexTop = TOP[(h + Math.floor(rng() * 3)) % TOP.length] as string;
    out['regex hit'].push(request(host, `/${regexTop}/legacy-${i}/x`));
    out.miss.push(request(host, `/${pick(TOP)}/no-such-service-${i}/x`));
  }
  const kinds: Workload[] = [
    'exact hit',
    'prefix hit, 2-3 segs',
    'prefix hit, 4-5 segs +2',
    'regex hit',
    'miss',
  ];
  for (let i = 0; i < REQUESTS_PER_WORKLOAD; i++)
    out.mixed.push(out[pick(kinds)][i] as RouteRequest);
  return out;
}

export function runRouteMatch(): BenchRow[] {
  const rows: BenchRow[] = [];
  const perSize = new Map<number, Map<Workload, number>>();
  for (const size of SIZES) {
    const g = generate(size);
    const table = compileRouteTable(g.entries);
    const sets = workloads(g, size);
    const results = new Map<Workload, number>();
    for (const [name, reqs] of Object.entries(sets) as [Workload, RouteRequest[]][]) {
      // sanity: hits hit and misses miss, or the numbers measure the wrong thing
      const hits = reqs.filter((r) => table.match(r) !== undefined).length;
      const wantHits = name === 'miss' ? 0 : name === 'mixed' ? -1 : reqs.length;
      if (wantHits !== -1 && hits !== wantHits) {
        throw new Error(`route-match ${size}/${name}: ${hits} of ${reqs.length} requests matched`);
      }
      const mask = reqs.length - 1;
      const ns = nsPerOp((i) => table.match(reqs[i & mask] as RouteRequest), ITERATIONS, WARMUP);
      results.set(name, ns);
      rows.push({
        bench: 'route-match',
        case: `${size} routes, ${name}`,
        value: ns,
        unit: 'ns/lookup',
      });
    }
    perSize.set(size, results);
  }
  const small = perSize.get(SIZES[0] as number) as Map<Workload, number>;
  const large = perSize.get(SIZES[SIZES.length - 1] as number) as Map<Workload, number>;
  for (const [name, ns] of large) {
    const ratio = ns / (small.get(name) as number);
    rows.push({
      bench: 'route-match',
      case: `ratio 10,000/10, ${name}`,
      value: ratio,
      unit: 'x',
      note: ratio <= 3 ? 'within 3x target' : 'OVER 3x target',
    });
  }

  for (const [name, raw] of [
    ['clean', '/api/svc42/items/detail?x=1'],
    ['escapes + dots', '/api/%7Esvc42/./items/../detail%2Fx?x=1'],
  ] as const) {
    const ns = nsPerOp(() => normalizePath(raw), ITERATIONS, WARMUP);
    rows.push({ bench: 'normalize-path', case: name, value: ns, unit: 'ns/op' });
  }
  return rows;
}

export const bench: Bench = { name: 'route-match', run: runRouteMatch };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(formatTable(runRouteMatch()));
}
