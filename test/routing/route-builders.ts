// Small builders for HTTPRouteIR in routing tests.

import type {
  HTTPRouteIR,
  MatchIR,
  PathMatchType,
  ValueMatchIR,
} from '../../shared/config/snapshot.ts';
import type { RouteMatch } from '../../shared/routing/route-table.ts';

type ValueSpec = [name: string, value: string, type?: ValueMatchIR['type']];

export interface MatchSpec {
  path?: string;
  type?: PathMatchType;
  method?: string;
  headers?: ValueSpec[];
  query?: ValueSpec[];
}

export interface RouteOptions {
  /** "namespace/name"; default namespace "default". */
  created?: string;
  hostnames?: string[];
}

function values(list: ValueSpec[] | undefined, lower: boolean): ValueMatchIR[] {
  return (list ?? []).map(([name, value, type]) => ({
    type: type ?? 'Exact',
    name: lower ? name.toLowerCase() : name,
    value,
  }));
}

export function match(spec: MatchSpec = {}): MatchIR {
  const m: MatchIR = {
    path: { type: spec.type ?? 'PathPrefix', value: spec.path ?? '/' },
    headers: values(spec.headers, true),
    queryParams: values(spec.query, false),
  };
  if (spec.method) m.method = spec.method;
  return m;
}

/** A route whose rules each list their matches; `key` is "name" or "namespace/name". */
export function route(key: string, rules: MatchSpec[][], opts: RouteOptions = {}): HTTPRouteIR {
  const [namespace, name] = key.includes('/') ? key.split('/', 2) : ['default', key];
  const r: HTTPRouteIR = {
    namespace: namespace as string,
    name: name as string,
    hostnames: opts.hostnames ?? [],
    rules: rules.map((matches, index) => ({
      index,
      matches: matches.map(match),
      filters: [],
      backends: [],
    })),
  };
  if (opts.created) r.creationTimestamp = opts.created;
  return r;
}

/** "name#rule.match" of a match, or "404". */
export function label(m: RouteMatch | undefined): string {
  return m ? `${m.route.name}#${m.ruleIndex}.${m.matchIndex}` : '404';
}
