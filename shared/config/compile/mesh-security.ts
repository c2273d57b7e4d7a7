// Istio security policies (PeerAuthentication, AuthorizationPolicy, RequestAuthentication) →
// Snapshot.meshSecurity. Which workloads a policy selects is decided per workload by the
// sidecar's view; here each policy is checked, normalized (defaults written out) and given its
// scope: mesh (root namespace, no selector or targetRefs), namespace (no selector) or workload.
//
// Istio writes no status conditions on these kinds. meshgate gives each one a status of the
// shape `{ conditions: [Accepted, ResolvedRefs?] }` so that `validate` can show what was left
// out and why: Accepted=False means the policy is not in the snapshot at all.

import type { Resource } from '../resource.ts';
import { GATEWAY_GROUP } from '../schemas/gateway-api.ts';
import type {
  AuthorizationPolicySpec,
  IstioPolicyTargetReference,
  JWTRule,
  PeerAuthenticationSpec,
  RequestAuthenticationSpec,
  WorkloadSelector,
} from '../schemas/istio-security.ts';
import type { IstioPolicyIR, MeshSecurityIR, PolicyScope } from '../snapshot.ts';
import type { Condition } from './conditions.ts';
import { normalizeCoreGroup, type CompileContext } from './context.ts';
import type { CompiledGateway } from './gateways.ts';
import { checkJwks, comparePolicyPrecedence } from './policies.ts';

interface Refusal {
  reason: 'UnsupportedValue' | 'Invalid';
  message: string;
}

interface Checked {
  refusals: Refusal[];
  /** Targets named by targetRef/targetRefs, as "Service/ns/name" or "Gateway/ns/name". */
  targets: string[];
  /** Targets that do not exist (yet): the policy is kept and applies to nothing there. */
  missing: string[];
}

export function compileMeshSecurity(
  ctx: CompileContext,
  gateways: readonly CompiledGateway[],
): MeshSecurityIR {
  const ourGateways = new Set(gateways.map((g) => `${g.ir.namespace}/${g.ir.name}`));
  return {
    peerAuthentications: compileKind<PeerAuthenticationSpec>(
      ctx,
      'PeerAuthentication',
      ourGateways,
      () => [],
      (s) => ({
        mtls: { mode: s.mtls?.mode ?? 'UNSET' },
        ...(s.portLevelMtls ? { portLevelMtls: s.portLevelMtls } : {}),
      }),
    ),
    authorizationPolicies: compileKind<AuthorizationPolicySpec>(
      ctx,
      'AuthorizationPolicy',
      ourGateways,
      checkAuthorizationPolicy,
      (s) => ({ action: s.action, rules: s.rules ?? [] }),
    ),
    requestAuthentications: compileKind<RequestAuthenticationSpec>(
      ctx,
      'RequestAuthentication',
      ourGateways,
      checkRequestAuthentication,
      (s) => ({ jwtRules: (s.jwtRules ?? []).map(normalizeJwtRule) }),
    ),
  };
}

type SelectableSpec = {
  selector?: WorkloadSelector | undefined;
  targetRef?: IstioPolicyTargetReference | undefined;
  targetRefs?: IstioPolicyTargetReference[] | undefined;
};

function compileKind<Spec extends SelectableSpec>(
  ctx: CompileContext,
  kind: string,
  ourGateways: ReadonlySet<string>,
  check: (r: Resource<Spec>) => Refusal[],
  normalize: (spec: Spec) => Record<string, unknown>,
): IstioPolicyIR[] {
  const out: IstioPolicyIR[] = [];
  // Oldest first: where Istio lets several policies compete (PeerAuthentication at one scope),
  // the oldest wins, so consumers can take the first match.
  for (const r of ctx.list<Spec>(kind).sort(comparePolicyPrecedence)) {
    const c = ctx.conditions(r);
    const checked = checkTargets(ctx, r, ourGateways);
    const refusals = [
      ...r.unsupported
        .filter((u) => u.effect === 'reject' && !isCoveredByAction(r, u.path))
        .map((u): Refusal => ({ reason: 'UnsupportedValue', message: `${u.path}: ${u.message}` })),
      ...checked.refusals,
      ...check(r),
    ];
    const conditions: Condition[] = [];
    if (refusals.length > 0) {
      const first = refusals.find((x) => x.reason === 'UnsupportedValue') ?? refusals[0];
      conditions.push(
        c.make(
          'Accepted',
          false,
          first?.reason ?? 'Invalid',
          `${refusals.map((x) => x.message).join('; ')}; the policy is not applied`,
        ),
      );
      ctx.setStatus(r, { conditions });
      continue;
    }
    const labels = r.spec.selector?.matchLabels;
    const selector = labels && Object.keys(labels).length > 0 ? labels : undefined;
    const scope: PolicyScope =
      selector || checked.targets.length > 0
        ? 'workload'
        : r.metadata.namespace === ctx.rootNamespace
          ? 'mesh'
          : 'namespace';
    const ignored = r.unsupported.filter((u) => u.effect === 'ignore');
    conditions.push(
      c.make(
        'Accepted',
        true,
        'Accepted',
        `${describeScope(ctx, r, scope, selector, checked.targets)}${
          ignored.length > 0
            ? `; ignored: ${ignored.map((u) => `${u.path} (${u.message})`).join('; ')}`
            : ''
        }`,
      ),
    );
    if (checked.targets.length > 0)
      conditions.push(
        checked.missing.length > 0
          ? c.make(
              'ResolvedRefs',
              false,
              'TargetNotFound',
              `${checked.missing.join(', ')} not found; the policy applies to nothing there`,
            )
          : c.make('ResolvedRefs', true, 'ResolvedRefs', 'all targets exist'),
      );
    ctx.setStatus(r, { conditions });
    out.push({
      namespace: r.metadata.namespace,
      name: r.metadata.name,
      ...(r.metadata.creationTimestamp ? { creationTimestamp: r.metadata.creationTimestamp } : {}),
      scope,
      ...(selector ? { selector } : {}),
      ...(checked.targets.length > 0 ? { targets: checked.targets } : {}),
      spec: normalize(r.spec),
    });
  }
  return out;
}

/** `spec.provider` is only valid with action CUSTOM, whose refusal already says it all. */
function isCoveredByAction(r: Resource<SelectableSpec>, path: string): boolean {
  return (
    r.kind === 'AuthorizationPolicy' &&
    path === 'spec.provider' &&
    (r.spec as AuthorizationPolicySpec).action === 'CUSTOM'
  );
}

function describeScope(
  ctx: CompileContext,
  r: Resource,
  scope: PolicyScope,
  selector: Record<string, string> | undefined,
  targets: readonly string[],
): string {
  switch (scope) {
    case 'mesh':
      return `applies mesh-wide (root namespace ${ctx.rootNamespace})`;
    case 'namespace':
      return `applies to every workload in namespace ${r.metadata.namespace}`;
    case 'workload':
      return targets.length > 0
        ? `applies to ${targets.join(', ')}`
        : `applies to workloads selected by ${Object.entries(selector ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(',')}`;
  }
}

function checkTargets(
  ctx: CompileContext,
  r: Resource<SelectableSpec>,
  ourGateways: ReadonlySet<string>,
): Checked {
  const out: Checked = { refusals: [], targets: [], missing: [] };
  const refs = [
    ...(r.spec.targetRef ? [{ ref: r.spec.targetRef, path: 'spec.targetRef' }] : []),
    ...(r.spec.targetRefs ?? []).map((ref, i) => ({ ref, path: `spec.targetRefs[${i}]` })),
  ];
  const ns = r.metadata.namespace;
  for (const { ref, path } of refs) {
    const group = normalizeCoreGroup(ref.group);
    let target: string;
    let exists: boolean;
    if (group === '' && ref.kind === 'Service') {
      target = `Service/${ns}/${ref.name}`;
      exists = ctx.get('Service', ns, ref.name) !== undefined;
    } else if (group === GATEWAY_GROUP && ref.kind === 'Gateway') {
      target = `Gateway/${ns}/${ref.name}`;
      exists = ourGateways.has(`${ns}/${ref.name}`);
    } else {
      out.refusals.push({
        reason: 'UnsupportedValue',
        message: `${path}: ${group}/${ref.kind} targets are not supported; meshgate applies policies to Services and Gateways`,
      });
      continue;
    }
    if (!out.targets.includes(target)) out.targets.push(target);
    if (!exists) out.missing.push(target);
  }
  return out;
}

// --- AuthorizationPolicy ---

/**
 * Condition keys Istio knows (pkg/config/security/security.go ValidateAttribute, plus
 * source.serviceAccount and source.trustDomain, which newer Istio documents and the conformance
 * suite uses).
 */
const PLAIN_ATTRIBUTES = new Set([
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'source.trustDomain',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'connection.sni',
]);
const IP_ATTRIBUTES = new Set(['source.ip', 'remote.ip', 'destination.ip']);

function checkAuthorizationPolicy(r: Resource<AuthorizationPolicySpec>): Refusal[] {
  const out: Refusal[] = [];
  const action = r.spec.action;
  if (action === 'CUSTOM')
    out.push({
      reason: 'UnsupportedValue',
      message:
        'spec.action: CUSTOM (an external authorizer from MeshConfig) is not available in meshgate',
    });
  if (action === 'AUDIT')
    out.push({
      reason: 'UnsupportedValue',
      message:
        'spec.action: AUDIT (audit logging through an Istio telemetry provider) is not available in meshgate',
    });
  (r.spec.rules ?? []).forEach((rule, i) => {
    rule.to?.forEach((to, j) => {
      for (const field of ['paths', 'notPaths'] as const)
        for (const p of to.operation[field] ?? [])
          if (isUnsupportedPathTemplate(p))
            out.push({
              reason: 'Invalid',
              message: `spec.rules[${i}].to[${j}].operation.${field}: "${p}" is an invalid or unsupported path template`,
            });
    });
    rule.when?.forEach((cond, j) => {
      const problem = checkConditionKey(cond.key, [
        ...(cond.values ?? []),
        ...(cond.notValues ?? []),
      ]);
      if (problem)
        out.push({ ...problem, message: `spec.rules[${i}].when[${j}]: ${problem.message}` });
    });
  });
  return out;
}

function checkConditionKey(key: string, values: readonly string[]): Refusal | undefined {
  const invalid = (message: string): Refusal => ({ reason: 'Invalid', message });
  if (values.some((v) => v === '')) return invalid(`empty value not allowed for ${key}`);
  const mapKey = (prefix: string) =>
    key.startsWith(`${prefix}[`) && key.endsWith(']') && key.length > prefix.length + 2;
  if (key.startsWith('request.headers'))
    return mapKey('request.headers')
      ? undefined
      : invalid(`bad key (${key}): should have format a[b]`);
  if (key.startsWith('request.auth.claims'))
    return mapKey('request.auth.claims')
      ? undefined
      : invalid(`bad key (${key}): should have format a[b]`);
  if (PLAIN_ATTRIBUTES.has(key)) return undefined;
  if (IP_ATTRIBUTES.has(key)) {
    const bad = values.filter((v) => !isIpOrCidrStrict(v));
    return bad.length > 0 ? invalid(`${key}: bad IP address or CIDR ${bad.join(', ')}`) : undefined;
  }
  if (key === 'destination.port') {
    const bad = values.filter((v) => !/^[0-9]+$/.test(v) || Number(v) > 65535);
    return bad.length > 0 ? invalid(`${key}: bad port ${bad.join(', ')}`) : undefined;
  }
  if (key.startsWith('experimental.envoy.filters.'))
    return {
      reason: 'UnsupportedValue',
      message: `${key}: Envoy filter metadata does not exist in meshgate`,
    };
  if (key === 'destination.namespace')
    return invalid(`attribute ${key} is replaced by the metadata.namespace`);
  if (key.startsWith('destination.labels'))
    return invalid(`attribute ${key} is replaced by the workload selector`);
  if (key === 'destination.name' || key === 'destination.user')
    return invalid(`deprecated attribute ${key}: only supported in v1alpha1`);
  return invalid(`unknown attribute: ${key}`);
}

function isIpOrCidrStrict(v: string): boolean {
  const [addr, bits, extra] = v.split('/');
  if (extra !== undefined || addr === undefined) return false;
  const v4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(addr);
  const v6 = !v4 && addr.includes(':') && /^[0-9a-fA-F:.]+$/.test(addr);
  if (!v4 && !v6) return false;
  if (bits === undefined) return true;
  return /^[0-9]{1,3}$/.test(bits) && Number(bits) <= (v4 ? 32 : 128);
}

/**
 * Istio's path templates: `{*}` and `{**}` only; named variables, `{}` and bare `*` segments next
 * to a template are refused (security.go CheckValidPathTemplate).
 */
function isUnsupportedPathTemplate(path: string): boolean {
  if (!path.includes('{*}') && !path.includes('{**}')) return false;
  return /\/\{\w+=\*[*]?\}|\{\w*\}|\/\*[*]?|\*[*]?\//.test(path);
}

// --- RequestAuthentication ---

function checkRequestAuthentication(r: Resource<RequestAuthenticationSpec>): Refusal[] {
  const out: Refusal[] = [];
  (r.spec.jwtRules ?? []).forEach((rule, i) => {
    const where = `spec.jwtRules[${i}]`;
    // Istio's ParseJwksURI: an absolute http or https URL.
    if (rule.jwksUri !== undefined) {
      let ok: boolean;
      try {
        const u = new URL(rule.jwksUri);
        ok = u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        ok = false;
      }
      if (!ok)
        out.push({
          reason: 'Invalid',
          message: `${where}.jwksUri: "${rule.jwksUri}" is not an http(s) URL`,
        });
    }
    if (rule.jwks !== undefined) {
      const problem = checkJwks(rule.jwks, `${where}.jwks`);
      if (problem) out.push({ reason: 'Invalid', message: problem });
    }
  });
  return out;
}

/** Istio's default token locations, written out: `Authorization: Bearer` and `?access_token=`. */
function normalizeJwtRule(rule: JWTRule): JWTRule {
  if (rule.fromHeaders || rule.fromParams || rule.fromCookies) return rule;
  return {
    ...rule,
    fromHeaders: [{ name: 'Authorization', prefix: 'Bearer ' }],
    fromParams: ['access_token'],
  };
}
