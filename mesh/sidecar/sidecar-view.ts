// The sidecar's view of what the control plane sent (a ProxyView), compiled once into what the
// two stacks read: the workload's inbound security (the shared evaluator's CompiledInbound), and
// for every Service it may call, per port, the mesh route table (GAMMA routes or the default
// route), the compiled rules with their backends, endpoints (sidecars over mTLS, others plain)
// and BackendTrafficPolicy state. A view that cannot be applied as a whole (a regular expression
// that does not compile, policies that cannot be compiled) is refused: the caller NACKs it and
// keeps serving the previous one.

import {
  compileInboundPolicy,
  type CompiledInbound,
  type InboundPolicyOptions,
} from '../../shared/authz/evaluate.ts';
import { mtlsModeForPort, type MtlsMode } from '../../shared/authz/peer-authentication.ts';
import {
  BackendPolicies,
  type BackendPolicy,
  type BackendPolicyRuntime,
} from '../../shared/backend/backend-policy.ts';
import { weightedPicker, type WeightedPicker } from '../../shared/backend/weighted-pick.ts';
import type {
  BackendIR,
  FilterIR,
  HTTPRouteIR,
  ServiceIR,
  Snapshot,
} from '../../shared/config/snapshot.ts';
import type { ProxyView } from '../../shared/discovery/protocol.ts';
import {
  serviceEndpoints,
  servicePortKey,
  type MeshEndpoints,
  type ServiceEndpoint,
} from '../../shared/proxy/mesh-endpoints.ts';
import { meshServerName } from '../../shared/proxy/mesh-pools.ts';
import { snapshotOfView } from '../../shared/proxy/view-snapshot.ts';
import type { RouteTable } from '../../shared/routing/route-table.ts';
import { meshRouteTable, type MeshAttachment } from '../../shared/routing/snapshot-route-tables.ts';
import { applySharedFilter, type FilterEffects } from '../../shared/proxy/filter-effects.ts';

/** Who this sidecar fronts, from its command line. */
export interface Workload {
  service: string;
  namespace: string;
  serviceAccount: string;
  labels: Readonly<Record<string, string>>;
  /** The application port behind the sidecar: the workload port policies name. */
  appPort: number;
}

/** Istio's default retry policy for mesh calls (meshConfig.defaultHttpRetryPolicy): 2 retries on
 * connect-failure, refused-stream, unavailable, cancelled and 503, when no BackendTrafficPolicy
 * applies. A policy that applies replaces it as a whole. */
const DEFAULT_MESH_POLICY_SPEC: Readonly<Record<string, unknown>> = { retry: {} };
const DEFAULT_MESH_POLICY_ID = 'default';

export class ViewRejected extends Error {
  override name = 'ViewRejected';
}

export interface MeshBackend extends FilterEffects {
  /** "namespace/name:port". */
  key: string;
  invalid?: string;
  endpoints: readonly ServiceEndpoint[];
  /** Origin → the SPIFFE id a sidecar endpoint must prove (absent: plain HTTP endpoint). */
  identities: ReadonlyMap<string, string>;
  /** The SNI sent to its sidecars: the Service port, as Istio names it. */
  servername: string;
  /** The BackendTrafficPolicy layers (balancer, breaker, outlier detection, retries, timeouts). */
  policy?: BackendPolicy;
}

export interface MeshRule extends FilterEffects {
  /** "httproute/NS/NAME/rule/I", or "service/NS/NAME:PORT" for a Service's default route. */
  id: string;
  backends: WeightedPicker<MeshBackend>;
  hasBackends: boolean;
  /** Effective BackendTrafficPolicy id, when one applies. */
  backendTrafficPolicy?: string;
}

/** One port of a Service the app may call. */
export interface Destination {
  service: ServiceIR;
  port: number;
  /** "namespace/name:port". */
  key: string;
  table: RouteTable<MeshAttachment>;
  /** Compiled rules by route ("namespace/name"), index-aligned with the route's rules. */
  rules: ReadonlyMap<string, readonly MeshRule[]>;
}

export interface SidecarViewOptions {
  workload: Workload;
  /** JWKS for RequestAuthentication (shared across views, so keys are not refetched). */
  jwks?: InboundPolicyOptions['jwks'];
  /** Pools and timers of policy-owned connections and health checks. */
  backend?: Partial<BackendPolicyRuntime>;
}

/** Cluster-local DNS suffix of Services: `svc.ns.svc.cluster.local`. */
const CLUSTER_DOMAIN = 'cluster.local';

export class SidecarView {
  readonly version: string;
  readonly snapshotVersion: string;
  readonly snapshot: Snapshot;
  readonly inbound: CompiledInbound;
  /** PeerAuthentication mode of the app port. */
  readonly mtls: MtlsMode;
  /** Destinations by "namespace/name:port". */
  readonly destinations = new Map<string, Destination>();
  /** Parts of the view that are served differently from what the config asks (config_dump). */
  readonly problems: string[] = [];
  readonly backendPolicies: BackendPolicies;
  /** "origin|spiffeId" of every sidecar endpoint this view may call (for pool retention). */
  readonly meshPeers = new Set<string>();
  /** Plain HTTP origins this view may call. */
  readonly plainOrigins = new Set<string>();
  /** The view's sidecar endpoints. */
  readonly meshEndpoints: MeshEndpoints;
  /** Service lookup by every name the app may use for it. */
  private readonly names = new Map<string, ServiceIR>();

  constructor(
    readonly view: ProxyView,
    options: SidecarViewOptions,
    previous?: SidecarView,
  ) {
    this.version = view.version;
    this.snapshotVersion = view.snapshotVersion;
    this.snapshot = snapshotOfView(view);
    const { workload } = options;
    try {
      this.inbound = compileInboundPolicy(
        this.snapshot,
        { namespace: workload.namespace, labels: workload.labels },
        options.jwks ? { jwks: options.jwks } : {},
      );
    } catch (err) {
      throw new ViewRejected(`inbound policies cannot be compiled: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.mtls = mtlsModeForPort(this.inbound.peerAuthentication, workload.appPort);
    this.meshEndpoints = view.meshEndpoints;

    for (const s of view.services) {
      const full = `${s.name}.${s.namespace}`;
      for (const name of [full, `${full}.svc`, `${full}.svc.${CLUSTER_DOMAIN}`])
        this.names.set(name, s);
      // Short names resolve in the sidecar's own namespace, as cluster DNS search paths do.
      if (s.namespace === workload.namespace) this.names.set(s.name, s);
    }

    const backendPolicies = new BackendPolicies(options.backend, previous?.backendPolicies);
    this.backendPolicies = backendPolicies;
    const services = new Map(view.services.map((s) => [`${s.namespace}/${s.name}`, s]));
    const routes = new Map(view.routes.map((r) => [`${r.namespace}/${r.name}`, r]));
    const invalid: string[] = [];
    for (const service of view.services)
      for (const { port } of service.ports) {
        const key = servicePortKey(service.namespace, service.name, port);
        const table = meshRouteTable(this.snapshot, service, port);
        for (const m of table.invalid)
          invalid.push(
            `${key}: route ${m.route} rule ${m.ruleIndex} match ${m.matchIndex}: ${m.reason}`,
          );
        const rules = new Map<string, MeshRule[]>();
        const attached = service.meshRoutes.filter((a) => a.port === undefined || a.port === port);
        for (const a of attached) {
          const route = routes.get(a.route);
          if (route)
            rules.set(
              a.route,
              route.rules.map((rule, i) =>
                this.compileRule(
                  `httproute/${route.namespace}/${route.name}/rule/${rule.index}`,
                  rule,
                  a.rules[i]?.backendTrafficPolicy,
                  services,
                  backendPolicies,
                ),
              ),
            );
        }
        if (rules.size === 0) {
          // The default route (meshRouteTable) sends everything to the Service itself.
          const route = defaultRouteOf(table, service);
          if (route)
            rules.set(`${service.namespace}/${service.name}`, [
              this.compileRule(
                `service/${key}`,
                route.rules[0] as HTTPRouteIR['rules'][number],
                service.backendTrafficPolicy,
                services,
                backendPolicies,
              ),
            ]);
        }
        this.destinations.set(key, { service, port, key, table, rules });
      }
    if (invalid.length > 0) {
      void backendPolicies.close();
      throw new ViewRejected(`mesh routes that cannot be matched: ${invalid.join('; ')}`);
    }
    backendPolicies.activate();
  }

  /**
   * The destination the app means by a host name and port: `svc`, `svc.ns`, `svc.ns.svc` or
   * `svc.ns.svc.cluster.local`; without a port, the Service's only port (or 80).
   */
  resolve(
    hostname: string,
    port: number | undefined,
  ): Destination | { unknownPort: ServiceIR } | undefined {
    const service = this.names.get(hostname);
    if (!service) return undefined;
    let p = port;
    if (p === undefined) {
      if (service.ports.length === 1) p = (service.ports[0] as ServiceIR['ports'][number]).port;
      else if (service.ports.some((sp) => sp.port === 80)) p = 80;
    }
    const d =
      p === undefined
        ? undefined
        : this.destinations.get(servicePortKey(service.namespace, service.name, p));
    return d ?? { unknownPort: service };
  }

  /** Stops the view's health checks and policy-owned pools (when the sidecar closes). */
  close(): Promise<void> {
    return this.backendPolicies.close();
  }

  private compileRule(
    id: string,
    rule: HTTPRouteIR['rules'][number],
    policyId: string | undefined,
    services: ReadonlyMap<string, ServiceIR>,
    policies: BackendPolicies,
  ): MeshRule {
    const backends = rule.backends.map((b) => ({
      item: this.compileBackend(b, services),
      weight: b.weight,
    }));
    const compiled: MeshRule = {
      id,
      backends: weightedPicker(backends),
      hasBackends: rule.backends.length > 0,
      ...this.filterEffects(rule.filters, id),
    };
    if (policyId) compiled.backendTrafficPolicy = policyId;
    const spec = policyId ? this.view.effectivePolicies[policyId]?.spec : DEFAULT_MESH_POLICY_SPEC;
    const invalid = (spec as { invalid?: { message: string } } | undefined)?.invalid;
    if (invalid) {
      compiled.failure = { code: 'MG_ERR_INVALID_CONFIG', detail: invalid.message };
      return compiled;
    }
    for (const { item } of backends) {
      if (item.invalid) continue;
      const policy = policies.get({
        policyId: policyId ?? DEFAULT_MESH_POLICY_ID,
        scope: id,
        backend: item.key,
        endpoints: item.endpoints,
        spec: spec ?? {},
        rule: {
          ...(rule.timeouts ? { timeouts: rule.timeouts } : {}),
          ...(rule.retry ? { retry: rule.retry } : {}),
        },
        defaultHost: item.key.slice(item.key.indexOf('/') + 1, item.key.lastIndexOf(':')),
      });
      if ('error' in policy) {
        // A user's mistake fails the rule closed (500), as the edge does; the view still applies.
        compiled.failure = {
          code: 'MG_ERR_INVALID_CONFIG',
          detail: `BackendTrafficPolicy ${policyId ?? DEFAULT_MESH_POLICY_ID}: ${policy.error}`,
        };
        this.problems.push(`${id}: ${compiled.failure.detail}`);
        return compiled;
      }
      item.policy = policy;
    }
    return compiled;
  }

  private compileBackend(b: BackendIR, services: ReadonlyMap<string, ServiceIR>): MeshBackend {
    const key = servicePortKey(b.namespace, b.name, b.port);
    const endpoints = serviceEndpoints(
      services.get(`${b.namespace}/${b.name}`),
      b.port,
      this.meshEndpoints,
    );
    const identities = new Map<string, string>();
    for (const e of endpoints)
      if (e.spiffeId) {
        identities.set(e.origin, e.spiffeId);
        this.meshPeers.add(`${e.origin}|${e.spiffeId}`);
      } else this.plainOrigins.add(e.origin);
    const out: MeshBackend = {
      key,
      endpoints,
      identities,
      servername: meshServerName(key),
      ...this.filterEffects(b.filters, key),
    };
    if (b.invalid) out.invalid = `${b.invalid.reason}: ${b.invalid.message}`;
    return out;
  }

  private filterEffects(filters: readonly FilterIR[], where: string): FilterEffects {
    const out: FilterEffects = {};
    for (const f of filters)
      if (!applySharedFilter(f, out))
        // RequestMirror, CORS: reported, never dropped silently; the sidecar serves the rule
        // without them.
        this.problems.push(`${where}: filter ${f.type} is not applied by sidecars`);
    return out;
  }
}

function defaultRouteOf(
  table: RouteTable<MeshAttachment>,
  service: ServiceIR,
): HTTPRouteIR | undefined {
  for (const g of table.groups)
    for (const c of g.sorted)
      if (c.route.namespace === service.namespace && c.route.name === service.name) return c.route;
  return undefined;
}
