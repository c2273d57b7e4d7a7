// The one HTTP route matcher, for the edge gateway (entries from a port's listeners) and for the
// sidecars (entries from a Service's mesh routes). Built once per snapshot; `match` is the hot
// path and allocates nothing but the host and path segment strings it must look up.
//
// Host first, then path, the way Envoy Gateway programs Envoy: one virtual host per hostname
// (internal/xds/translator: "1:1 between IR HTTPRoute Hostname and xDS VirtualHost"), and Envoy
// picks exactly one virtual host per request: the exact name, else the longest wildcard suffix,
// else the catch-all. Rules are matched only inside that group: a request does NOT fall through
// to a less specific hostname when no rule of the more specific one matches; it gets a 404.
// (Gateway API orders hostnames before paths, HTTPRouteSpec.Hostnames; the conformance tests
// HTTPRouteHostnameIntersection and HTTPRouteMatchingAcrossRoutes pass either way, and Envoy
// Gateway answers such a request with 404 NR, envoyproxy/gateway#5500.)
//
// Inside a host group (precedence in route-candidate.ts, compareCandidates):
// - Exact paths: a Map from path to its matches, pre-sorted;
// - PathPrefix: a trie of path segments; walk down along the request path, then try the nodes
//   from the deepest up (deeper = longer prefix), each node's matches pre-sorted;
// - RegularExpression: one pre-sorted list, tried last.
// The first match whose method, headers and query params also match wins.

import { explainRoute, type ExplainGroup, type RouteExplanation } from './explain-route.ts';
import {
  ANY_HOST,
  compareHostnameSpecificity,
  normalizeHost,
  normalizeHostname,
} from './hostname.ts';
import {
  PATH_EXACT,
  PATH_PREFIX,
  compareCandidates,
  compileCandidates,
  matchesRequestDetails,
  type RouteCandidate,
  type RouteMatch,
  type RouteRequest,
  type RouteTableEntry,
} from './route-candidate.ts';

export type { QueryLookup, RouteMatch, RouteRequest, RouteTableEntry } from './route-candidate.ts';
export { compileAnchoredRegExp } from './route-candidate.ts';
export { listenerRouteEntries } from './route-entries.ts';
export type { ExplainStep, Mismatch, MismatchKind, RouteExplanation } from './explain-route.ts';

export interface InvalidRouteMatch {
  /** "namespace/name". */
  route: string;
  ruleIndex: number;
  matchIndex: number;
  reason: string;
}

/** `A`: the type of the entries' `attachment`, handed back in every RouteMatch. */
export interface RouteTable<A = unknown> {
  /** The winning rule for a request, or undefined (404). */
  match(req: RouteRequest): RouteMatch<A> | undefined;
  /** Slow path for `meshgate explain`: every candidate ahead of the winner, and why it lost. */
  explain(req: RouteRequest): RouteExplanation<A>;
  /** Matches that can never match because a regular expression did not compile (fail closed). */
  readonly invalid: readonly InvalidRouteMatch[];
  /** Host groups, most specific first (`*` is the group of routes without hostnames). */
  readonly hostnames: readonly string[];
  /** Each host group's candidates in precedence order, as `match` tries them (admin API). */
  readonly groups: readonly ExplainGroup[];
}

/** A candidate and the answer handed out when it wins in one host group (built once). */
interface Hit {
  c: RouteCandidate;
  m: RouteMatch;
}

interface PrefixNode {
  children: Map<string, PrefixNode> | undefined;
  hits: Hit[];
}

interface HostGroup {
  hostname: string;
  exact: Map<string, Hit[]>;
  prefixRoot: PrefixNode;
  regex: Hit[];
  /** Every candidate of the group, sorted (explain). */
  sorted: RouteCandidate[];
}

function newNode(): PrefixNode {
  return { children: undefined, hits: [] };
}

function buildGroup(
  hostname: string,
  candidates: RouteCandidate[],
): { group: HostGroup; depth: number } {
  const sorted = candidates.slice().sort(compareCandidates);
  const group: HostGroup = {
    hostname,
    exact: new Map(),
    prefixRoot: newNode(),
    regex: [],
    sorted,
  };
  let depth = 0;
  for (const c of sorted) {
    if (c.invalid !== undefined) continue;
    const m: RouteMatch = {
      route: c.route,
      rule: c.rule,
      ruleIndex: c.ruleIndex,
      matchIndex: c.matchIndex,
      entry: c.entry,
      hostname,
    };
    if (c.pathKind === PATH_PREFIX) m.prefixLength = c.pathValue.length;
    const hit: Hit = { c, m: Object.freeze(m) };
    if (c.pathKind === PATH_EXACT) {
      const list = group.exact.get(c.pathValue);
      if (list) list.push(hit);
      else group.exact.set(c.pathValue, [hit]);
    } else if (c.pathKind === PATH_PREFIX) {
      // "" (root) is the root node; "/a/b" is root → "a" → "b".
      let node = group.prefixRoot;
      let d = 0;
      if (c.pathValue !== '') {
        for (const seg of c.pathValue.slice(1).split('/')) {
          node.children ??= new Map();
          let child = node.children.get(seg);
          if (!child) {
            child = newNode();
            node.children.set(seg, child);
          }
          node = child;
          d++;
        }
      }
      node.hits.push(hit);
      if (d > depth) depth = d;
    } else {
      group.regex.push(hit);
    }
  }
  return { group, depth };
}

class CompiledRouteTable implements RouteTable {
  readonly invalid: readonly InvalidRouteMatch[];
  readonly hostnames: readonly string[];
  private readonly exactHosts = new Map<string, HostGroup>();
  private readonly wildcardHosts = new Map<string, HostGroup>(); // keyed by suffix: "example.com" for "*.example.com"
  private readonly anyHost: HostGroup | undefined;
  private readonly ordered: HostGroup[];
  /** Trie nodes along the current request path; reused, `match` is synchronous. */
  private readonly nodeStack: PrefixNode[];

  constructor(entries: readonly RouteTableEntry[]) {
    const candidates = compileCandidates(entries);
    this.invalid = candidates
      .filter((c) => c.invalid !== undefined)
      .map((c) => ({
        route: c.routeKey,
        ruleIndex: c.ruleIndex,
        matchIndex: c.matchIndex,
        reason: c.invalid as string,
      }));

    const byHost = new Map<string, RouteCandidate[]>();
    for (const c of candidates) {
      const hosts = c.entry.hostnames.length === 0 ? [ANY_HOST] : c.entry.hostnames;
      const seen = new Set<string>();
      for (const raw of hosts) {
        const h = normalizeHostname(raw);
        if (seen.has(h)) continue;
        seen.add(h);
        const list = byHost.get(h);
        if (list) list.push(c);
        else byHost.set(h, [c]);
      }
    }

    let maxDepth = 0;
    let anyHost: HostGroup | undefined;
    this.ordered = [];
    for (const hostname of [...byHost.keys()].sort(compareHostnameSpecificity)) {
      const { group, depth } = buildGroup(hostname, byHost.get(hostname) as RouteCandidate[]);
      if (depth > maxDepth) maxDepth = depth;
      this.ordered.push(group);
      if (hostname === ANY_HOST) anyHost = group;
      else if (hostname.startsWith('*.')) this.wildcardHosts.set(hostname.slice(2), group);
      else this.exactHosts.set(hostname, group);
    }
    this.anyHost = anyHost;
    this.hostnames = this.ordered.map((g) => g.hostname);
    this.nodeStack = new Array<PrefixNode>(maxDepth + 1).fill(newNode());
  }

  match(req: RouteRequest): RouteMatch | undefined {
    const group = this.selectGroup(normalizeHost(req.host));
    return group === undefined ? undefined : this.matchInGroup(group, req);
  }

  explain(req: RouteRequest): RouteExplanation {
    const groups: ExplainGroup[] = this.ordered;
    return explainRoute(groups, req);
  }

  get groups(): readonly ExplainGroup[] {
    return this.ordered;
  }

  private selectGroup(host: string): HostGroup | undefined {
    const exact = this.exactHosts.get(host);
    if (exact !== undefined) return exact;
    if (this.wildcardHosts.size > 0) {
      // Longest suffix first: for "a.b.example.com" try "b.example.com", then "example.com", "com".
      // The wildcard stands for at least one character, so a dot at 0 is not a boundary.
      for (let dot = host.indexOf('.', 1); dot !== -1; dot = host.indexOf('.', dot + 1)) {
        const g = this.wildcardHosts.get(host.slice(dot + 1));
        if (g !== undefined) return g;
      }
    }
    return this.anyHost;
  }

  private matchInGroup(group: HostGroup, req: RouteRequest): RouteMatch | undefined {
    const path = req.path;

    const exact = group.exact.get(path);
    if (exact !== undefined) {
      for (let i = 0; i < exact.length; i++) {
        const hit = exact[i] as Hit;
        if (matchesRequestDetails(hit.c, req)) return hit.m;
      }
    }

    if (path.charCodeAt(0) === 0x2f) {
      const stack = this.nodeStack;
      let node = group.prefixRoot;
      stack[0] = node;
      let depth = 0;
      let start = 1;
      while (node.children !== undefined && depth < stack.length - 1) {
        const slash = path.indexOf('/', start);
        const end = slash === -1 ? path.length : slash;
        if (end === start) break; // empty segment: "/a/" ends here, "//" matches no prefix
        const child = node.children.get(path.slice(start, end));
        if (child === undefined) break;
        node = child;
        stack[++depth] = node;
        if (slash === -1) break;
        start = slash + 1;
      }
      for (let d = depth; d >= 0; d--) {
        const hits = (stack[d] as PrefixNode).hits;
        for (let i = 0; i < hits.length; i++) {
          const hit = hits[i] as Hit;
          if (matchesRequestDetails(hit.c, req)) return hit.m;
        }
      }
    }

    const regex = group.regex;
    for (let i = 0; i < regex.length; i++) {
      const hit = regex[i] as Hit;
      if ((hit.c.pathRegex as RegExp).test(path) && matchesRequestDetails(hit.c, req)) return hit.m;
    }
    return undefined;
  }
}

export function compileRouteTable<A = unknown>(
  entries: readonly RouteTableEntry<A>[],
): RouteTable<A> {
  // Attachments are only stored and handed back, so the untyped table serves every A.
  return new CompiledRouteTable(entries) as RouteTable<unknown> as RouteTable<A>;
}
