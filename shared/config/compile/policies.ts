// Envoy Gateway policy attachment: SecurityPolicy, BackendTrafficPolicy, ClientTrafficPolicy (and
// meshgate's TokenIntrospectionPolicy, attached the same way as a SecurityPolicy, without merging) →
// the policies each attachment point runs, with PolicyStatus per policy. The semantics are
// upstream's (envoyproxy/gateway internal/gatewayapi/{securitypolicy,backendtrafficpolicy,
// clienttrafficpolicy}.go and the "Precedence" and "Policy Merging" sections of the concept docs):
//
// - Precedence: route rule (sectionName) > route > listener (sectionName) > gateway; a more
//   specific policy replaces a less specific one entirely unless it sets mergeType, in which case
//   it is merged over the closest parent (listener, else gateway), never over the route level.
//   meshgate adds one level for mesh traffic: a BackendTrafficPolicy on a core Service is the
//   parent of the route policies of mesh routes attached to that Service.
// - Policies are processed oldest creationTimestamp first, then namespace/name; an undated policy
//   counts as the newest (as routes do here). Per target the first one claims it; the others get
//   Accepted=False reason Conflicted on that target's ancestors.
// - A target that does not exist (or a Gateway of another controller) is skipped without any
//   status: upstream does the same because another controller may own it.
// - Ancestors: a Gateway target is its own ancestor (with sectionName for a listener); for an
//   HTTPRoute target, the Gateways (and, for mesh routes, the Services) of its parentRefs.
// - A policy that cannot be applied as written (a rejected unsupported field, a Secret that does
//   not resolve) still claims its targets and fails closed: its effective entry is
//   `{ invalid: { reason, message } }` and the data plane answers the requests it covers with 500,
//   as upstream does with a direct 500 response. It gets Accepted=False reason Invalid.

import { splitApiVersion } from '../kinds.ts';
import type { Resource } from '../resource.ts';
import {
  ENVOY_GATEWAY_GROUP,
  type BackendTrafficPolicySpec,
  type ClientTrafficPolicySpec,
  type PolicyTargetReference,
  type SecurityPolicySpec,
  type TargetSelector,
} from '../schemas/envoy-gateway.ts';
import { GATEWAY_GROUP, type HTTPRouteSpec } from '../schemas/gateway-api.ts';
import type { TokenIntrospectionPolicySpec } from '../schemas/meshgate.ts';
import type { SecretBody, ServiceSpec } from '../schemas/kubernetes.ts';
import type {
  EffectivePolicyIR,
  HTTPRouteIR,
  PolicyIR,
  PolicyKind,
  RulePoliciesIR,
  ServiceIR,
} from '../snapshot.ts';
import type { ConditionFactory, ParentRefStatus, PolicyAncestorStatus } from './conditions.ts';
import { normalizeCoreGroup, type CompileContext } from './context.ts';
import type { CompiledGateway } from './gateways.ts';
import type { CompiledRoutes, RouteAttachmentSite } from './http-routes.ts';
import { matchesLabelSelector } from './label-selector.ts';
import { mergePolicySpecs, type MergeType } from './policy-merge.ts';
import { secretValue } from './tls-secrets.ts';

export interface CompiledPolicies {
  /** Accepted policies with the targets they won. */
  policies: PolicyIR[];
  effectivePolicies: Record<string, EffectivePolicyIR>;
}

/** The effective spec of a policy that cannot be applied: the data plane answers 500. */
export interface FailClosedSpec {
  invalid: { reason: string; message: string };
}

type RouteLevelKind = 'SecurityPolicy' | 'BackendTrafficPolicy' | 'TokenIntrospectionPolicy';
/** Where each route-level kind's effective policy id goes on a rule. */
const RULE_SLOT: Record<RouteLevelKind, keyof RulePoliciesIR> = {
  SecurityPolicy: 'securityPolicy',
  BackendTrafficPolicy: 'backendTrafficPolicy',
  TokenIntrospectionPolicy: 'tokenIntrospectionPolicy',
};
type Level = 'rule' | 'route' | 'listener' | 'gateway' | 'service';

const LEVEL_ORDER: readonly Level[] = ['rule', 'route', 'listener', 'gateway', 'service'];
const KIND_ORDER: readonly PolicyKind[] = [
  'SecurityPolicy',
  'BackendTrafficPolicy',
  'ClientTrafficPolicy',
  'TokenIntrospectionPolicy',
];
/** How upstream names the kind in plural in Overridden/Merged messages. */
const PLURAL: Record<PolicyKind, string> = {
  SecurityPolicy: 'securityPolicies',
  BackendTrafficPolicy: 'backendTrafficPolicies',
  ClientTrafficPolicy: 'ClientTrafficPolicies',
  TokenIntrospectionPolicy: 'tokenIntrospectionPolicies',
};
const TARGETING_FIELDS = new Set(['targetRef', 'targetRefs', 'targetSelectors', 'mergeType']);
const ACCEPTED_MESSAGE = 'Policy has been accepted.';

interface PolicyTarget {
  group: string;
  kind: string;
  name: string;
  sectionName?: string;
}

interface TargetedSpec {
  targetRef?: PolicyTargetReference | undefined;
  targetRefs?: PolicyTargetReference[] | undefined;
  targetSelectors?: TargetSelector[] | undefined;
  mergeType?: string | undefined;
}

interface PolicyState {
  kind: PolicyKind;
  resource: Resource<TargetedSpec>;
  /** "namespace/name". */
  key: string;
  /** Without the targeting fields; Secret and backend refs carry their namespace. */
  spec: Record<string, unknown>;
  mergeType?: MergeType;
  /** Why the policy cannot be applied as written: it fails closed. */
  invalid?: string;
  acceptedMessage: string;
  status: AncestorStatuses;
  /** Target ids this policy won ("gateway/ns/name", …), in the order it won them. */
  won: string[];
  ancestorsByTarget: Map<string, ParentRefStatus[]>;
}

/** Oldest first, then namespace/name; an undated resource counts as the newest. */
export function comparePolicyPrecedence(
  a: Pick<Resource, 'metadata'>,
  b: Pick<Resource, 'metadata'>,
): number {
  const ta = a.metadata.creationTimestamp;
  const tb = b.metadata.creationTimestamp;
  if (ta !== tb) {
    if (ta === undefined) return 1;
    if (tb === undefined) return -1;
    const d = Date.parse(ta) - Date.parse(tb);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  const ka = `${a.metadata.namespace}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** One policy's PolicyStatus: ancestors in the order first touched, conditions by type. */
class AncestorStatuses {
  private readonly entries = new Map<string, PolicyAncestorStatus>();

  constructor(
    private readonly controllerName: string,
    private readonly c: ConditionFactory,
  ) {}

  set(ref: ParentRefStatus, type: string, ok: boolean, reason: string, message: string): void {
    const entry = this.entry(ref);
    const condition = this.c.make(type, ok, reason, message);
    const i = entry.conditions.findIndex((x) => x.type === type);
    if (i >= 0) entry.conditions[i] = condition;
    else entry.conditions.push(condition);
  }

  acceptIfUnset(ref: ParentRefStatus, message: string): void {
    if (!this.entry(ref).conditions.some((x) => x.type === 'Accepted'))
      this.set(ref, 'Accepted', true, 'Accepted', message);
  }

  /** Whether some ancestor ended up with Accepted=True. */
  anyAccepted(): boolean {
    return [...this.entries.values()].some((e) =>
      e.conditions.some((x) => x.type === 'Accepted' && x.status === 'True'),
    );
  }

  toStatus(): { ancestors: PolicyAncestorStatus[] } {
    return { ancestors: [...this.entries.values()] };
  }

  private entry(ref: ParentRefStatus): PolicyAncestorStatus {
    const key = ancestorKey(ref);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { ancestorRef: ref, controllerName: this.controllerName, conditions: [] };
      this.entries.set(key, entry);
    }
    return entry;
  }
}

function ancestorKey(ref: ParentRefStatus): string {
  return `${ref.group ?? ''}/${ref.kind ?? ''}/${ref.namespace ?? ''}/${ref.name}/${ref.sectionName ?? ''}`;
}

function gatewayAncestor(namespace: string, name: string, sectionName?: string): ParentRefStatus {
  return {
    group: GATEWAY_GROUP,
    kind: 'Gateway',
    namespace,
    name,
    ...(sectionName !== undefined ? { sectionName } : {}),
  };
}

function serviceAncestor(namespace: string, name: string): ParentRefStatus {
  return { group: '', kind: 'Service', namespace, name };
}

/** Go's %v of a string slice, which upstream's messages use: "[a b]". */
function goList(items: Iterable<string>): string {
  return `[${[...items].sort().join(' ')}]`;
}

/** The attachment points a policy can reach, indexed once per compile. */
class AttachmentIndex {
  readonly gateways: Map<string, CompiledGateway>;
  readonly routeIRs: Map<string, HTTPRouteIR>;
  readonly sites: readonly RouteAttachmentSite[];
  readonly services: readonly ServiceIR[];

  constructor(
    private readonly ctx: CompileContext,
    gateways: readonly CompiledGateway[],
    routes: CompiledRoutes,
    services: readonly ServiceIR[],
  ) {
    this.gateways = new Map(gateways.map((g) => [`${g.ir.namespace}/${g.ir.name}`, g]));
    this.routeIRs = new Map(routes.routes.map((r) => [`${r.namespace}/${r.name}`, r]));
    this.sites = routes.attachments;
    this.services = services;
  }

  /** GEP-713: a route's policy reports against the route's parents that are ours. */
  routeAncestors(route: Resource<HTTPRouteSpec>): ParentRefStatus[] {
    const out = new Map<string, ParentRefStatus>();
    for (const p of route.spec.parentRefs ?? []) {
      const ns = p.namespace ?? route.metadata.namespace;
      const group = normalizeCoreGroup(p.group);
      let ref: ParentRefStatus | undefined;
      if (group === GATEWAY_GROUP && p.kind === 'Gateway' && this.gateways.has(`${ns}/${p.name}`))
        ref = gatewayAncestor(ns, p.name, p.sectionName);
      else if (group === '' && p.kind === 'Service' && this.ctx.get('Service', ns, p.name))
        ref = serviceAncestor(ns, p.name);
      if (ref) out.set(ancestorKey(ref), ref);
    }
    return [...out.values()];
  }
}

export function compilePolicies(
  ctx: CompileContext,
  gateways: readonly CompiledGateway[],
  routes: CompiledRoutes,
  services: readonly ServiceIR[],
): CompiledPolicies {
  const index = new AttachmentIndex(ctx, gateways, routes, services);
  const effective: Record<string, EffectivePolicyIR> = {};
  const states = [
    ...compileRouteLevelKind(ctx, index, 'SecurityPolicy', effective),
    ...compileRouteLevelKind(ctx, index, 'BackendTrafficPolicy', effective),
    ...compileClientTrafficPolicies(ctx, index, effective),
    ...compileRouteLevelKind(ctx, index, 'TokenIntrospectionPolicy', effective),
  ];
  const policies: PolicyIR[] = states
    .filter((s) => !s.invalid && s.won.length > 0 && s.status.anyAccepted())
    .sort(
      (a, b) =>
        KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) ||
        (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    )
    .map((s) => ({
      kind: s.kind,
      namespace: s.resource.metadata.namespace,
      name: s.resource.metadata.name,
      ...(s.resource.metadata.creationTimestamp
        ? { creationTimestamp: s.resource.metadata.creationTimestamp }
        : {}),
      targets: [...s.won].sort(),
      spec: { ...(s.mergeType ? { mergeType: s.mergeType } : {}), ...s.spec },
    }));
  const sortedEffective = Object.fromEntries(
    Object.entries(effective).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return { policies, effectivePolicies: sortedEffective };
}

// --- targets ---

/**
 * The policy's targets as upstream resolves them (policy_helpers.go): targets found by
 * targetSelectors first, ordered by the target's creationTimestamp, then targetRef/targetRefs
 * not already found. Selectors only look in the policy's own namespace.
 */
function resolveTargets(ctx: CompileContext, policy: Resource<TargetedSpec>): PolicyTarget[] {
  const ns = policy.metadata.namespace;
  const selected: Resource[] = [];
  for (const sel of policy.spec.targetSelectors ?? []) {
    if (sel.group !== GATEWAY_GROUP || (sel.kind !== 'Gateway' && sel.kind !== 'HTTPRoute'))
      continue;
    for (const r of ctx.list(sel.kind)) {
      if (r.metadata.namespace !== ns) continue;
      const selector = {
        ...(sel.matchLabels ? { matchLabels: sel.matchLabels } : {}),
        ...(sel.matchExpressions ? { matchExpressions: sel.matchExpressions } : {}),
      };
      if (matchesLabelSelector(selector, r.metadata.labels ?? {}) && !selected.includes(r))
        selected.push(r);
    }
  }
  selected.sort(comparePolicyPrecedence);
  const out: PolicyTarget[] = selected.map((r) => ({
    group: GATEWAY_GROUP,
    kind: r.kind,
    name: r.metadata.name,
  }));
  const seen = new Set(out.map(targetKey));
  const refs = [
    ...(policy.spec.targetRef ? [policy.spec.targetRef] : []),
    ...(policy.spec.targetRefs ?? []),
  ];
  for (const ref of refs) {
    const t: PolicyTarget = {
      group: normalizeCoreGroup(ref.group),
      kind: ref.kind,
      name: ref.name,
      ...(ref.sectionName !== undefined ? { sectionName: ref.sectionName } : {}),
    };
    if (seen.has(targetKey(t))) continue;
    seen.add(targetKey(t));
    out.push(t);
  }
  return out;
}

function targetKey(t: PolicyTarget): string {
  return `${t.group}/${t.kind}/${t.name}/${t.sectionName ?? ''}`;
}

function levelOf(t: PolicyTarget): Level | undefined {
  if (t.group === GATEWAY_GROUP && t.kind === 'Gateway')
    return t.sectionName === undefined ? 'gateway' : 'listener';
  if (t.group === GATEWAY_GROUP && t.kind === 'HTTPRoute')
    return t.sectionName === undefined ? 'route' : 'rule';
  // meshgate's extension: a BackendTrafficPolicy on a Service shapes mesh traffic to it.
  if (t.group === '' && t.kind === 'Service') return 'service';
  return undefined;
}

function targetId(level: Level, ns: string, t: PolicyTarget): string {
  switch (level) {
    case 'gateway':
      return `gateway/${ns}/${t.name}`;
    case 'listener':
      return `listener/${ns}/${t.name}/${t.sectionName ?? ''}`;
    case 'route':
      return `httproute/${ns}/${t.name}`;
    case 'rule':
      return `rule/${ns}/${t.name}/${t.sectionName ?? ''}`;
    case 'service':
      return `service/${ns}/${t.name}`;
  }
}

function conflictMessage(kind: PolicyKind, level: Level, ns: string, t: PolicyTarget): string {
  const tail = `another ${kind} has already attached to it`;
  switch (level) {
    case 'gateway':
      return `Unable to target Gateway ${t.name}, ${tail}`;
    case 'listener':
      return kind === 'ClientTrafficPolicy'
        ? `Unable to target section of ${t.name}, ${tail}`
        : `Unable to target Listener ${ns}/${t.name}/${t.sectionName ?? ''}, ${tail}`;
    case 'route':
      return `Unable to target HTTPRoute ${t.name}, ${tail}`;
    case 'rule':
      return `Unable to target RouteRule ${t.name}/${t.sectionName ?? ''}, ${tail}`;
    case 'service':
      return `Unable to target Service ${t.name}, ${tail}`;
  }
}

// --- preparing one policy ---

function prepare(ctx: CompileContext, kind: PolicyKind, resource: Resource<TargetedSpec>) {
  const ns = resource.metadata.namespace;
  const spec = normalizeRefs(
    kind,
    Object.fromEntries(
      Object.entries(structuredClone(resource.spec) as Record<string, unknown>).filter(
        ([k]) => !TARGETING_FIELDS.has(k),
      ),
    ),
    ns,
  );
  const problems: string[] = resource.unsupported
    .filter((u) => u.effect === 'reject')
    .map((u) => `${u.path}: ${u.message}`);
  if (kind === 'SecurityPolicy')
    problems.push(...checkSecurityPolicy(ctx, resource as Resource<SecurityPolicySpec>));
  if (kind === 'BackendTrafficPolicy')
    problems.push(...checkBackendTrafficPolicy(resource.spec as BackendTrafficPolicySpec));
  if (kind === 'TokenIntrospectionPolicy')
    problems.push(
      ...checkTokenIntrospectionPolicy(ctx, resource as Resource<TokenIntrospectionPolicySpec>),
    );
  const ignored = resource.unsupported.filter((u) => u.effect === 'ignore');
  // An ignored field has no effect, so it is not handed to the data plane either.
  for (const u of ignored) deletePath(spec, u.path);
  const state: PolicyState = {
    kind,
    resource,
    key: `${ns}/${resource.metadata.name}`,
    spec,
    acceptedMessage:
      ignored.length > 0
        ? `Policy has been accepted; ignored: ${ignored.map((u) => `${u.path} (${u.message})`).join('; ')}`
        : ACCEPTED_MESSAGE,
    status: new AncestorStatuses(ctx.controllerName, ctx.conditions(resource)),
    won: [],
    ancestorsByTarget: new Map(),
  };
  const mergeType = resource.spec.mergeType;
  if (mergeType === 'StrategicMerge' || mergeType === 'JSONMerge') state.mergeType = mergeType;
  if (problems.length > 0)
    state.invalid = `${problems.join('; ')}; until this is fixed, the requests the policy covers are answered with 500`;
  return state;
}

/** Deletes "spec.a.b[0].c" from a spec object (the "spec." prefix is the spec itself). */
function deletePath(spec: Record<string, unknown>, path: string): void {
  const segments = path
    .replace(/^spec\./, '')
    .split(/\.|(?=\[)/)
    .map((s) => (s.startsWith('[') ? Number(s.slice(1, -1)) : s));
  let node: unknown = spec;
  for (const seg of segments.slice(0, -1)) {
    if (!node || typeof node !== 'object') return;
    node = (node as Record<string | number, unknown>)[seg];
  }
  const last = segments[segments.length - 1];
  if (node && typeof node === 'object' && last !== undefined)
    delete (node as Record<string | number, unknown>)[last];
}

/** Secret and backend references get their namespace written out, so a merged spec stays exact. */
function normalizeRefs(
  kind: PolicyKind,
  spec: Record<string, unknown>,
  ns: string,
): Record<string, unknown> {
  const fill = (ref: { namespace?: string | undefined } | undefined) => {
    if (ref && ref.namespace === undefined) ref.namespace = ns;
  };
  if (kind === 'TokenIntrospectionPolicy')
    fill((spec as Partial<TokenIntrospectionPolicySpec>).clientSecretRef);
  if (kind !== 'SecurityPolicy') return spec;
  const s = spec as Partial<SecurityPolicySpec>;
  s.apiKeyAuth?.credentialRefs.forEach(fill);
  fill(s.basicAuth?.users);
  fill(s.oidc?.clientSecret);
  fill(s.oidc?.clientIDRef);
  fill(s.oidc?.provider.backendRef);
  s.oidc?.provider.backendRefs?.forEach(fill);
  for (const p of s.jwt?.providers ?? []) {
    fill(p.remoteJWKS?.backendRef);
    p.remoteJWKS?.backendRefs?.forEach(fill);
  }
  return spec;
}

// --- validation zod cannot do ---

type RefLike = {
  group?: string | undefined;
  kind?: string | undefined;
  name: string;
  namespace?: string | undefined;
};

function checkSecretRef(
  ctx: CompileContext,
  policy: Resource,
  ref: RefLike,
  path: string,
  requiredKey?: string,
): string | undefined {
  if (normalizeCoreGroup(ref.group) !== '' || (ref.kind ?? 'Secret') !== 'Secret')
    return `${path}: ${ref.kind} ${ref.name}: only core Secrets can be referenced`;
  const ns = ref.namespace ?? policy.metadata.namespace;
  const label = `Secret ${ns}/${ref.name}`;
  const group = splitApiVersion(policy.apiVersion).group;
  if (
    !ctx.referenceAllowed(
      { group, kind: policy.kind, namespace: policy.metadata.namespace },
      { group: '', kind: 'Secret', namespace: ns, name: ref.name },
    )
  )
    return `${path}: ${label} is in another namespace and no ReferenceGrant allows it`;
  const secret = ctx.get<SecretBody>('Secret', ns, ref.name);
  if (!secret) return `${path}: ${label} not found`;
  if (requiredKey !== undefined && secretValue(secret, requiredKey) === undefined)
    return `${path}: ${label} has no ${requiredKey} key`;
  if (
    requiredKey === undefined &&
    Object.keys({ ...secret.spec.data, ...secret.spec.stringData }).length === 0
  )
    return `${path}: ${label} is empty`;
  return undefined;
}

function checkServiceRef(
  ctx: CompileContext,
  policy: Resource,
  ref: RefLike & { port?: number | undefined },
  path: string,
): string | undefined {
  if (normalizeCoreGroup(ref.group) !== '' || (ref.kind ?? 'Service') !== 'Service')
    return `${path}: ${ref.kind} ${ref.name}: only core Services are supported as backends`;
  const ns = ref.namespace ?? policy.metadata.namespace;
  if (
    !ctx.referenceAllowed(
      { group: ENVOY_GATEWAY_GROUP, kind: policy.kind, namespace: policy.metadata.namespace },
      { group: '', kind: 'Service', namespace: ns, name: ref.name },
    )
  )
    return `${path}: Service ${ns}/${ref.name} is in another namespace and no ReferenceGrant allows it`;
  const svc = ctx.get<ServiceSpec>('Service', ns, ref.name);
  if (!svc) return `${path}: Service ${ns}/${ref.name} not found`;
  if (ref.port === undefined) return `${path}: port is required for a Service backend`;
  if (!(svc.spec.ports ?? []).some((p) => p.port === ref.port))
    return `${path}: Service ${ns}/${ref.name} has no port ${ref.port}`;
  return undefined;
}

function checkHttpUrl(value: string, path: string, httpsOnly = false): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${path}: "${value}" is not an absolute URL`;
  }
  if (httpsOnly ? url.protocol !== 'https:' : url.protocol !== 'http:' && url.protocol !== 'https:')
    return `${path}: "${value}" must be an ${httpsOnly ? 'https' : 'http(s)'} URL`;
  return undefined;
}

function checkSecurityPolicy(ctx: CompileContext, p: Resource<SecurityPolicySpec>): string[] {
  const s = p.spec;
  const out: (string | undefined)[] = [];
  s.apiKeyAuth?.credentialRefs.forEach((ref, i) =>
    out.push(checkSecretRef(ctx, p, ref, `spec.apiKeyAuth.credentialRefs[${i}]`)),
  );
  if (s.oidc) {
    out.push(
      checkSecretRef(ctx, p, s.oidc.clientSecret, 'spec.oidc.clientSecret', 'client-secret'),
    );
    if (s.oidc.clientIDRef)
      out.push(checkSecretRef(ctx, p, s.oidc.clientIDRef, 'spec.oidc.clientIDRef', 'client-id'));
    out.push(checkHttpUrl(s.oidc.provider.issuer, 'spec.oidc.provider.issuer', true));
    const refs = [
      ...(s.oidc.provider.backendRef ? [s.oidc.provider.backendRef] : []),
      ...(s.oidc.provider.backendRefs ?? []),
    ];
    refs.forEach((r, i) =>
      out.push(checkServiceRef(ctx, p, r, `spec.oidc.provider.backendRefs[${i}]`)),
    );
  }
  s.jwt?.providers.forEach((provider, i) => {
    const where = `spec.jwt.providers[${i}]`;
    const remote = provider.remoteJWKS;
    if (remote) {
      out.push(checkHttpUrl(remote.uri, `${where}.remoteJWKS.uri`));
      const refs = [
        ...(remote.backendRef ? [remote.backendRef] : []),
        ...(remote.backendRefs ?? []),
      ];
      refs.forEach((r, j) =>
        out.push(checkServiceRef(ctx, p, r, `${where}.remoteJWKS.backendRefs[${j}]`)),
      );
    }
    if (provider.localJWKS?.inline !== undefined)
      out.push(checkJwks(provider.localJWKS.inline, `${where}.localJWKS.inline`));
  });
  return out.filter((x): x is string => x !== undefined);
}

/** A JWKS document: JSON with a `keys` list (RFC 7517 section 5). */
export function checkJwks(text: string, path: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return `${path}: not JSON (${(err as Error).message})`;
  }
  if (!doc || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys))
    return `${path}: a JWKS must be an object with a "keys" list`;
  return undefined;
}

function checkTokenIntrospectionPolicy(
  ctx: CompileContext,
  p: Resource<TokenIntrospectionPolicySpec>,
): string[] {
  return [
    checkSecretRef(ctx, p, p.spec.clientSecretRef, 'spec.clientSecretRef', 'client-secret'),
  ].filter((x): x is string => x !== undefined);
}

function checkBackendTrafficPolicy(s: BackendTrafficPolicySpec): string[] {
  const out: string[] = [];
  const local = s.rateLimit?.local?.rules ?? [];
  // The unconditional rule is the route's default bucket; upstream allows one.
  if (local.filter((r) => (r.clientSelectors?.length ?? 0) === 0).length > 1)
    out.push(
      'spec.rateLimit.local.rules: at most one rule may leave out clientSelectors (it is the default limit)',
    );
  local.forEach((r, i) => {
    if (r.cost?.response !== undefined)
      out.push(
        `spec.rateLimit.local.rules[${i}].cost.response: response cost is not supported for local rate limits`,
      );
  });
  return out;
}

/** What only the merged result can get wrong: an authorization rule naming a JWT provider that the merge dropped. */
function checkMergedSecuritySpec(spec: Record<string, unknown>): string[] {
  const s = spec as Partial<SecurityPolicySpec>;
  const providers = new Set(s.jwt?.providers.map((p) => p.name) ?? []);
  const out: string[] = [];
  s.authorization?.rules?.forEach((r, i) => {
    const jwt = r.principal.jwt;
    if (jwt && !providers.has(jwt.provider))
      out.push(
        `spec.authorization.rules[${i}].principal.jwt.provider: no JWT provider "${jwt.provider}" in the merged jwt.providers`,
      );
  });
  return out;
}

// --- SecurityPolicy and BackendTrafficPolicy ---

function compileRouteLevelKind(
  ctx: CompileContext,
  index: AttachmentIndex,
  kind: RouteLevelKind,
  effective: Record<string, EffectivePolicyIR>,
): PolicyState[] {
  const resources = ctx.list<TargetedSpec>(kind).sort(comparePolicyPrecedence);
  const states = resources.map((r) => prepare(ctx, kind, r));
  const targets = new Map(states.map((s) => [s, resolveTargets(ctx, s.resource)]));
  const claims = new Map<string, PolicyState>();

  for (const level of LEVEL_ORDER)
    for (const state of states)
      for (const t of targets.get(state) ?? [])
        if (levelOf(t) === level) claimTarget(ctx, index, state, level, t, claims);

  // Effective policy per (attachment, rule).
  const registry = new EffectiveRegistry(kind, effective);
  const usage = new Usage();
  const slot = RULE_SLOT[kind];
  for (const site of index.sites) {
    const routeIR = index.routeIRs.get(site.route);
    if (!routeIR) continue;
    const routePolicy = claims.get(`httproute/${site.route}`);
    let parentId: string | undefined;
    if (site.kind === 'listener') {
      const gw = `${site.gateway.ir.namespace}/${site.gateway.ir.name}`;
      const listenerId = `listener/${gw}/${site.listener.spec.name}`;
      parentId = claims.has(listenerId) ? listenerId : `gateway/${gw}`;
    } else parentId = `service/${site.service}`;
    const parent = claims.get(parentId);
    site.attachment.rules.forEach((rulePolicies, i) => {
      const rule = routeIR.rules[i];
      const rulePolicy =
        rule?.name !== undefined ? claims.get(`rule/${site.route}/${rule.name}`) : undefined;
      if (rulePolicy && routePolicy && rule?.name !== undefined)
        usage.add(usage.overriddenRules, routePolicy, `httproute/${site.route}`, rule.name);
      const specific = rulePolicy ?? routePolicy;
      let id: string | undefined;
      if (specific && specific.mergeType && parent) {
        id = registry.merged(specific, parent);
        // A merge that cannot be applied is reported like upstream: Accepted=False on the
        // route policy, no Merged condition, and the parent counts as overridden there.
        const problem = registry.problems.get(id);
        if (problem || specific.invalid) {
          if (problem) usage.addMergeProblem(specific, site, problem);
          usage.add(usage.overriddenRoutes, parent, parentId, site.route);
        } else {
          usage.add(usage.mergedRoutes, parent, parentId, site.route);
          usage.addMergedWith(specific, site, parent);
        }
      } else if (specific) {
        id = registry.single(specific);
        if (parent) usage.add(usage.overriddenRoutes, parent, parentId, site.route);
      } else if (parent) id = registry.single(parent);
      if (id) rulePolicies[slot] = id;
    });
  }
  if (kind === 'BackendTrafficPolicy')
    for (const svc of index.services) {
      const p = claims.get(`service/${svc.namespace}/${svc.name}`);
      if (p) svc.backendTrafficPolicy = registry.single(p);
    }

  writeOverriddenAndMerged(kind, states, claims, usage);
  for (const s of states) ctx.setStatus(s.resource, s.status.toStatus());
  return states;
}

function claimTarget(
  ctx: CompileContext,
  index: AttachmentIndex,
  state: PolicyState,
  level: Level,
  t: PolicyTarget,
  claims: Map<string, PolicyState>,
): void {
  const ns = state.resource.metadata.namespace;
  let ancestors: ParentRefStatus[];
  let missingSection: string | undefined;
  switch (level) {
    case 'gateway':
    case 'listener': {
      const gw = index.gateways.get(`${ns}/${t.name}`);
      if (!gw) return;
      ancestors = [gatewayAncestor(ns, t.name, t.sectionName)];
      if (t.sectionName !== undefined && !gw.listeners.some((l) => l.spec.name === t.sectionName))
        missingSection = `No section name ${t.sectionName} found for Gateway ${ns}/${t.name}`;
      break;
    }
    case 'route':
    case 'rule': {
      const route = ctx.get<HTTPRouteSpec>('HTTPRoute', ns, t.name);
      if (!route) return;
      ancestors = index.routeAncestors(route);
      if (ancestors.length === 0) return;
      if (t.sectionName !== undefined && !route.spec.rules.some((r) => r.name === t.sectionName))
        missingSection = `No section name ${t.sectionName} found for HTTPRoute ${ns}/${t.name}`;
      break;
    }
    case 'service': {
      if (!ctx.get('Service', ns, t.name)) return;
      ancestors = [serviceAncestor(ns, t.name)];
      if (t.sectionName !== undefined)
        missingSection = `sectionName ${t.sectionName}: a Service target takes no sectionName in meshgate`;
      break;
    }
  }
  if (missingSection !== undefined) {
    for (const a of ancestors)
      state.status.set(a, 'Accepted', false, 'TargetNotFound', missingSection);
    return;
  }
  const id = targetId(level, ns, t);
  const holder = claims.get(id);
  if (holder === state) return;
  if (holder) {
    const message = conflictMessage(state.kind, level, ns, t);
    for (const a of ancestors) state.status.set(a, 'Accepted', false, 'Conflicted', message);
    return;
  }
  claims.set(id, state);
  state.won.push(id);
  state.ancestorsByTarget.set(id, ancestors);
  for (const a of ancestors)
    if (state.invalid) state.status.set(a, 'Accepted', false, 'Invalid', state.invalid);
    else state.status.acceptIfUnset(a, state.acceptedMessage);
}

/** Effective policies by id; identical combinations share one entry. */
class EffectiveRegistry {
  /** Problems found only in a merged result, by id. */
  readonly problems = new Map<string, string>();

  constructor(
    private readonly kind: PolicyKind,
    private readonly out: Record<string, EffectivePolicyIR>,
  ) {}

  single(p: PolicyState): string {
    const id = `${this.kind}/${p.key}`;
    if (!this.out[id])
      this.out[id] = {
        kind: this.kind,
        sources: [p.key],
        spec: p.invalid ? failClosed(`${p.key}: ${p.invalid}`) : p.spec,
      };
    return id;
  }

  merged(child: PolicyState, parent: PolicyState): string {
    const id = `${this.kind}/${child.key}+${parent.key}`;
    if (this.out[id]) return id;
    let spec: unknown;
    if (child.invalid) spec = failClosed(`${child.key}: ${child.invalid}`);
    else if (parent.invalid) {
      const message = `merging with policy ${parent.key}, which cannot be applied: ${parent.invalid}`;
      this.problems.set(id, message);
      spec = failClosed(`${child.key}: ${message}`);
    } else {
      const merged = mergePolicySpecs(
        parent.spec,
        child.spec,
        child.mergeType ?? 'StrategicMerge',
      ) as Record<string, unknown>;
      const problems = this.kind === 'SecurityPolicy' ? checkMergedSecuritySpec(merged) : [];
      if (problems.length > 0) {
        const message = `merging with policy ${parent.key}: ${problems.join('; ')}`;
        this.problems.set(id, message);
        spec = failClosed(`${child.key}: ${message}`);
      } else spec = merged;
    }
    this.out[id] = { kind: this.kind, sources: [child.key, parent.key], spec };
    return id;
  }
}

function failClosed(message: string): FailClosedSpec {
  return { invalid: { reason: 'Invalid', message } };
}

/** What each policy ended up doing, for the Overridden and Merged conditions. */
class Usage {
  /** policy → its target id → routes ("ns/name") where a more specific policy replaced it. */
  readonly overriddenRoutes = new Map<PolicyState, Map<string, Set<string>>>();
  /** policy → its target id → routes that merged over it. */
  readonly mergedRoutes = new Map<PolicyState, Map<string, Set<string>>>();
  /** route-level policy → its target id → names of rules with their own policy. */
  readonly overriddenRules = new Map<PolicyState, Map<string, Set<string>>>();
  /** route/rule-level policy with mergeType → ancestor key → parents merged with there. */
  readonly mergedWith = new Map<PolicyState, Map<string, Set<string>>>();
  readonly mergeProblems = new Map<PolicyState, Map<string, string>>();

  add(
    map: Map<PolicyState, Map<string, Set<string>>>,
    p: PolicyState,
    target: string,
    item: string,
  ): void {
    let byTarget = map.get(p);
    if (!byTarget) map.set(p, (byTarget = new Map()));
    let items = byTarget.get(target);
    if (!items) byTarget.set(target, (items = new Set()));
    items.add(item);
  }

  addMergedWith(child: PolicyState, site: RouteAttachmentSite, parent: PolicyState): void {
    for (const a of siteAncestors(child, site))
      this.add(this.mergedWith, child, ancestorKey(a), parent.key);
  }

  addMergeProblem(child: PolicyState, site: RouteAttachmentSite, message: string): void {
    let m = this.mergeProblems.get(child);
    if (!m) this.mergeProblems.set(child, (m = new Map()));
    for (const a of siteAncestors(child, site)) m.set(ancestorKey(a), message);
  }
}

/** The ancestors of a route-level policy that stand for this attachment site. */
function siteAncestors(p: PolicyState, site: RouteAttachmentSite): ParentRefStatus[] {
  const all = [...p.ancestorsByTarget.values()].flat();
  return all.filter((a) =>
    site.kind === 'listener'
      ? a.kind === 'Gateway' &&
        a.namespace === site.gateway.ir.namespace &&
        a.name === site.gateway.ir.name &&
        (a.sectionName === undefined || a.sectionName === site.listener.spec.name)
      : a.kind === 'Service' && `${a.namespace}/${a.name}` === site.service,
  );
}

function writeOverriddenAndMerged(
  kind: PolicyKind,
  states: readonly PolicyState[],
  claims: Map<string, PolicyState>,
  usage: Usage,
): void {
  const plural = PLURAL[kind];
  for (const state of states) {
    if (state.invalid) continue;
    for (const [id, ancestors] of state.ancestorsByTarget) {
      const what: string[] = [];
      if (id.startsWith('gateway/')) {
        const prefix = `listener/${id.slice('gateway/'.length)}/`;
        const listeners = [...claims.keys()]
          .filter((k) => k.startsWith(prefix))
          .map((k) => k.slice(prefix.length));
        if (listeners.length > 0) what.push(`these listeners: ${goList(listeners)}`);
      }
      const routes = usage.overriddenRoutes.get(state)?.get(id);
      if (routes?.size) what.push(`these routes: ${goList(routes)}`);
      const rules = usage.overriddenRules.get(state)?.get(id);
      if (rules?.size) what.push(`these route rules: ${goList(rules)}`);
      const merged = usage.mergedRoutes.get(state)?.get(id);
      for (const a of ancestors) {
        if (merged?.size)
          state.status.set(
            a,
            'Merged',
            true,
            'Merged',
            `This policy is being merged by other ${plural} for these routes: ${goList(merged)}`,
          );
        if (what.length > 0)
          state.status.set(
            a,
            'Overridden',
            true,
            'Overridden',
            `This policy is being overridden by other ${plural} for ${what.join(' and ')}`,
          );
      }
    }
    const mergedWith = usage.mergedWith.get(state);
    const problems = usage.mergeProblems.get(state);
    for (const a of [...state.ancestorsByTarget.values()].flat()) {
      const k = ancestorKey(a);
      const problem = problems?.get(k);
      if (problem) state.status.set(a, 'Accepted', false, 'Invalid', problem);
      const parents = mergedWith?.get(k);
      if (parents?.size)
        state.status.set(
          a,
          'Merged',
          true,
          'Merged',
          `Merged with ${parents.size > 1 ? 'policies' : 'policy'} ${[...parents].sort().join(', ')}`,
        );
    }
  }
}

// --- ClientTrafficPolicy ---

function compileClientTrafficPolicies(
  ctx: CompileContext,
  index: AttachmentIndex,
  effective: Record<string, EffectivePolicyIR>,
): PolicyState[] {
  const kind = 'ClientTrafficPolicy';
  const resources = ctx
    .list<ClientTrafficPolicySpec & TargetedSpec>(kind)
    .sort(comparePolicyPrecedence);
  const states = resources.map((r) => prepare(ctx, kind, r));
  const claims = new Map<string, PolicyState>();
  /** Listener claims whose settings cannot be applied (a shared plain-HTTP port). */
  const blocked = new Set<string>();

  for (const level of ['listener', 'gateway'] as const)
    for (const state of states)
      for (const t of resolveTargets(ctx, state.resource)) {
        if (levelOf(t) !== level) continue;
        const ns = state.resource.metadata.namespace;
        const gw = index.gateways.get(`${ns}/${t.name}`);
        if (!gw) continue;
        const ancestor = gatewayAncestor(ns, t.name, t.sectionName);
        const listener = gw.listeners.find((l) => l.spec.name === t.sectionName);
        if (t.sectionName !== undefined && !listener) {
          state.status.set(
            ancestor,
            'Accepted',
            false,
            'TargetNotFound',
            `No section name ${t.sectionName} found for Gateway ${ns}/${t.name}`,
          );
          continue;
        }
        const id = targetId(level, ns, t);
        const holder = claims.get(id);
        if (holder === state) continue;
        if (holder) {
          state.status.set(
            ancestor,
            'Accepted',
            false,
            'Conflicted',
            conflictMessage(kind, level, ns, t),
          );
          continue;
        }
        claims.set(id, state);
        state.won.push(id);
        state.ancestorsByTarget.set(id, [ancestor]);
        // Plain-HTTP listeners on one port are served by one server: settings for one of them
        // would apply to its siblings too, so upstream refuses them.
        const siblings =
          listener && listener.spec.protocol === 'HTTP'
            ? gw.listeners.filter(
                (l) =>
                  l !== listener &&
                  l.spec.port === listener.spec.port &&
                  l.spec.protocol === 'HTTP',
              )
            : [];
        if (state.invalid) state.status.set(ancestor, 'Accepted', false, 'Invalid', state.invalid);
        else if (siblings.length > 0) {
          blocked.add(id);
          state.status.set(
            ancestor,
            'Accepted',
            false,
            'Invalid',
            `ClientTrafficPolicy is being applied to multiple http (non https) listeners (${[listener, ...siblings].map((l) => `${ns}/${t.name}/${l?.spec.name}`).join(', ')}) on the same port, which is not allowed`,
          );
        } else state.status.acceptIfUnset(ancestor, state.acceptedMessage);
        if (level === 'gateway') {
          const prefix = `listener/${ns}/${t.name}/`;
          const sections = [...claims.keys()]
            .filter((k) => k.startsWith(prefix))
            .map((k) => k.slice(prefix.length));
          if (sections.length > 0 && !state.invalid)
            state.status.set(
              ancestor,
              'Overridden',
              true,
              'Overridden',
              `There are existing ClientTrafficPolicies that are overriding these sections ${goList(sections)}`,
            );
        }
      }

  const registry = new EffectiveRegistry(kind, effective);
  for (const gw of index.gateways.values()) {
    const gwKey = `${gw.ir.namespace}/${gw.ir.name}`;
    const gwPolicy = claims.get(`gateway/${gwKey}`);
    if (gwPolicy) gw.ir.clientTrafficPolicy = registry.single(gwPolicy);
    for (const l of gw.listeners) {
      const id = `listener/${gwKey}/${l.spec.name}`;
      const own = claims.get(id);
      // A listener-level policy refused for a shared plain-HTTP port leaves the listener with the
      // gateway-level one, which upstream applies to the one server behind that port anyway.
      const chosen = own && !blocked.has(id) ? own : gwPolicy;
      if (chosen) l.ir.clientTrafficPolicy = registry.single(chosen);
    }
  }
  for (const s of states) ctx.setStatus(s.resource, s.status.toStatus());
  return states;
}
