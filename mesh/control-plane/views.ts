// The slice of the snapshot one proxy needs (DESIGN: "view: the slice one proxy needs"). A view is
// cut from the compiled snapshot and the registry, and its version is the hash of its content, so
// a change that does not touch a proxy's view gives the same version and is not pushed to it.
//
// - sidecar: every Service (with registered endpoints merged in) — for now a sidecar may call any
//   Service; Istio's Sidecar resource or exportTo would narrow this later —, the mesh routes
//   attached to them, the BackendTrafficPolicies those reference, the sidecar endpoints of each
//   Service port with their SPIFFE ids, and the Istio policies that select this workload.
// - gateway: its Gateways (hello.gateways, or all of meshgate's), the routes attached to their
//   listeners, the Services those routes send to, the certificates the listeners name, the
//   effective policies of listeners, rules and Services, only the policy Secrets those policies
//   reference, and the ApiDefinitions published on those routes.

import { contentVersion } from '../../shared/config/compile/snapshot-version.ts';
import type {
  BackendIR,
  EffectivePolicyIR,
  FilterIR,
  IstioPolicyIR,
  RulePoliciesIR,
  ServiceIR,
  Snapshot,
} from '../../shared/config/snapshot.ts';
import type { ProxyHello, ProxyView } from '../../shared/discovery/protocol.ts';
import { selectionOf, servicesSelecting } from '../../shared/authz/workload-selection.ts';
import type { MergedServices } from './endpoints.ts';

/** What every view of one round is cut from; built once per push round. */
export interface ViewContext {
  snapshot: Snapshot;
  merged: MergedServices;
  trustDomain: string;
}

export function cutView(ctx: ViewContext, hello: ProxyHello): ProxyView {
  return hello.kind === 'gateway' ? gatewayView(ctx, hello) : sidecarView(ctx, hello);
}

/** The version of a view: the hash of everything but the version and the snapshot it came from. */
export function viewVersion(view: Omit<ProxyView, 'version' | 'snapshotVersion'>): string {
  return contentVersion(view);
}

function finish(ctx: ViewContext, content: Omit<ProxyView, 'version' | 'snapshotVersion'>) {
  // snapshotVersion stays out of the hash: a snapshot change that leaves this view alone must
  // give the same version, or every proxy would be pushed on every change.
  return { version: viewVersion(content), snapshotVersion: ctx.snapshot.version, ...content };
}

const routeKey = (r: { namespace: string; name: string }) => `${r.namespace}/${r.name}`;

function pick<T>(record: Record<string, T>, keys: Iterable<string>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of [...new Set(keys)].sort()) if (record[k] !== undefined) out[k] = record[k];
  return out;
}

function rulePolicyIds(rules: readonly RulePoliciesIR[]): string[] {
  return rules.flatMap((r) =>
    [r.securityPolicy, r.backendTrafficPolicy, r.tokenIntrospectionPolicy].filter(
      (id): id is string => id !== undefined,
    ),
  );
}

export function sidecarView(ctx: ViewContext, hello: ProxyHello): ProxyView {
  const { snapshot, merged } = ctx;
  const services = merged.services;
  const routeKeys = new Set(services.flatMap((s) => s.meshRoutes.map((a) => a.route)));
  const policyIds = [
    ...services.flatMap((s) => (s.backendTrafficPolicy ? [s.backendTrafficPolicy] : [])),
    ...services.flatMap((s) => s.meshRoutes.flatMap((a) => rulePolicyIds(a.rules))),
  ];
  // Mesh traffic is shaped by BackendTrafficPolicies only; edge policies stay with gateways.
  const effectivePolicies = Object.fromEntries(
    Object.entries(pick(snapshot.effectivePolicies, policyIds)).filter(
      ([, p]) => p.kind === 'BackendTrafficPolicy',
    ),
  );
  return finish(ctx, {
    trustDomain: ctx.trustDomain,
    rootNamespace: snapshot.rootNamespace,
    gateways: [],
    routes: snapshot.routes.filter((r) => routeKeys.has(routeKey(r))),
    services,
    meshEndpoints: merged.meshEndpoints,
    tlsCertificates: [],
    effectivePolicies,
    policySecrets: {},
    inbound: inboundPolicies(snapshot, services, hello),
    apis: [],
  });
}

/**
 * The Istio policies that select the workload: mesh-wide ones of the root namespace, its
 * namespace's, and those whose selector matches its labels or whose targetRefs name a Service
 * that selects it (or the Service it says it fronts). Which of them wins (PeerAuthentication's
 * precedence, DENY before ALLOW) is the sidecar's to decide, as shared/authz does.
 */
export function inboundPolicies(
  snapshot: Snapshot,
  services: readonly ServiceIR[],
  hello: ProxyHello,
): NonNullable<ProxyView['inbound']> {
  const workload = { namespace: hello.namespace, labels: hello.labels };
  const selecting = servicesSelecting(services, workload);
  if (hello.service) selecting.add(`Service/${hello.namespace}/${hello.service}`);
  const select = (list: readonly IstioPolicyIR[]) =>
    list.filter((p) => selectionOf(p, workload, snapshot.rootNamespace, selecting) !== undefined);
  return {
    peerAuthentications: select(snapshot.meshSecurity.peerAuthentications),
    authorizationPolicies: select(snapshot.meshSecurity.authorizationPolicies),
    requestAuthentications: select(snapshot.meshSecurity.requestAuthentications),
  };
}

function backendsOfFilters(filters: readonly FilterIR[]): BackendIR[] {
  return filters.flatMap((f) => (f.type === 'RequestMirror' ? [f.backend] : []));
}

export function gatewayView(ctx: ViewContext, hello: ProxyHello): ProxyView {
  const { snapshot, merged } = ctx;
  const wanted = hello.gateways ? new Set(hello.gateways) : undefined;
  const gateways = snapshot.gateways.filter((g) => !wanted || wanted.has(routeKey(g)));
  const listeners = gateways.flatMap((g) => g.listeners);
  const routeKeys = new Set(listeners.flatMap((l) => l.routes.map((a) => a.route)));
  const routes = snapshot.routes.filter((r) => routeKeys.has(routeKey(r)));

  const serviceKeys = new Set<string>();
  for (const rule of routes.flatMap((r) => r.rules))
    for (const b of [
      ...rule.backends,
      ...backendsOfFilters(rule.filters),
      ...rule.backends.flatMap((b) => backendsOfFilters(b.filters)),
    ])
      serviceKeys.add(routeKey(b));
  const services = merged.services.filter((s) => serviceKeys.has(routeKey(s)));

  const policyIds = [
    ...gateways.flatMap((g) => (g.clientTrafficPolicy ? [g.clientTrafficPolicy] : [])),
    ...listeners.flatMap((l) => (l.clientTrafficPolicy ? [l.clientTrafficPolicy] : [])),
    ...listeners.flatMap((l) => l.routes.flatMap((a) => rulePolicyIds(a.rules))),
    ...services.flatMap((s) => (s.backendTrafficPolicy ? [s.backendTrafficPolicy] : [])),
  ];
  const effectivePolicies = pick(snapshot.effectivePolicies, policyIds);
  const secretKeys = Object.values(effectivePolicies).flatMap(policySecretKeys);
  const certificateKeys = new Set(listeners.flatMap((l) => l.tls?.certificates ?? []));
  const meshEndpoints = Object.fromEntries(
    Object.entries(merged.meshEndpoints).filter(([key]) =>
      serviceKeys.has(key.slice(0, key.lastIndexOf(':'))),
    ),
  );
  return finish(ctx, {
    trustDomain: ctx.trustDomain,
    rootNamespace: snapshot.rootNamespace,
    gateways,
    routes,
    services,
    meshEndpoints,
    tlsCertificates: snapshot.tlsCertificates.filter((c) => certificateKeys.has(c.secret)),
    effectivePolicies,
    policySecrets: pick(snapshot.policySecrets, secretKeys),
    apis: snapshot.apis.filter((a) => routeKeys.has(a.route)),
  });
}

interface SecretRef {
  name: string;
  namespace?: string;
}

/**
 * "namespace/name" of the Secrets an effective policy reads at run time: the same references
 * collectPolicySecrets (shared/config/compile/policy-secrets.ts) gathers into the snapshot.
 */
export function policySecretKeys(policy: EffectivePolicyIR): string[] {
  const key = (ref: SecretRef) => `${ref.namespace ?? ''}/${ref.name}`;
  if (policy.kind === 'TokenIntrospectionPolicy') {
    const ref = (policy.spec as { clientSecretRef?: SecretRef }).clientSecretRef;
    return ref ? [key(ref)] : [];
  }
  if (policy.kind !== 'SecurityPolicy') return [];
  const spec = policy.spec as {
    apiKeyAuth?: { credentialRefs?: SecretRef[] };
    oidc?: { clientSecret?: SecretRef; clientIDRef?: SecretRef };
  };
  return [
    ...(spec.apiKeyAuth?.credentialRefs ?? []).map(key),
    ...(spec.oidc?.clientSecret ? [key(spec.oidc.clientSecret)] : []),
    ...(spec.oidc?.clientIDRef ? [key(spec.oidc.clientIDRef)] : []),
  ];
}
