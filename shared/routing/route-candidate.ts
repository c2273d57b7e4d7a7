// One HTTPRouteMatch of one rule of one route, compiled once per snapshot: regexes built,
// duplicate header/query names dropped, precedence keys computed. The fast matcher
// (route-table.ts) and the linear explainer (explain-route.ts) share these, and the comparator
// below is the single definition of precedence.

import type { HTTPRouteIR, HTTPRouteRuleIR, MatchIR, ValueMatchIR } from '../config/snapshot.ts';
import { normalizePath } from './normalize-path.ts';

export interface RouteTableEntry<A = unknown> {
  route: HTTPRouteIR;
  /** Effective hostnames (listener ∩ route, see intersectHostnames); [] = any host. */
  hostnames: string[];
  /** Opaque payload handed back on match, e.g. the listener's RouteAttachmentIR. */
  attachment?: A;
}

export type QueryLookup = URLSearchParams | ((name: string) => string | undefined);

export interface RouteRequest {
  /** Host header (or :authority) as received; normalized here (port, case, trailing dot). */
  host: string;
  method: string;
  /** Already normalized (normalizePath), without the query. */
  path: string;
  /** Lowercase names; for a repeated header, whatever single value the caller chooses. */
  headers: (name: string) => string | undefined;
  /** URLSearchParams.get gives the first value, as the spec recommends for repeated params. */
  query: QueryLookup;
}

export interface RouteMatch<A = unknown> {
  route: HTTPRouteIR;
  rule: HTTPRouteRuleIR;
  /** Position in `route.rules` (index-aligned with RouteAttachmentIR.rules); `rule.index` is the spec index. */
  ruleIndex: number;
  /** Position in `rule.matches`. */
  matchIndex: number;
  entry: RouteTableEntry<A>;
  /** The host group that took the request: an exact name, `*.suffix`, or `*` (route without hostname). */
  hostname: string;
  /**
   * PathPrefix only: how many leading characters of the request path the prefix covers, without
   * the prefix's trailing "/" ("/" → 0, "/abc" and "/abc/" → 4), so `path.slice(prefixLength)` is
   * the rest for ReplacePrefixMatch.
   */
  prefixLength?: number;
}

export interface CompiledValueMatch {
  name: string;
  type: 'Exact' | 'RegularExpression';
  value: string;
  /** RegularExpression only. */
  regex?: RegExp;
}

export const PATH_EXACT = 0;
export const PATH_PREFIX = 1;
export const PATH_REGEX = 2;
export type PathKind = typeof PATH_EXACT | typeof PATH_PREFIX | typeof PATH_REGEX;

export interface RouteCandidate {
  entry: RouteTableEntry;
  entryIndex: number;
  route: HTTPRouteIR;
  /** "namespace/name". */
  routeKey: string;
  /** ms since epoch; +Infinity when absent or unparsable (sorts as the newest). */
  createdAt: number;
  rule: HTTPRouteRuleIR;
  ruleIndex: number;
  match: MatchIR;
  matchIndex: number;
  pathKind: PathKind;
  /**
   * Exact: the normalized path. PathPrefix: the normalized prefix without trailing "/" ("" for
   * "/"). RegularExpression: the pattern as written.
   */
  pathValue: string;
  /** Precedence by "characters": prefix/exact value length; regex pattern length (as Envoy Gateway). */
  pathLength: number;
  pathRegex?: RegExp;
  method?: string;
  headers: CompiledValueMatch[];
  query: CompiledValueMatch[];
  /** Set when a regex does not compile: this match never matches (fail closed). */
  invalid?: string;
}

/**
 * Anchored full-string match: the spec's RegularExpression matches the whole path or value, as
 * Envoy's `safe_regex` (RE2 FullMatch) does. JS RegExp syntax; no `g`/`y`, so `test` is stateless.
 */
export function compileAnchoredRegExp(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

function compileValueMatches(list: readonly ValueMatchIR[], lowercaseNames: boolean) {
  const seen = new Set<string>();
  const out: CompiledValueMatch[] = [];
  let invalid: string | undefined;
  for (const m of list) {
    const name = lowercaseNames ? m.name.toLowerCase() : m.name;
    // "If multiple entries specify equivalent names, only the first entry ... MUST be considered."
    if (seen.has(name)) continue;
    seen.add(name);
    if (m.type === 'RegularExpression') {
      try {
        out.push({ name, type: m.type, value: m.value, regex: compileAnchoredRegExp(m.value) });
      } catch (e) {
        invalid ??= `regular expression ${JSON.stringify(m.value)} for "${name}": ${(e as Error).message}`;
        out.push({ name, type: m.type, value: m.value });
      }
    } else {
      out.push({ name, type: 'Exact', value: m.value });
    }
  }
  return { out, invalid };
}

/** Normalize a route's Exact/PathPrefix value the way request paths are normalized, so `%7e` in config meets `~` in a request. */
function normalizeRoutePath(value: string): string {
  const n = normalizePath(value, { escapedSlashesAction: 'KeepUnchanged' });
  return n.ok ? n.path : value;
}

function parseTimestamp(ts: string | undefined): number {
  if (ts === undefined) return Number.POSITIVE_INFINITY;
  const t = Date.parse(ts);
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

export function compileCandidates(entries: readonly RouteTableEntry[]): RouteCandidate[] {
  const out: RouteCandidate[] = [];
  entries.forEach((entry, entryIndex) => {
    const route = entry.route;
    const routeKey = `${route.namespace}/${route.name}`;
    const createdAt = parseTimestamp(route.creationTimestamp);
    route.rules.forEach((rule, ruleIndex) => {
      rule.matches.forEach((match, matchIndex) => {
        let invalid: string | undefined;
        let pathKind: PathKind;
        let pathValue: string;
        let pathRegex: RegExp | undefined;
        switch (match.path.type) {
          case 'Exact':
            pathKind = PATH_EXACT;
            pathValue = normalizeRoutePath(match.path.value);
            break;
          case 'PathPrefix': {
            pathKind = PATH_PREFIX;
            // "When specified, a trailing `/` is ignored": "/abc/" is "/abc"; "/" is the root.
            const p = normalizeRoutePath(match.path.value);
            pathValue = p.endsWith('/') ? p.slice(0, -1) : p;
            break;
          }
          default:
            pathKind = PATH_REGEX;
            pathValue = match.path.value;
            try {
              pathRegex = compileAnchoredRegExp(pathValue);
            } catch (e) {
              invalid = `path regular expression ${JSON.stringify(pathValue)}: ${(e as Error).message}`;
            }
        }
        const headers = compileValueMatches(match.headers, true);
        const query = compileValueMatches(match.queryParams, false);
        invalid ??= headers.invalid ?? query.invalid;
        const c: RouteCandidate = {
          entry,
          entryIndex,
          route,
          routeKey,
          createdAt,
          rule,
          ruleIndex,
          match,
          matchIndex,
          pathKind,
          pathValue,
          pathLength: pathValue.length,
          headers: headers.out,
          query: query.out,
        };
        if (pathRegex) c.pathRegex = pathRegex;
        if (match.method !== undefined) c.method = match.method;
        if (invalid !== undefined) c.invalid = invalid;
        out.push(c);
      });
    });
  });
  return out;
}

/**
 * Gateway API precedence among matches that take the same host (HTTPRouteRule.Matches):
 * "Exact" path; "Prefix" path with the largest number of characters; method match; largest
 * number of header matches; largest number of query param matches; then across routes the oldest
 * creationTimestamp and "{namespace}/{name}" alphabetically; within a route the first rule, then
 * the first match of that rule. RegularExpression paths ("implementation-specific") come after
 * every PathPrefix, the longer pattern first. Last, entry order (one route attached twice).
 */
export function compareCandidates(a: RouteCandidate, b: RouteCandidate): number {
  if (a.pathKind !== b.pathKind) return a.pathKind - b.pathKind;
  if (a.pathLength !== b.pathLength) return b.pathLength - a.pathLength;
  const am = a.method === undefined ? 0 : 1;
  const bm = b.method === undefined ? 0 : 1;
  if (am !== bm) return bm - am;
  if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length;
  if (a.query.length !== b.query.length) return b.query.length - a.query.length;
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  if (a.routeKey !== b.routeKey) return a.routeKey < b.routeKey ? -1 : 1;
  if (a.ruleIndex !== b.ruleIndex) return a.ruleIndex - b.ruleIndex;
  if (a.matchIndex !== b.matchIndex) return a.matchIndex - b.matchIndex;
  return a.entryIndex - b.entryIndex;
}

export function lookupQuery(query: QueryLookup, name: string): string | undefined {
  if (typeof query === 'function') return query(name);
  const v = query.get(name);
  return v === null ? undefined : v;
}

function valueMatches(m: CompiledValueMatch, v: string | undefined): boolean {
  if (v === undefined) return false;
  return m.regex === undefined ? v === m.value : m.regex.test(v);
}

/** Method, headers and query (the path is checked by whoever found the candidate). */
export function matchesRequestDetails(c: RouteCandidate, req: RouteRequest): boolean {
  if (c.method !== undefined && c.method !== req.method) return false;
  const hs = c.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i] as CompiledValueMatch;
    if (!valueMatches(h, req.headers(h.name))) return false;
  }
  const qs = c.query;
  for (let i = 0; i < qs.length; i++) {
    const q = qs[i] as CompiledValueMatch;
    if (!valueMatches(q, lookupQuery(req.query, q.name))) return false;
  }
  return true;
}

/** PathPrefix, element by element: "/abc" matches "/abc", "/abc/", "/abc/def", not "/abcd". */
export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '') return path.charCodeAt(0) === 0x2f;
  return (
    path.startsWith(prefix) &&
    (path.length === prefix.length || path.charCodeAt(prefix.length) === 0x2f)
  );
}

/** The slow, obvious path predicate (explain); the table finds the same answers through its indexes. */
export function pathMatches(c: RouteCandidate, path: string): boolean {
  switch (c.pathKind) {
    case PATH_EXACT:
      return path === c.pathValue;
    case PATH_PREFIX:
      return prefixMatches(c.pathValue, path);
    default:
      return c.pathRegex !== undefined && c.pathRegex.test(path);
  }
}

export function describeValueMatch(kind: 'header' | 'query', m: CompiledValueMatch): string {
  const what = kind === 'header' ? `header "${m.name}"` : `query param "${m.name}"`;
  return m.type === 'Exact' ? `${what} = ${JSON.stringify(m.value)}` : `${what} ~ /${m.value}/`;
}
