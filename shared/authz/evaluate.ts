// The inbound security decision for one request at one workload: PeerAuthentication (is the
// connection acceptable), RequestAuthentication (is the JWT, if any, valid), then
// AuthorizationPolicy in Istio's order. The sidecar's inbound stack and `meshgate explain` call
// the same functions, so what explain says is what the sidecar does:
//
//   const compiled = compileInboundPolicy(snapshot, { namespace, labels });  // once per snapshot
//   const decision = await authorizeInbound(compiled, request);               // per request
//
// authorizeInbound verifies JWTs (async, JWKS) and then calls evaluateInbound, which is pure and
// synchronous; with no RequestAuthentication on the workload (compiled.requestAuthentication
// .rules is empty) the sidecar may call evaluateInbound directly. A decision that allows carries
// `headers` (JWT output headers to set, the token and forged output headers to remove) for the
// request that goes on to the app.
//
// authorization_policy.proto: "1. If there are any CUSTOM policies that match the request,
// evaluate and deny the request if the evaluation result is deny. 2. If there are any DENY
// policies that match the request, deny the request. 3. If there are no ALLOW policies for the
// workload, allow the request. 4. If any of the ALLOW policies match the request, allow the
// request. 5. Deny the request." AUDIT policies "do not affect whether requests are allowed or
// denied". meshgate has no external authorizer: a CUSTOM policy (the compiler refuses them) that
// matches denies, failing closed.

import type { Snapshot } from '../config/snapshot.ts';
import { normalizePath, type PathNormalization } from '../routing/normalize-path.ts';
import {
  compileAuthorizationPolicies,
  matchPolicy,
  peerIdentity,
  type AuthzAction,
  type AuthzFacts,
  type CompiledAuthorization,
  type CompiledAuthzPolicy,
  type PeerIdentity,
} from './authorization-policy.ts';
import {
  compilePeerAuthentication,
  mtlsModeForPort,
  mtlsModeSource,
  type CompiledPeerAuthentication,
  type MtlsMode,
} from './peer-authentication.ts';
import {
  authenticateRequest,
  compileRequestAuthentication,
  extractTokens,
  type AuthenticateOptions,
  type CompiledRequestAuthentication,
  type HeaderMutation,
  type RequestAuthDeps,
  type RequestAuthOutcome,
  type RequestIdentity,
} from './request-authentication.ts';
import {
  describeSelection,
  selectionOf,
  servicesSelecting,
  type Selection,
  type WorkloadRef,
} from './workload-selection.ts';

export interface InboundPolicyOptions extends RequestAuthDeps {
  /** Default: the snapshot's root namespace. */
  rootNamespace?: string;
  /** The normalization the inbound stack applies before routing (default: meshgate's). */
  pathNormalization?: PathNormalization;
}

export interface CompiledInbound {
  workload: WorkloadRef;
  rootNamespace: string;
  /** Services that select the workload ("Service/ns/name"). */
  services: string[];
  peerAuthentication: CompiledPeerAuthentication;
  requestAuthentication: CompiledRequestAuthentication;
  authorization: CompiledAuthorization;
  /** "denied: no ALLOW policy matches (…)", built once. */
  noAllowMatchReason: string;
  pathNormalization: PathNormalization;
}

/** Everything one workload's inbound security needs, built once per snapshot. */
export function compileInboundPolicy(
  snapshot: Pick<Snapshot, 'meshSecurity' | 'rootNamespace' | 'services'>,
  workload: WorkloadRef,
  options: InboundPolicyOptions = {},
): CompiledInbound {
  const rootNamespace = options.rootNamespace ?? snapshot.rootNamespace;
  const services = servicesSelecting(snapshot.services, workload);
  const select = (list: Snapshot['meshSecurity']['authorizationPolicies']) =>
    list.flatMap((policy) => {
      const selection = selectionOf(policy, workload, rootNamespace, services);
      return selection ? [{ policy, selection }] : [];
    });
  const authorization = compileAuthorizationPolicies(
    select(snapshot.meshSecurity.authorizationPolicies),
  );
  return {
    workload,
    rootNamespace,
    services: [...services],
    peerAuthentication: compilePeerAuthentication(
      snapshot.meshSecurity.peerAuthentications,
      workload,
      rootNamespace,
    ),
    requestAuthentication: compileRequestAuthentication(
      select(snapshot.meshSecurity.requestAuthentications),
      options.jwks ? { jwks: options.jwks } : {},
    ),
    authorization,
    noAllowMatchReason: `denied: no ALLOW policy matches (${authorization.allow.map((p) => p.policy).join(', ')})`,
    pathNormalization: options.pathNormalization ?? {},
  };
}

/** One request as it reaches the workload's inbound listener. */
export interface InboundRequest {
  /** The workload (container) port, as PeerAuthentication portLevelMtls and `ports` mean it. */
  port: number;
  /** The caller's verified mesh identity ("cluster.local/ns/X/sa/Y"); absent: plaintext. */
  peerPrincipal?: string;
  sourceIp?: string;
  /** The original client from X-Forwarded-For; default `sourceIp`. */
  remoteIp?: string;
  destinationIp?: string;
  /** TLS server name the caller asked for. */
  sni?: string;
  method: string;
  /** The request target as sent: path and query, not yet normalized. */
  path: string;
  /** The Host (:authority); default the `host` header. */
  host?: string;
  headers?: Readonly<Record<string, string | readonly string[] | undefined>>;
  /**
   * The JWT outcome from authenticateRequest (or authenticateToken / authenticateClaims).
   * authorizeInbound fills it in; evaluateInbound without it cannot verify a token that is
   * present and answers 401.
   */
  auth?: RequestAuthOutcome;
}

export interface DecidedBy {
  policy: string;
  action: Exclude<AuthzAction, 'AUDIT'>;
  rule: number;
}

export interface PolicyTrace {
  policy: string;
  action: AuthzAction;
  /** How the policy selects the workload. */
  selectedBy: string;
  matched: boolean;
  /** The first rule that matched. */
  rule?: number;
  /** Why each rule before it (or every rule) did not match. */
  reasons: string[];
  /** This policy made the decision. */
  decided?: boolean;
}

export interface InboundDecision {
  allow: boolean;
  /** 400: the path was refused by normalization; 401/403 as Istio answers. */
  status: 200 | 400 | 401 | 403;
  /** The PeerAuthentication mode of the port. */
  mtls: MtlsMode;
  /** STRICT and a plaintext caller: the connection is refused before any HTTP exchange. */
  plaintextRefused: boolean;
  decidedBy?: DecidedBy;
  /** One line for logs and the admin endpoint: "denied by ns/name rule 2", … */
  reason: string;
  peerPrincipal?: string;
  requestPrincipal?: string;
  /** The normalized path authorization saw. */
  path?: string;
  /** Headers to change before the request reaches the app (JWT output headers, token removal). */
  headers?: HeaderMutation;
  /** Every policy selecting the workload in evaluation order; filled when `trace` is set. */
  policies: PolicyTrace[];
  trace?: InboundTrace;
}

export interface InboundTrace {
  peerAuthentication: {
    mode: MtlsMode;
    from: string;
    chosen: CompiledPeerAuthentication['chosen'];
    passedOver: CompiledPeerAuthentication['passedOver'];
  };
  requestAuthentication: {
    policies: { policy: string; selectedBy: string }[];
    outcome: string;
    rule?: string;
  };
  notes: string[];
}

export interface EvaluateOptions {
  /** Build reasons for every policy (explain). The sidecar leaves it off. */
  trace?: boolean;
}

/**
 * The decision for a request whose JWT outcome is known (or that carries no token). Pure and
 * synchronous: the sidecar and explain both end here.
 */
export function evaluateInbound(
  compiled: CompiledInbound,
  request: InboundRequest,
  options: EvaluateOptions = {},
): InboundDecision {
  const notes: string[] | undefined = options.trace === true ? [] : undefined;
  const mtls = mtlsModeForPort(compiled.peerAuthentication, request.port);
  const peer = request.peerPrincipal ? cachedPeer(compiled, request.peerPrincipal) : undefined;
  const out = new Outcome(mtls);

  if (!peer && mtls === 'STRICT') {
    out.plaintextRefused = true;
    return finish(
      compiled,
      request,
      out.deny(
        403,
        `plaintext refused: PeerAuthentication STRICT on port ${request.port} (the connection is closed before any HTTP exchange)`,
      ),
      undefined,
      notes,
    );
  }
  let seenPeer = peer;
  if (peer && mtls === 'DISABLE') {
    // With mTLS disabled the sidecar does not terminate TLS, so no peer identity is known.
    seenPeer = undefined;
    notes?.push(
      `mTLS is DISABLE on port ${request.port}: the caller's identity ${peer.principal} is not seen`,
    );
  }
  out.peerPrincipal = seenPeer?.principal;

  const normalized = normalizePath(request.path, compiled.pathNormalization);
  if (!normalized.ok)
    return finish(
      compiled,
      request,
      out.deny(400, `path refused: ${normalized.reason}`),
      undefined,
      notes,
    );
  out.path = normalized.path;
  const facts = new RequestFacts(request, seenPeer, normalized.path);
  const auth =
    request.auth ?? unverifiedOutcome(compiled.requestAuthentication, normalized.query, facts);
  if (auth.kind === 'invalid')
    return finish(
      compiled,
      request,
      out.deny(auth.status, `request authentication failed: ${auth.reason}`),
      auth,
      notes,
    );
  if (auth.kind === 'verified') {
    facts.request = auth.identity;
    out.requestPrincipal = auth.identity.principal;
  }
  out.headers = auth.headers;
  const az = compiled.authorization;

  if (!notes) {
    for (const p of az.custom) {
      const rule = matchPolicy(p, facts);
      if (rule) return out.deny(403, customDenialReason(p, rule.index), p, 'CUSTOM', rule.index);
    }
    for (const p of az.deny) {
      const rule = matchPolicy(p, facts);
      if (rule) return out.deny(403, rule.deniedReason, p, 'DENY', rule.index);
    }
    if (az.allow.length === 0) return out.allowed(NO_ALLOW_POLICY);
    for (const p of az.allow) {
      const rule = matchPolicy(p, facts);
      if (rule) return out.allowed(rule.allowedReason, p, rule.index);
    }
    return out.deny(403, compiled.noAllowMatchReason);
  }

  // Explain: every policy is evaluated and says why it did or did not match; the first match in
  // Istio's order decides, exactly as above.
  const policies: PolicyTrace[] = [];
  let decided = false;
  const decide = (t: PolicyTrace, then: () => void) => {
    if (!t.matched || decided) return;
    t.decided = true;
    decided = true;
    then();
  };
  for (const p of az.custom) {
    const t = tracePolicy(p, facts, policies);
    decide(t, () => out.deny(403, customDenialReason(p, t.rule as number), p, 'CUSTOM', t.rule));
  }
  for (const p of az.deny) {
    const t = tracePolicy(p, facts, policies);
    decide(t, () => out.deny(403, `denied by ${p.policy} rule ${t.rule}`, p, 'DENY', t.rule));
  }
  for (const p of az.allow) {
    const t = tracePolicy(p, facts, policies);
    decide(t, () => out.allowed(`allowed by ${p.policy} rule ${t.rule}`, p, t.rule));
  }
  for (const p of az.audit) {
    tracePolicy(p, facts, policies);
    notes.push(`AUDIT policy ${p.policy} has no effect on the decision`);
  }
  if (!decided) {
    if (az.allow.length === 0) out.allowed(NO_ALLOW_POLICY);
    else out.deny(403, compiled.noAllowMatchReason);
  }
  out.policies = policies;
  return finish(compiled, request, out, auth, notes);
}

/** The decision under construction: one shape for every outcome, so the hot path stays fast. */
class Outcome implements InboundDecision {
  allow = false;
  status: InboundDecision['status'] = 403;
  plaintextRefused = false;
  decidedBy: DecidedBy | undefined = undefined;
  reason = '';
  peerPrincipal: string | undefined = undefined;
  requestPrincipal: string | undefined = undefined;
  path: string | undefined = undefined;
  headers: HeaderMutation | undefined = undefined;
  policies: PolicyTrace[] = [];
  trace: InboundTrace | undefined = undefined;

  constructor(readonly mtls: MtlsMode) {}

  deny(
    status: InboundDecision['status'],
    reason: string,
    p?: CompiledAuthzPolicy,
    action?: 'DENY' | 'CUSTOM',
    rule?: number,
  ): this {
    this.allow = false;
    this.status = status;
    this.reason = reason;
    if (p && action) this.decidedBy = { policy: p.policy, action, rule: rule as number };
    return this;
  }

  allowed(reason: string, p?: CompiledAuthzPolicy, rule?: number): this {
    this.allow = true;
    this.status = 200;
    this.reason = reason;
    if (p) this.decidedBy = { policy: p.policy, action: 'ALLOW', rule: rule as number };
    return this;
  }

  /** The decision as plain data, without the properties that are not set. */
  toJSON(): Record<string, unknown> {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this)) if (v !== undefined) o[k] = v;
    return o;
  }
}

function customDenialReason(p: CompiledAuthzPolicy, rule: number): string {
  return `denied by ${p.policy} rule ${rule}: action CUSTOM needs an external authorizer, which meshgate does not have (fail closed)`;
}

function finish(
  compiled: CompiledInbound,
  request: InboundRequest,
  out: Outcome,
  auth: RequestAuthOutcome | undefined,
  notes: string[] | undefined,
): InboundDecision {
  if (notes) out.trace = traceOf(compiled, request, out.mtls, auth, notes);
  return out;
}

function tracePolicy(p: CompiledAuthzPolicy, facts: AuthzFacts, into: PolicyTrace[]): PolicyTrace {
  const reasons: string[] = [];
  const rule = matchPolicy(p, facts, reasons);
  const t: PolicyTrace = {
    policy: p.policy,
    action: p.action,
    selectedBy: describeSelection(p.selection),
    matched: rule !== undefined,
    ...(rule ? { rule: rule.index } : {}),
    reasons,
  };
  into.push(t);
  return t;
}

/** The facts rules read, as one object per request (methods on the prototype, no closures). */
class RequestFacts implements AuthzFacts {
  peer?: PeerIdentity;
  request?: RequestIdentity;
  sourceIp?: string;
  remoteIp?: string;
  destinationIp?: string;
  port: number;
  sni?: string;
  host?: string;
  method: string;
  path: string;
  private readonly headers: InboundRequest['headers'];
  private lower?: Map<string, string>;

  constructor(r: InboundRequest, peer: PeerIdentity | undefined, path: string) {
    this.headers = r.headers;
    if (peer) this.peer = peer;
    if (r.sourceIp !== undefined) this.sourceIp = r.sourceIp;
    if (r.remoteIp !== undefined) this.remoteIp = r.remoteIp;
    if (r.destinationIp !== undefined) this.destinationIp = r.destinationIp;
    if (r.sni !== undefined) this.sni = r.sni;
    this.port = r.port;
    const host = r.host ?? this.header('host') ?? this.header(':authority');
    if (host !== undefined) this.host = host;
    this.method = r.method.toUpperCase();
    this.path = path;
  }

  header(name: string): string | undefined {
    const headers = this.headers;
    if (!headers) return undefined;
    const direct = headers[name];
    if (direct !== undefined) return typeof direct === 'string' ? direct : direct.join(',');
    if (!this.lower) {
      this.lower = new Map();
      for (const k in headers) {
        const v = headers[k];
        if (v !== undefined)
          this.lower.set(k.toLowerCase(), typeof v === 'string' ? v : v.join(','));
      }
    }
    return this.lower.get(name);
  }
}

/** Parsed peer identities, kept per compiled policy: the same callers come back all the time. */
const PEER_CACHE_SIZE = 1024;
const peerCaches = new WeakMap<CompiledInbound, Map<string, PeerIdentity>>();

function cachedPeer(compiled: CompiledInbound, principal: string): PeerIdentity {
  let cache = peerCaches.get(compiled);
  if (!cache) peerCaches.set(compiled, (cache = new Map()));
  let p = cache.get(principal);
  if (!p) {
    if (cache.size >= PEER_CACHE_SIZE) cache.clear();
    p = peerIdentity(principal);
    cache.set(principal, p);
  }
  return p;
}

const NO_ALLOW_POLICY = 'allowed: no ALLOW policy selects the workload';

function traceOf(
  compiled: CompiledInbound,
  request: InboundRequest,
  mtls: MtlsMode,
  auth: RequestAuthOutcome | undefined,
  notes: string[],
): InboundTrace {
  const pa = compiled.peerAuthentication;
  const ra = compiled.requestAuthentication;
  let outcome: string;
  if (!auth) outcome = 'not reached';
  else if (auth.kind === 'verified')
    outcome = `valid token: request principal ${auth.identity.principal}`;
  else if (auth.kind === 'invalid') outcome = `invalid token (${auth.status}): ${auth.reason}`;
  else outcome = auth.note;
  return {
    peerAuthentication: {
      mode: mtls,
      from: mtlsModeSource(pa, request.port),
      chosen: pa.chosen,
      passedOver: pa.passedOver,
    },
    requestAuthentication: {
      policies: ra.policies.map((p) => ({
        policy: p.policy,
        selectedBy: describeSelection(p.selection),
      })),
      outcome,
      ...(auth && auth.kind !== 'none' && auth.rule ? { rule: auth.rule } : {}),
    },
    notes,
  };
}

/** Without a verified outcome: only "no token" can be decided synchronously. */
function unverifiedOutcome(
  ra: CompiledRequestAuthentication,
  query: string,
  facts: RequestFacts,
): RequestAuthOutcome {
  if (ra.rules.length === 0) return NO_RULES;
  if (extractTokens(ra, { query, header: (name) => facts.header(name) }).length === 0)
    return { kind: 'none', note: 'no token: no request principal' };
  return {
    kind: 'invalid',
    status: 401,
    reason: 'a token is present but was not verified (use authorizeInbound, which verifies it)',
  };
}

const NO_RULES: RequestAuthOutcome = {
  kind: 'none',
  note: 'no RequestAuthentication selects the workload',
};

/**
 * Authenticates the request's JWTs (when a RequestAuthentication applies and the caller did not
 * pass an outcome), then evaluates. The sidecar's inbound authorization layer calls this.
 */
export async function authorizeInbound(
  compiled: CompiledInbound,
  request: InboundRequest,
  options: EvaluateOptions & AuthenticateOptions = {},
): Promise<InboundDecision> {
  const ra = compiled.requestAuthentication;
  if (request.auth || ra.rules.length === 0) return evaluateInbound(compiled, request, options);
  const mtls = mtlsModeForPort(compiled.peerAuthentication, request.port);
  if (!request.peerPrincipal && mtls === 'STRICT')
    return evaluateInbound(compiled, request, options);
  const facts = new RequestFacts(request, undefined, request.path);
  const q = request.path.indexOf('?');
  const auth = await authenticateRequest(
    ra,
    {
      method: facts.method,
      query: q < 0 ? '' : request.path.slice(q + 1),
      header: (name) => facts.header(name),
    },
    options,
  );
  return evaluateInbound(compiled, { ...request, auth }, options);
}

export type { Selection, WorkloadRef };
