// AuthorizationPolicy rules compiled into predicates, once per snapshot per workload.
//
// authorization_policy.proto, message Rule: "A match occurs when at least one source, one
// operation and all conditions matches the request. An empty rule is always matched." Source and
// Operation: "Fields in the source are ANDed together." A field's values are ORed; a `notX` field
// matches when none of its values does. `rules` unset or empty: "the match will never occur".
//
// How each field reads the request follows Istio's RBAC generator (pilot/pkg/security/authz/model
// generator.go), so that identity-based fields on a plaintext request behave as in Istio:
// principals, namespaces, serviceAccounts and trustDomains match against the peer certificate's
// SPIFFE id, which a plaintext request does not have. A positive field then never matches and a
// `not` field always matches: `notPrincipals: ["*"]` is Istio's documented way to catch plaintext
// ("This authz policy denies access to the service if the request was not mTLS, since mTLS is
// required in order to match source principals", tests/integration/security/testdata).
//
// Reasons are built only when a trace is asked for (explain); the sidecar's hot path runs the
// predicates alone and takes the precomputed "ns/name rule i" label of the rule that decided.

import type { IstioPolicyIR } from '../config/snapshot.ts';
import type {
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationRule,
  AuthorizationSource,
} from '../config/schemas/istio-security.ts';
import { ipBlocksMatcher } from './ip-match.ts';
import type { RequestIdentity } from './request-authentication.ts';
import { anyOf, istioStringMatcher, pathMatcher, type ValueMatcher } from './string-match.ts';
import { describeSelection, type Selection } from './workload-selection.ts';

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/** A verified mesh identity: `<trust domain>/ns/<namespace>/sa/<service account>`. */
export interface PeerIdentity {
  /** Without "spiffe://", as policies write it. */
  principal: string;
  /** The certificate's URI SAN, "spiffe://…". */
  uri: string;
  trustDomain: string;
}

export function peerIdentity(principal: string): PeerIdentity {
  const bare = principal.startsWith('spiffe://') ? principal.slice('spiffe://'.length) : principal;
  const slash = bare.indexOf('/');
  return {
    principal: bare,
    uri: `spiffe://${bare}`,
    trustDomain: slash < 0 ? bare : bare.slice(0, slash),
  };
}

/** What the rules read about one request. */
export interface AuthzFacts {
  /** Absent: no verified peer certificate (plaintext). */
  peer?: PeerIdentity;
  /** Absent: no valid JWT. */
  request?: RequestIdentity;
  /** The connection's peer address (`source.ip`, `ipBlocks`). */
  sourceIp?: string;
  /** The original client (`remote.ip`, `remoteIpBlocks`): X-Forwarded-For or PROXY protocol. */
  remoteIp?: string;
  destinationIp?: string;
  /** Workload port the request arrived on. */
  port: number;
  sni?: string;
  host?: string;
  method: string;
  /** Normalized, without the query. */
  path: string;
  /** A request header by lowercase name; repeated headers joined with ",". */
  header(name: string): string | undefined;
}

interface Check {
  test(f: AuthzFacts): boolean;
  /** Why `test` failed, for a trace. */
  why(f: AuthzFacts): string;
}

export interface CompiledAuthzRule {
  /** Index in spec.rules. */
  index: number;
  /** "ns/name rule i", precomputed for logs. */
  label: string;
  /** "denied by ns/name rule i" / "allowed by …", precomputed so the hot path builds no string. */
  deniedReason: string;
  allowedReason: string;
  /** Undefined: any source. Each source is a list of ANDed checks; sources are ORed. */
  from?: Check[][];
  to?: Check[][];
  when: Check[];
}

export interface CompiledAuthzPolicy {
  policy: string;
  action: AuthzAction;
  selection: Selection;
  rules: CompiledAuthzRule[];
}

export interface CompiledAuthorization {
  custom: CompiledAuthzPolicy[];
  deny: CompiledAuthzPolicy[];
  allow: CompiledAuthzPolicy[];
  audit: CompiledAuthzPolicy[];
}

export function compileAuthorizationPolicies(
  selected: readonly { policy: IstioPolicyIR; selection: Selection }[],
): CompiledAuthorization {
  const out: CompiledAuthorization = { custom: [], deny: [], allow: [], audit: [] };
  for (const { policy, selection } of selected) {
    const spec = policy.spec as { action?: AuthzAction; rules?: AuthorizationRule[] };
    const action = spec.action ?? 'ALLOW';
    const key = `${policy.namespace}/${policy.name}`;
    const compiled: CompiledAuthzPolicy = {
      policy: key,
      action,
      selection,
      rules: (spec.rules ?? []).map((r, i) => compileRule(r, i, key, policy.namespace, action)),
    };
    switch (action) {
      case 'CUSTOM':
        out.custom.push(compiled);
        break;
      case 'DENY':
        out.deny.push(compiled);
        break;
      case 'AUDIT':
        out.audit.push(compiled);
        break;
      default:
        out.allow.push(compiled);
    }
  }
  return out;
}

/**
 * The first rule of `p` that matches, or undefined. With `reasons`, every rule that does not
 * match before the first one that does says why.
 */
export function matchPolicy(
  p: CompiledAuthzPolicy,
  f: AuthzFacts,
  reasons?: string[],
): CompiledAuthzRule | undefined {
  if (p.rules.length === 0) {
    reasons?.push('the policy has no rules: it matches nothing');
    return undefined;
  }
  for (const rule of p.rules) {
    if (matchRule(rule, f)) return rule;
    if (reasons) reasons.push(`rule ${rule.index}: ${explainRule(rule, f)}`);
  }
  return undefined;
}

export function describePolicySelection(p: CompiledAuthzPolicy): string {
  return describeSelection(p.selection);
}

function matchRule(rule: CompiledAuthzRule, f: AuthzFacts): boolean {
  if (rule.from && !anyPasses(rule.from, f)) return false;
  if (rule.to && !anyPasses(rule.to, f)) return false;
  return allPass(rule.when, f);
}

function anyPasses(entries: readonly (readonly Check[])[], f: AuthzFacts): boolean {
  for (const checks of entries) if (allPass(checks, f)) return true;
  return false;
}

function allPass(checks: readonly Check[], f: AuthzFacts): boolean {
  for (const c of checks) if (!c.test(f)) return false;
  return true;
}

function explainRule(rule: CompiledAuthzRule, f: AuthzFacts): string {
  const parts: string[] = [];
  const side = (name: 'from' | 'to', list: Check[][] | undefined) => {
    if (!list || list.some((checks) => allPass(checks, f))) return;
    const failing = list.map((checks) =>
      checks
        .filter((c) => !c.test(f))
        .map((c) => c.why(f))
        .join(', '),
    );
    parts.push(
      failing.length === 1
        ? `${name}: ${failing[0]}`
        : `${name}: no entry matches (${failing.map((w, i) => `[${i}] ${w}`).join('; ')})`,
    );
  };
  side('from', rule.from);
  side('to', rule.to);
  for (const c of rule.when) if (!c.test(f)) parts.push(`when: ${c.why(f)}`);
  return parts.join('; ');
}

function compileRule(
  r: AuthorizationRule,
  index: number,
  policy: string,
  policyNamespace: string,
  action: AuthzAction,
): CompiledAuthzRule {
  return {
    index,
    label: `${policy} rule ${index}`,
    deniedReason: `denied by ${policy} rule ${index}`,
    allowedReason: `allowed by ${policy} rule ${index}`,
    ...(r.from ? { from: r.from.map((x) => sourceChecks(x.source, policyNamespace)) } : {}),
    ...(r.to ? { to: r.to.map((x) => operationChecks(x.operation)) } : {}),
    when: (r.when ?? []).map((c) => conditionCheck(c, policyNamespace, action)),
  };
}

// --- fields ---

/** A field with values (ORed) and notValues (none may match), over one attribute. */
function field<T>(
  name: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  read: (f: AuthzFacts) => T,
  compile: (list: readonly string[]) => (x: T) => boolean,
  show: (f: AuthzFacts) => string,
  notName = `not${name[0]?.toUpperCase()}${name.slice(1)}`,
): Check | undefined {
  const yes = values?.length ? compile(values) : undefined;
  const no = notValues?.length ? compile(notValues) : undefined;
  if (!yes && !no) return undefined;
  return {
    test: (f) => {
      const x = read(f);
      return (!yes || yes(x)) && (!no || !no(x));
    },
    why: (f) => {
      const x = read(f);
      if (yes && !yes(x)) return `${show(f)} not in ${name} ${list(values)}`;
      return `${show(f)} is in ${notName} ${list(notValues)}`;
    },
  };
}

const list = (v: readonly string[] | undefined) => `[${(v ?? []).join(', ')}]`;

function strings(compileOne: (v: string) => ValueMatcher) {
  return (values: readonly string[]): ValueMatcher => anyOf(values.map(compileOne));
}

const showPeer = (f: AuthzFacts) =>
  f.peer ? `peer ${f.peer.principal}` : 'no peer identity (plaintext)';
const showRequestPrincipal = (f: AuthzFacts) =>
  f.request ? `request principal ${f.request.principal}` : 'no request principal (no valid JWT)';

// Istio's `namespaces`: the regex ".*" + "/ns/" + value (each "*" as ".*") + "/.*", matched
// against the whole SPIFFE URI.
function namespaceMatcher(value: string): ValueMatcher {
  // Without a "*" the regex is a substring test (a SPIFFE URI holds no line breaks), which costs
  // a fraction of the regex on the request path.
  if (!value.includes('*')) {
    const needle = `/ns/${value}/`;
    return (uri) => uri !== undefined && uri.includes(needle);
  }
  const re = new RegExp(`^.*/ns/${value.split('*').map(escapeRegex).join('.*')}/.*$`);
  return (uri) => uri !== undefined && re.test(uri);
}

/** Istio's serviceAccountRegex: "<ns>/<sa>", or "<sa>" in the policy's namespace. */
function serviceAccountMatcher(value: string, policyNamespace: string): ValueMatcher {
  const slash = value.indexOf('/');
  const ns = slash < 0 ? policyNamespace : value.slice(0, slash);
  const sa = slash < 0 ? value : value.slice(slash + 1);
  const re = new RegExp(`^spiffe://.+/ns/${escapeRegex(ns)}/(.+/|)sa/${escapeRegex(sa)}(/.+)?$`);
  return (uri) => uri !== undefined && re.test(uri);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * `requestPrincipals` and `request.auth.principal`: Istio splits the value at its last "/" into
 * issuer and subject and matches each (generator.go requestPrincipalGenerator); "*" alone needs a
 * non-empty issuer and subject.
 */
function requestPrincipalMatcher(value: string): (r: RequestIdentity | undefined) => boolean {
  const any: ValueMatcher = (v) => v !== undefined && v.length > 0;
  const exact =
    (e: string): ValueMatcher =>
    (v) =>
      v === e;
  const idx = value.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? value.slice(0, idx) : value;
  const sub = found ? value.slice(idx + 1) : '';
  let mIss: ValueMatcher;
  let mSub: ValueMatcher;
  if (value === '*') {
    mIss = any;
    mSub = any;
  } else if (value.startsWith('*')) {
    if (found) {
      mIss = iss === '*' ? any : (v) => v !== undefined && v.endsWith(iss.slice(1));
      mSub = exact(sub);
    } else {
      mIss = any;
      mSub = (v) => v !== undefined && v.endsWith(value.slice(1));
    }
  } else if (value.endsWith('*')) {
    if (found) {
      mIss = exact(iss);
      mSub = sub === '*' ? any : (v) => v !== undefined && v.startsWith(sub.slice(0, -1));
    } else {
      mIss = (v) => v !== undefined && v.startsWith(value.slice(0, -1));
      mSub = any;
    }
  } else {
    mIss = exact(iss);
    mSub = exact(sub);
  }
  return (r) => r !== undefined && mIss(r.issuer) && mSub(r.subject);
}

function requestPrincipals(values: readonly string[]) {
  const ms = values.map(requestPrincipalMatcher);
  return (r: RequestIdentity | undefined) => ms.some((m) => m(r));
}

function portSet(values: readonly string[]) {
  const set = new Set(values.map(Number));
  return (p: number) => set.has(p);
}

function sourceChecks(s: AuthorizationSource, policyNamespace: string): Check[] {
  const checks = [
    field(
      'principals',
      s.principals,
      s.notPrincipals,
      (f) => f.peer?.principal,
      strings((v) => istioStringMatcher(v)),
      showPeer,
    ),
    field(
      'namespaces',
      s.namespaces,
      s.notNamespaces,
      (f) => f.peer?.uri,
      strings(namespaceMatcher),
      showPeer,
    ),
    field(
      'serviceAccounts',
      s.serviceAccounts,
      s.notServiceAccounts,
      (f) => f.peer?.uri,
      strings((v) => serviceAccountMatcher(v, policyNamespace)),
      showPeer,
    ),
    field(
      'trustDomains',
      s.trustDomains,
      s.notTrustDomains,
      (f) => f.peer?.trustDomain,
      strings((v) => istioStringMatcher(v)),
      (f) => (f.peer ? `trust domain ${f.peer.trustDomain}` : 'no peer identity (plaintext)'),
    ),
    field(
      'requestPrincipals',
      s.requestPrincipals,
      s.notRequestPrincipals,
      (f) => f.request,
      requestPrincipals,
      showRequestPrincipal,
    ),
    field(
      'ipBlocks',
      s.ipBlocks,
      s.notIpBlocks,
      (f) => f.sourceIp,
      ipBlocksMatcher,
      (f) => `source IP ${f.sourceIp ?? '(unknown)'}`,
    ),
    field(
      'remoteIpBlocks',
      s.remoteIpBlocks,
      s.notRemoteIpBlocks,
      (f) => f.remoteIp ?? f.sourceIp,
      ipBlocksMatcher,
      (f) => `remote IP ${f.remoteIp ?? f.sourceIp ?? '(unknown)'}`,
    ),
  ];
  return checks.filter((c): c is Check => c !== undefined);
}

function operationChecks(o: AuthorizationOperation): Check[] {
  const checks = [
    field(
      'hosts',
      o.hosts,
      o.notHosts,
      (f) => f.host,
      strings((v) => istioStringMatcher(v, { ignoreCase: true })),
      (f) => `host ${f.host ?? '(none)'}`,
    ),
    field(
      'ports',
      o.ports,
      o.notPorts,
      (f) => f.port,
      portSet,
      (f) => `port ${f.port}`,
    ),
    field(
      'methods',
      o.methods,
      o.notMethods,
      (f) => f.method,
      strings((v) => istioStringMatcher(v)),
      (f) => `method ${f.method}`,
    ),
    field(
      'paths',
      o.paths,
      o.notPaths,
      (f) => f.path,
      strings(pathMatcher),
      (f) => `path ${f.path}`,
    ),
  ];
  return checks.filter((c): c is Check => c !== undefined);
}

// --- conditions (https://istio.io/latest/docs/reference/config/security/conditions/) ---

/** Claims arrive as strings or lists of strings; anything else matches nothing. */
function claimStrings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

function claimAt(claims: Record<string, unknown> | undefined, path: readonly string[]): unknown {
  let v: unknown = claims;
  for (const seg of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}

/** Istio's header matcher: like the string match, but "*" only needs the header present. */
function headerMatcher(value: string): ValueMatcher {
  return value === '*' ? (v) => v !== undefined : istioStringMatcher(value);
}

function anyString(values: readonly string[]) {
  const m = anyOf(values.map((v) => istioStringMatcher(v)));
  return (xs: readonly string[]) => xs.some((x) => m(x));
}

function conditionCheck(
  c: AuthorizationCondition,
  policyNamespace: string,
  action: AuthzAction,
): Check {
  const k = c.key;
  const cond = <T>(
    read: (f: AuthzFacts) => T,
    compile: (list: readonly string[]) => (x: T) => boolean,
    show: (f: AuthzFacts) => string,
  ): Check =>
    field(`values`, c.values, c.notValues, read, compile, (f) => `${k}: ${show(f)}`, 'notValues') ??
      // values and notValues both empty: the schema refuses it; nothing to test.
      { test: () => true, why: () => '' };

  if (k.startsWith('request.headers[') && k.endsWith(']')) {
    const name = k.slice('request.headers['.length, -1).toLowerCase();
    return cond(
      (f) => f.header(name),
      strings(headerMatcher),
      (f) => {
        const v = f.header(name);
        return v === undefined ? 'header absent' : JSON.stringify(v);
      },
    );
  }
  if (k.startsWith('request.auth.claims[') && k.endsWith(']')) {
    const path = [...k.slice('request.auth.claims'.length).matchAll(/\[([^\]]+)\]/g)].map(
      (m) => m[1] as string,
    );
    return cond(
      (f) => claimStrings(claimAt(f.request?.claims, path)),
      anyString,
      (f) => {
        if (!f.request) return 'no valid JWT';
        const v = claimAt(f.request.claims, path);
        return v === undefined ? 'claim absent' : JSON.stringify(v);
      },
    );
  }
  switch (k) {
    case 'source.ip':
      return cond(
        (f) => f.sourceIp,
        ipBlocksMatcher,
        (f) => f.sourceIp ?? '(unknown)',
      );
    case 'remote.ip':
      return cond(
        (f) => f.remoteIp ?? f.sourceIp,
        ipBlocksMatcher,
        (f) => f.remoteIp ?? f.sourceIp ?? '(unknown)',
      );
    case 'destination.ip':
      return cond(
        (f) => f.destinationIp,
        ipBlocksMatcher,
        (f) => f.destinationIp ?? '(unknown)',
      );
    case 'destination.port':
      return cond(
        (f) => f.port,
        portSet,
        (f) => String(f.port),
      );
    case 'connection.sni':
      return cond(
        (f) => f.sni,
        strings((v) => istioStringMatcher(v)),
        (f) => f.sni ?? '(no SNI)',
      );
    case 'source.principal':
      return cond(
        (f) => f.peer?.principal,
        strings((v) => istioStringMatcher(v)),
        showPeer,
      );
    case 'source.namespace':
      return cond((f) => f.peer?.uri, strings(namespaceMatcher), showPeer);
    case 'source.serviceAccount':
      return cond(
        (f) => f.peer?.uri,
        strings((v) => serviceAccountMatcher(v, policyNamespace)),
        showPeer,
      );
    case 'source.trustDomain':
      return cond(
        (f) => f.peer?.trustDomain,
        strings((v) => istioStringMatcher(v)),
        (f) => f.peer?.trustDomain ?? 'no peer identity (plaintext)',
      );
    case 'request.auth.principal':
      return cond((f) => f.request, requestPrincipals, showRequestPrincipal);
    case 'request.auth.audiences':
      return cond(
        (f) => f.request?.audiences ?? [],
        anyString,
        (f) => (f.request ? JSON.stringify(f.request.audiences) : 'no valid JWT'),
      );
    case 'request.auth.presenter':
      return cond(
        (f) => claimStrings(f.request?.claims.azp),
        anyString,
        (f) => (f.request ? JSON.stringify(f.request.presenter ?? null) : 'no valid JWT'),
      );
  }
  // The compiler refuses other keys (experimental.envoy.filters.*, unknown attributes). Should one
  // arrive, do what Istio's generator does with an attribute it cannot build: an ALLOW rule that
  // needs it never matches; a DENY (or CUSTOM) rule ignores it and so matches more.
  const matches = action !== 'ALLOW';
  return {
    test: () => matches,
    why: () => `${k}: attribute not supported; an ALLOW rule that needs it never matches`,
  };
}
