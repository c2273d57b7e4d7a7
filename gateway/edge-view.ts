// The edge gateway's view of a snapshot: what one gateway process serves, compiled once per
// snapshot into the structures the request path reads (route tables per port, compiled rules,
// TLS contexts, endpoint sets). The data plane swaps the whole view at once.

import { createSecureContext, type SecureContext } from 'node:tls';
import {
  BackendPolicies,
  type BackendPolicy,
  type BackendPolicyRuntime,
} from '../shared/backend/backend-policy.ts';
import { endpointOrigin, EndpointSet } from '../shared/backend/endpoint-set.ts';
import { Pool, type Dispatcher } from 'undici';
import { weightedPicker, type WeightedPicker } from '../shared/backend/weighted-pick.ts';
import type {
  BackendIR,
  FilterIR,
  GatewayIR,
  HeaderModifierIR,
  ListenerIR,
  PathModifierIR,
  RouteAttachmentIR,
  RulePoliciesIR,
  Snapshot,
} from '../shared/config/snapshot.ts';
import type { SecurityPolicySpec } from '../shared/config/schemas/envoy-gateway.ts';
import type { TokenIntrospectionPolicySpec } from '../shared/config/schemas/meshgate.ts';
import { compileCors, type CorsPolicy } from '../shared/proxy/cors.ts';
import { serviceEndpoints, type MeshEndpoints } from '../shared/proxy/mesh-endpoints.ts';
import type { MeshPools } from '../shared/proxy/mesh-pools.ts';
import { hostnameMatches } from '../shared/routing/hostname.ts';
import type { IntrospectionAuthenticator } from './auth/introspection-authenticator.ts';
import { meshPools as processMeshPools } from './layers/forward-to-backend.ts';
import {
  compileSecurityPolicy,
  compileTokenIntrospectionPolicy,
  type AuthRuntime,
  type CompiledSecurityPolicy,
} from './auth/security-policy.ts';
import { clientIPResolver, type ClientIPDetection, type ClientIPResolver } from './client-ip.ts';
import {
  compileClientTraffic,
  type ClientTrafficSettings,
  type ClientTrafficSpec,
} from './client-traffic.ts';
import { metricsFor, NO_ROUTE, type RouteMetrics } from './gateway-metrics.ts';
import type { PathNormalization } from '../shared/routing/normalize-path.ts';
import {
  compileRouteTable,
  listenerRouteEntries,
  type RouteTable,
} from '../shared/routing/route-table.ts';
import { routesByKey } from '../shared/routing/snapshot-route-tables.ts';
import { attachRateLimits, type RuleRateLimit } from './ratelimit/compile-rate-limit.ts';
import type { RateLimitRuntime } from './ratelimit/runtime.ts';
import {
  compileViewApis,
  type ApiPortal,
  type OpenApiBinding,
  type ViewApis,
} from './openapi/view-apis.ts';
import { applySharedFilter, type FilterEffects } from '../shared/proxy/filter-effects.ts';

/** What a matched rule does, compiled once: the request path only reads it. */
export interface CompiledRule {
  /** "httproute/NS/NAME/rule/I", as logs and metrics name it. */
  id: string;
  listener: ListenerIR;
  /** Where the requests this rule answers are counted. */
  metrics: RouteMetrics;
  /** Answer without forwarding: an invalid policy or unresolvable filter (fail closed). */
  failure?: { code: 'MG_ERR_INVALID_CONFIG'; detail: string };
  redirect?: Extract<FilterIR, { type: 'RequestRedirect' }>;
  cors?: CorsPolicy;
  security?: CompiledSecurityPolicy;
  /** TokenIntrospectionPolicy: opaque bearer tokens checked with RFC 7662 introspection. */
  tokenIntrospection?: IntrospectionAuthenticator;
  requestHeaders?: HeaderModifierIR;
  responseHeaders?: HeaderModifierIR;
  rewrite?: { hostname?: string; path?: PathModifierIR };
  mirrors: Mirror[];
  backends: WeightedPicker<CompiledBackend>;
  hasBackends: boolean;
  requestTimeoutMs: number;
  backendTimeoutMs: number;
  retry?: { attempts: number; codes: ReadonlySet<number>; backoffMs: number };
  /** Effective policy ids, for the layers that enforce them. */
  securityPolicy?: string;
  backendTrafficPolicy?: string;
  tokenIntrospectionPolicy?: string;
  /** ApiDefinitions (ReportOnly or Enforce) that check this rule's requests, longest basePath first. */
  openapi?: OpenApiBinding[];
  /** BackendTrafficPolicy.rateLimit of this rule, bound to its buckets (ratelimit/compile-rate-limit.ts). */
  rateLimit?: RuleRateLimit;
}

export interface Mirror {
  target: CompiledBackend;
  numerator: number;
  denominator: number;
}

export interface CompiledBackend {
  /** "namespace/name:port". */
  key: string;
  invalid?: string;
  endpoints: EndpointSet;
  /**
   * When the gateway is in the mesh: origin (https://…) → the SPIFFE id each sidecar endpoint
   * must prove; endpoints not in it are plain HTTP.
   */
  identities?: ReadonlyMap<string, string>;
  /** The backendRef's own filters (HTTPBackendRef.filters), applied after the rule's. */
  requestHeaders?: HeaderModifierIR;
  responseHeaders?: HeaderModifierIR;
  /** An unresolvable filter on the backendRef: requests sent here fail closed (500). */
  failure?: { code: 'MG_ERR_INVALID_CONFIG'; detail: string };
  redirect?: Extract<FilterIR, { type: 'RequestRedirect' }>;
  rewrite?: { hostname?: string; path?: PathModifierIR };
  cors?: CorsPolicy;
  mirrors: Mirror[];
  /**
   * The rule's BackendTrafficPolicy for this backend (balancer, breaker, outlier detection, health
   * checks, retries, timeouts, faults). Absent: round robin with the rule's own timeouts and retry.
   */
  policy?: BackendPolicy;
}

export interface RouteHit {
  listener: ListenerIR;
  attachment: RouteAttachmentIR;
  rules: CompiledRule[];
}

export interface EdgePort {
  /** The listener port from config; the socket binds port + offset. */
  port: number;
  protocol: 'HTTP' | 'HTTPS';
  gateways: string[];
  listeners: ListenerIR[];
  table: RouteTable<RouteHit>;
  /** The route attachments the table serves. */
  routes: RouteHit[];
  /** What the port publishes under /apis, when a listener of it carries an ApiDefinition's route. */
  apis?: ApiPortal;
  pathSettings: PathNormalization;
  clientIP: ClientIPResolver;
  /** The rest of the port's ClientTrafficPolicy: header names, rate-limit headers, connections. */
  clientTraffic: ClientTrafficSettings;
  /** Where requests that match no rule are counted. */
  unrouted: RouteMetrics;
  tls?: EdgeTLS;
}

export interface EdgeTLS {
  /** Listener hostname (or "*" for none) → context, most specific first. */
  contexts: { hostname: string; context: SecureContext; listener: string }[];
  fallback: SecureContext;
  /** PEMs of the fallback, for clients that send no SNI (the server's default context). */
  fallbackOptions: { cert: string; key: string };
}

/**
 * A snapshot cut for a gateway that joined the mesh (a ProxyView from the control plane in the
 * shape of a Snapshot): it also says which endpoints are sidecars, called over mTLS.
 */
export interface MeshSnapshot extends Snapshot {
  mesh?: { meshEndpoints: MeshEndpoints };
}

export interface EdgeViewOptions {
  /** "namespace/name" of the Gateways to serve; all of meshgate's when absent. */
  gateways?: readonly string[];
  /** Long-lived state the view's policies share across reloads (JWKS, verified tokens). */
  auth: AuthRuntime;
  /** Timers, randomness and pool factory of BackendTrafficPolicy health checks (Node's by default). */
  backend?: Partial<BackendPolicyRuntime>;
  /** The process's rate-limit lessees, which outlive views; no rate limits are enforced without. */
  rateLimit?: RateLimitRuntime;
  /** mTLS pools to mesh sidecars for health checks and policy-owned connections (default: the process's). */
  meshPools?: MeshPools;
}

export class EdgeView {
  readonly version: string;
  readonly ports = new Map<number, EdgePort>();
  readonly gateways: GatewayIR[];
  /** Problems that keep part of the config from being served (logged, shown on the admin API). */
  readonly problems: string[] = [];

  constructor(
    readonly snapshot: Snapshot,
    options: EdgeViewOptions,
    previous?: EdgeView,
  ) {
    this.version = snapshot.version;
    const wanted = options.gateways ? new Set(options.gateways) : undefined;
    this.gateways = snapshot.gateways.filter(
      (g) => !wanted || wanted.has(`${g.namespace}/${g.name}`),
    );
    const meshEndpoints = (snapshot as MeshSnapshot).mesh?.meshEndpoints;
    const endpointSets = new EndpointSets(snapshot, previous?.endpointSets, meshEndpoints);
    this.endpointSets = endpointSets;
    // Takes over the balancing, breaker, ejection and health state of the previous view.
    const backendPolicies = new BackendPolicies(
      meshEndpoints
        ? {
            ...options.backend,
            createPool: meshAwarePools(endpointSets, options.meshPools ?? processMeshPools),
          }
        : options.backend,
      previous?.backendPolicies,
    );
    this.backendPolicies = backendPolicies;
    const security = new Map<string, CompiledSecurityPolicy>();
    const securityPolicy = (id: string | undefined): CompiledSecurityPolicy | undefined => {
      if (!id) return undefined;
      let compiled = security.get(id);
      const spec = snapshot.effectivePolicies[id]?.spec as
        (SecurityPolicySpec & { invalid?: unknown }) | undefined;
      if (!compiled && spec && !spec.invalid)
        security.set(
          id,
          (compiled = compileSecurityPolicy(id, spec, snapshot.policySecrets, options.auth)),
        );
      return compiled;
    };
    const introspection = new Map<string, IntrospectionAuthenticator>();
    const introspectionPolicy = (id: string | undefined) => {
      if (!id) return undefined;
      let compiled = introspection.get(id);
      const spec = snapshot.effectivePolicies[id]?.spec as
        (TokenIntrospectionPolicySpec & { invalid?: unknown }) | undefined;
      if (!compiled && spec && !spec.invalid)
        introspection.set(
          id,
          (compiled = compileTokenIntrospectionPolicy(
            id,
            spec,
            snapshot.policySecrets,
            options.auth,
          )),
        );
      return compiled;
    };
    const routes = routesByKey(snapshot);

    const byPort = new Map<number, { gateway: GatewayIR; listener: ListenerIR }[]>();
    for (const gateway of this.gateways)
      for (const listener of gateway.listeners)
        byPort.set(listener.port, [...(byPort.get(listener.port) ?? []), { gateway, listener }]);

    for (const [port, all] of [...byPort].sort(([a], [b]) => a - b)) {
      const protocol = (all[0] as { listener: ListenerIR }).listener.protocol;
      // Several Gateways in one process share a port only if they agree on the protocol.
      const usable = all.filter(({ gateway, listener }) => {
        if (listener.protocol === protocol) return true;
        this.problems.push(
          `Gateway ${gateway.namespace}/${gateway.name} listener ${listener.name}: port ${port} is already served as ${protocol} by another Gateway of this process`,
        );
        return false;
      });
      const listeners = usable.map((u) => u.listener);
      const entries = usable.flatMap(({ gateway, listener }) =>
        listenerRouteEntries(listener, routes).map((e) => ({
          route: e.route,
          hostnames: e.hostnames,
          attachment: {
            listener,
            attachment: e.attachment,
            rules: e.route.rules.map((rule, i) =>
              compileRule(
                snapshot,
                listener,
                e.route.namespace,
                e.route.name,
                rule,
                e.attachment.rules[i] ?? {},
                endpointSets,
                securityPolicy,
                introspectionPolicy,
                { policies: backendPolicies, host: e.hostnames.find((h) => !h.startsWith('*')) },
                (ruleId) =>
                  metricsFor(port, `${gateway.namespace}/${gateway.name}/${listener.name}`, ruleId),
              ),
            ),
          } satisfies RouteHit,
        })),
      );
      const ctpId =
        listeners.find((l) => l.clientTrafficPolicy)?.clientTrafficPolicy ??
        usable[0]?.gateway.clientTrafficPolicy;
      const ctp = ctpId
        ? (snapshot.effectivePolicies[ctpId]?.spec as
            | (ClientTrafficSpec & {
                path?: PathNormalization;
                clientIPDetection?: ClientIPDetection;
              })
            | undefined)
        : undefined;
      const edgePort: EdgePort = {
        port,
        protocol,
        gateways: [...new Set(usable.map((u) => `${u.gateway.namespace}/${u.gateway.name}`))],
        listeners,
        table: compileRouteTable(entries),
        routes: entries.map((e) => e.attachment),
        pathSettings: ctp?.path ?? {},
        clientIP: clientIPResolver(ctp?.clientIPDetection),
        clientTraffic: compileClientTraffic(ctp),
        unrouted: metricsFor(port, NO_ROUTE, NO_ROUTE),
      };
      if (protocol === 'HTTPS') {
        const tls = this.buildTLS(listeners);
        if (tls) edgePort.tls = tls;
        else {
          this.problems.push(`port ${port}: no usable certificate; the port is not served`);
          continue;
        }
      }
      this.ports.set(port, edgePort);
    }
    if (options.rateLimit) attachRateLimits(this, options.rateLimit);
    this.apis = compileViewApis(this, previous?.apis);
    endpointSets.forgetPrevious();
    // Health checks start with the view; what the previous view ran and this one dropped stops.
    backendPolicies.activate();
  }

  /** BackendTrafficPolicy state of this view's rules (admin API: ejections, breakers, health). */
  readonly backendPolicies: BackendPolicies;

  /**
   * Stops what the view runs in the background (health checks, policy-owned pools). A newer view
   * stops what it did not take over by itself; the server calls this when it closes.
   */
  close(): Promise<void> {
    return this.backendPolicies.close();
  }

  /** Kept so the next view can carry balancing state over for unchanged endpoint lists. */
  readonly endpointSets: EndpointSets;
  /** ApiDefinitions: documents, validators and the /apis portals (fetched documents carry over). */
  readonly apis: ViewApis;

  private buildTLS(listeners: readonly ListenerIR[]): EdgeTLS | undefined {
    const certs = new Map(this.snapshot.tlsCertificates.map((c) => [c.secret, c]));
    const contexts: (EdgeTLS['contexts'][number] & { pem: { cert: string; key: string } })[] = [];
    for (const l of listeners) {
      const secrets = l.tls?.certificates ?? [];
      const cert = secrets.map((s) => certs.get(s)).find((c) => c !== undefined);
      if (!cert) continue;
      try {
        const pem = { cert: cert.certPem, key: cert.keyPem };
        contexts.push({
          hostname: l.hostname ?? '*',
          listener: l.name,
          context: createSecureContext(pem),
          pem,
        });
      } catch (err) {
        this.problems.push(
          `listener ${l.name}: certificate ${cert.secret} cannot be used: ${(err as Error).message}`,
        );
      }
    }
    if (contexts.length === 0) return undefined;
    contexts.sort((a, b) => specificity(b.hostname) - specificity(a.hostname));
    const fallback =
      contexts.find((c) => c.hostname === '*') ?? (contexts[0] as (typeof contexts)[number]);
    return { contexts, fallback: fallback.context, fallbackOptions: fallback.pem };
  }

  /** The certificate for an SNI name: the most specific listener hostname that covers it. */
  secureContextFor(port: number, servername: string | undefined): SecureContext | undefined {
    const tls = this.ports.get(port)?.tls;
    if (!tls) return undefined;
    if (!servername) return tls.fallback;
    const name = servername.toLowerCase();
    return (
      tls.contexts.find((c) => c.hostname === '*' || hostnameMatches(c.hostname, name))?.context ??
      tls.fallback
    );
  }

  /** The listener an SNI name selects on a port (for misdirected-request detection). */
  listenerForServername(port: number, servername: string): string | undefined {
    const tls = this.ports.get(port)?.tls;
    const name = servername.toLowerCase();
    return tls?.contexts.find((c) => c.hostname === '*' || hostnameMatches(c.hostname, name))
      ?.listener;
  }
}

function specificity(hostname: string): number {
  if (hostname === '*') return 0;
  return hostname.startsWith('*.') ? hostname.length : hostname.length + 1000;
}

/** Endpoint sets by "namespace/name:port", shared by every rule of a view. */
export class EndpointSets {
  private readonly sets = new Map<string, EndpointSet>();
  /** Sidecar endpoints' origins (https://…) → their SPIFFE ids (in the mesh only). */
  readonly identities = new Map<string, string>();
  constructor(
    private readonly snapshot: Snapshot,
    private previous?: EndpointSets,
    /** In the mesh: the sidecar endpoints, reached over mTLS. */
    private readonly meshEndpoints?: MeshEndpoints,
  ) {}

  get(namespace: string, name: string, port: number): EndpointSet {
    const key = `${namespace}/${name}:${port}`;
    let set = this.sets.get(key);
    if (set) return set;
    const svc = this.snapshot.services.find((s) => s.namespace === namespace && s.name === name);
    let endpoints: { address: string; port: number; origin: string }[];
    if (this.meshEndpoints) {
      const listed = serviceEndpoints(svc, port, this.meshEndpoints);
      for (const e of listed) if (e.spiffeId) this.identities.set(e.origin, e.spiffeId);
      endpoints = listed;
    } else
      endpoints = (svc?.ports.find((p) => p.port === port)?.endpoints ?? []).map((e) => ({
        address: e.address,
        port: e.port,
        origin: endpointOrigin(e.address, e.port),
      }));
    const old = this.previous?.sets.get(key);
    // Same endpoints as before: keep the set, so round robin does not restart on every reload.
    set = old && sameEndpoints(old, endpoints) ? old : new EndpointSet(endpoints);
    this.sets.set(key, set);
    return set;
  }

  /** Drops the link to the previous view's sets once this view is built, so views do not chain in memory. */
  forgetPrevious(): void {
    this.previous = undefined;
  }

  /** "origin|spiffeId" of every sidecar endpoint this view may call (MeshPools.retain). */
  meshPeers(): Set<string> {
    return new Set([...this.identities].map(([origin, id]) => `${origin}|${id}`));
  }

  /** Every upstream origin this view may send to. */
  origins(): Set<string> {
    const out = new Set<string>();
    for (const s of this.sets.values()) for (const e of s.endpoints) out.add(e.origin);
    return out;
  }
}

function sameEndpoints(set: EndpointSet, endpoints: readonly { origin: string }[]): boolean {
  return (
    set.endpoints.length === endpoints.length &&
    set.endpoints.every((e, i) => e.origin === endpoints[i]?.origin)
  );
}

function compileBackend(b: BackendIR, sets: EndpointSets): CompiledBackend {
  const out: CompiledBackend = {
    key: `${b.namespace}/${b.name}:${b.port}`,
    endpoints: sets.get(b.namespace, b.name, b.port),
    mirrors: [],
  };
  if (sets.identities.size > 0) {
    const identities = new Map<string, string>();
    for (const e of out.endpoints.endpoints) {
      const id = sets.identities.get(e.origin);
      if (id) identities.set(e.origin, id);
    }
    if (identities.size > 0) out.identities = identities;
  }
  if (b.invalid) out.invalid = `${b.invalid.reason}: ${b.invalid.message}`;
  // Every filter type a backendRef may carry is honoured; none is dropped silently.
  for (const f of b.filters) applyEdgeFilter(f, out, sets);
  return out;
}

function compileRule(
  snapshot: Snapshot,
  listener: ListenerIR,
  namespace: string,
  name: string,
  rule: Snapshot['routes'][number]['rules'][number],
  policies: RulePoliciesIR,
  sets: EndpointSets,
  securityPolicy: (id: string | undefined) => CompiledSecurityPolicy | undefined,
  introspectionPolicy: (id: string | undefined) => IntrospectionAuthenticator | undefined,
  backendPolicies: { policies: BackendPolicies; host: string | undefined },
  metrics: (ruleId: string) => RouteMetrics,
): CompiledRule {
  const backends = rule.backends.map((b) => ({ item: compileBackend(b, sets), weight: b.weight }));
  const id = `httproute/${namespace}/${name}/rule/${rule.index}`;
  const compiled: CompiledRule = {
    id,
    listener,
    metrics: metrics(id),
    mirrors: [],
    backends: weightedPicker(backends),
    hasBackends: rule.backends.length > 0,
    requestTimeoutMs: rule.timeouts?.requestMs ?? 0,
    backendTimeoutMs: rule.timeouts?.backendRequestMs ?? 0,
  };
  if (rule.retry && (rule.retry.attempts ?? 0) > 0)
    compiled.retry = {
      attempts: rule.retry.attempts ?? 0,
      codes: new Set(rule.retry.codes),
      backoffMs: rule.retry.backoffMs ?? 25,
    };
  for (const f of rule.filters) applyEdgeFilter(f, compiled, sets);
  for (const id of [
    policies.securityPolicy,
    policies.backendTrafficPolicy,
    policies.tokenIntrospectionPolicy,
  ]) {
    if (!id) continue;
    const spec = snapshot.effectivePolicies[id]?.spec as
      { invalid?: { message: string } } | undefined;
    if (spec?.invalid)
      compiled.failure = { code: 'MG_ERR_INVALID_CONFIG', detail: spec.invalid.message };
  }
  if (policies.securityPolicy) compiled.securityPolicy = policies.securityPolicy;
  if (policies.backendTrafficPolicy) {
    compiled.backendTrafficPolicy = policies.backendTrafficPolicy;
    if (
      !compiled.failure &&
      shapesBackendTraffic(snapshot.effectivePolicies[policies.backendTrafficPolicy]?.spec)
    )
      attachBackendPolicies(compiled, rule, backends, snapshot, backendPolicies);
  }
  if (policies.tokenIntrospectionPolicy) {
    compiled.tokenIntrospectionPolicy = policies.tokenIntrospectionPolicy;
    const tokenIntrospection = introspectionPolicy(policies.tokenIntrospectionPolicy);
    if (tokenIntrospection) compiled.tokenIntrospection = tokenIntrospection;
  }
  const security = securityPolicy(policies.securityPolicy);
  if (security) {
    compiled.security = security;
    // The route's own CORS filter is more specific than the policy's.
    if (!compiled.cors && security.cors) compiled.cors = compileCors(security.cors);
  }
  return compiled;
}

/** BackendTrafficPolicy fields the backend layers act on (rateLimit is a layer of its own). */
const BACKEND_FIELDS = [
  'loadBalancer',
  'retry',
  'timeout',
  'circuitBreaker',
  'healthCheck',
  'faultInjection',
  'connection',
  'tcpKeepalive',
];

/**
 * Whether a policy changes how requests reach the backend. One that only rate-limits keeps the
 * plain forwarding path (round robin, the rule's own timeouts and retries), which costs less.
 */
function shapesBackendTraffic(spec: unknown): boolean {
  return (
    typeof spec === 'object' &&
    spec !== null &&
    BACKEND_FIELDS.some((f) => (spec as Record<string, unknown>)[f] !== undefined)
  );
}

/**
 * Gives each valid backend of a rule its BackendPolicy; a policy that cannot be applied fails the
 * rule closed (500), as upstream answers a route whose policy did not translate.
 */
function attachBackendPolicies(
  compiled: CompiledRule,
  rule: Snapshot['routes'][number]['rules'][number],
  backends: readonly { item: CompiledBackend }[],
  snapshot: Snapshot,
  backendPolicies: { policies: BackendPolicies; host: string | undefined },
): void {
  const policyId = compiled.backendTrafficPolicy as string;
  for (const { item } of backends) {
    if (item.invalid) continue;
    const policy = backendPolicies.policies.get({
      policyId,
      scope: compiled.id,
      backend: item.key,
      endpoints: item.endpoints.endpoints,
      spec: snapshot.effectivePolicies[policyId]?.spec,
      rule: {
        ...(rule.timeouts ? { timeouts: rule.timeouts } : {}),
        ...(rule.retry ? { retry: rule.retry } : {}),
      },
      ...(backendPolicies.host !== undefined ? { defaultHost: backendPolicies.host } : {}),
    });
    if ('error' in policy) {
      compiled.failure = {
        code: 'MG_ERR_INVALID_CONFIG',
        detail: `BackendTrafficPolicy ${policyId}: ${policy.error}`,
      };
      return;
    }
    item.policy = policy;
  }
}

/**
 * BackendTrafficPolicy pools (health checks, connection settings) for a view in the mesh: a
 * sidecar endpoint's pool speaks mTLS and checks its identity; others are plain, as before.
 */
function meshAwarePools(
  sets: EndpointSets,
  meshPools: MeshPools,
): (origin: string, options: Pool.Options) => Dispatcher {
  return (origin, options) => {
    const spiffeId = sets.identities.get(origin);
    if (spiffeId === undefined) return new Pool(origin, options);
    const { connect, ...rest } = options;
    const timeout =
      connect && typeof connect === 'object' && typeof connect.timeout === 'number'
        ? connect.timeout
        : undefined;
    return meshPools.create(origin, spiffeId, {
      ...rest,
      ...(timeout !== undefined ? { connectTimeoutMs: timeout } : {}),
    });
  };
}

/** One HTTPRoute filter on a rule or a backendRef: the shared ones, then mirroring and CORS. */
function applyEdgeFilter(
  f: FilterIR,
  out: FilterEffects & { mirrors: Mirror[]; cors?: CorsPolicy },
  sets: EndpointSets,
): void {
  if (applySharedFilter(f, out)) return;
  if (f.type === 'RequestMirror')
    out.mirrors.push({
      target: compileBackend(f.backend, sets),
      numerator: f.fraction.numerator,
      denominator: f.fraction.denominator,
    });
  else if (f.type === 'CORS') out.cors = compileCors(f);
}
