// The slow path behind `meshgate explain`: walk every candidate in precedence order with plain
// predicates (no Map, no trie) and say why each one ahead of the winner lost. It doubles as the
// oracle for the route table's property test, so it shares only the compiled candidates and the
// comparator with the fast path, not its indexes.

import { hostnameMatches, normalizeHost } from './hostname.ts';
import {
  PATH_EXACT,
  PATH_PREFIX,
  describeValueMatch,
  lookupQuery,
  pathMatches,
  type CompiledValueMatch,
  type RouteCandidate,
  type RouteMatch,
  type RouteRequest,
  type RouteTableEntry,
} from './route-candidate.ts';

/** A host group and its candidates, sorted by compareCandidates; groups come most specific first. */
export interface ExplainGroup {
  readonly hostname: string;
  readonly sorted: readonly RouteCandidate[];
}

export type MismatchKind =
  'host' | 'host-shadowed' | 'path' | 'method' | 'header' | 'query' | 'invalid';

export interface Mismatch {
  kind: MismatchKind;
  /** Header or query param name, for those kinds. */
  name?: string;
  message: string;
}

export interface ExplainStep<A = unknown> {
  /** "namespace/name". */
  route: string;
  ruleIndex: number;
  matchIndex: number;
  entry: RouteTableEntry<A>;
  /** The host group this candidate sits in. */
  hostname: string;
  /** Empty for the winner. */
  mismatches: Mismatch[];
}

export interface RouteExplanation<A = unknown> {
  /** The request host as matched (port, case and trailing dot removed). */
  host: string;
  /** The one host group that takes this host; undefined: none, the request gets a 404. */
  selectedHostname: string | undefined;
  /** Candidates in precedence order up to and including the winner (all of them when none wins). */
  steps: ExplainStep<A>[];
  winner: RouteMatch<A> | undefined;
}

function valueMismatch(
  kind: 'header' | 'query',
  m: CompiledValueMatch,
  v: string | undefined,
): Mismatch | undefined {
  // A regex that did not compile is reported once, as the candidate's 'invalid' mismatch.
  if (m.type === 'RegularExpression' && m.regex === undefined) return undefined;
  const want = describeValueMatch(kind, m);
  if (v === undefined) return { kind, name: m.name, message: `${want} required, absent` };
  const ok = m.regex === undefined ? v === m.value : m.regex.test(v);
  return ok
    ? undefined
    : { kind, name: m.name, message: `${want} required, got ${JSON.stringify(v)}` };
}

function pathMismatch(c: RouteCandidate, path: string): Mismatch | undefined {
  if (pathMatches(c, path)) return undefined;
  const message =
    c.pathKind === PATH_EXACT
      ? `Exact ${JSON.stringify(c.pathValue)} is not ${JSON.stringify(path)}`
      : c.pathKind === PATH_PREFIX
        ? `PathPrefix ${JSON.stringify(c.pathValue || '/')} does not cover ${JSON.stringify(path)} (matched element by element)`
        : `RegularExpression ${JSON.stringify(c.pathValue)} does not match all of ${JSON.stringify(path)}`;
  return { kind: 'path', message };
}

export function explainRoute(groups: readonly ExplainGroup[], req: RouteRequest): RouteExplanation {
  const host = normalizeHost(req.host);
  const steps: ExplainStep[] = [];
  let selectedHostname: string | undefined;

  for (const group of groups) {
    const hostOk = hostnameMatches(group.hostname, host);
    // Groups come most specific first, so the first one that takes the host is Envoy's choice.
    if (hostOk && selectedHostname === undefined) selectedHostname = group.hostname;
    for (const c of group.sorted) {
      const mismatches: Mismatch[] = [];
      if (!hostOk) {
        mismatches.push({
          kind: 'host',
          message: `host ${JSON.stringify(host)} is not ${JSON.stringify(group.hostname)}`,
        });
      } else if (group.hostname !== selectedHostname) {
        mismatches.push({
          kind: 'host-shadowed',
          message: `host ${JSON.stringify(host)} is taken by the more specific ${JSON.stringify(selectedHostname)}; requests do not fall through to ${JSON.stringify(group.hostname)}`,
        });
      }
      if (c.invalid !== undefined) mismatches.push({ kind: 'invalid', message: c.invalid });
      const p = pathMismatch(c, req.path);
      if (p) mismatches.push(p);
      if (c.method !== undefined && c.method !== req.method) {
        mismatches.push({
          kind: 'method',
          message: `method ${c.method} required, got ${req.method}`,
        });
      }
      for (const h of c.headers) {
        const m = valueMismatch('header', h, req.headers(h.name));
        if (m) mismatches.push(m);
      }
      for (const q of c.query) {
        const m = valueMismatch('query', q, lookupQuery(req.query, q.name));
        if (m) mismatches.push(m);
      }
      steps.push({
        route: c.routeKey,
        ruleIndex: c.ruleIndex,
        matchIndex: c.matchIndex,
        entry: c.entry,
        hostname: group.hostname,
        mismatches,
      });
      if (mismatches.length === 0) {
        const winner: RouteMatch = {
          route: c.route,
          rule: c.rule,
          ruleIndex: c.ruleIndex,
          matchIndex: c.matchIndex,
          entry: c.entry,
          hostname: group.hostname,
        };
        if (c.pathKind === PATH_PREFIX) winner.prefixLength = c.pathValue.length;
        return { host, selectedHostname, steps, winner };
      }
    }
  }
  return { host, selectedHostname, steps, winner: undefined };
}
