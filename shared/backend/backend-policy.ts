// A BackendTrafficPolicy at run time: the effective policy of a route rule (plus what the
// HTTPRoute rule itself says about timeouts and retries) compiled into one BackendPolicy per
// (policy, rule, backend), holding that backend's balancer, circuit breaker, outlier detector,
// active health checker, retry policy and fault injection. Compiled once per view; a new view
// takes over the state of the previous one (BackendPolicies), so counters, ejections and health
// survive reloads.
//
// Precedence between the HTTPRoute rule and the policy is Envoy Gateway's
// (internal/xds/translator/route.go getEffectiveRequestTimeout, ir.HTTPRoute.GetRetry):
// - request timeout: the rule's `timeouts.request` when set (even 0s, which disables it), else
//   the policy's `timeout.http.requestTimeout`;
// - retries: the rule's `retry` when present, as a whole, else the policy's `retry`. A rule retry
//   becomes numRetries = attempts (default 2, Envoy Gateway's), retriable-status-codes = codes
//   (default [503]) with the default triggers, backoff base = backoff;
// - per-attempt timeout: the rule's `timeouts.backendRequest` (GEP-1742: one request to a backend)
//   and the policy's `retry.perRetry.timeout` when the policy's retry is the one in effect, the
//   shorter of the two. (Envoy Gateway turns backendRequest into the whole request's timeout when
//   the rule has no retry; meshgate keeps the Gateway API meaning in both cases.)
// - `timeout.http.maxStreamDuration` bounds every attempt too.
//
// State is kept per policy, rule and backend because Envoy Gateway builds one cluster per route
// rule, and circuit breakers, outlier detection and balancing are per cluster ("There are distinct
// circuit breaker counters for each BackendReference in an xRoute rule. Even if a
// BackendTrafficPolicy targets a Gateway, each BackendReference in that gateway still has separate
// circuit breaker counter": Envoy Gateway's retry task docs).
//
// Connection settings (timeout.tcp.connectTimeout, timeout.http.connectionIdleTimeout and
// maxConnectionDuration, circuitBreaker.maxRequestsPerConnection and perEndpoint.maxConnections)
// belong to connection pools, which are shared by every route: a backend with any of them gets
// its own undici Pool per endpoint, one per distinct set of settings, owned by BackendPolicies and
// carried over reloads like the rest of the state; everything else uses the shared pools.

import type { Dispatcher, Pool } from 'undici';
import * as undici from '../proxy/undici-core.ts';
import type { BackendTrafficPolicySpec } from '../config/schemas/envoy-gateway.ts';
import { durationToMs } from '../config/duration.ts';
import { DEFAULT_UPSTREAM_POOL_OPTIONS } from '../proxy/upstream-pools.ts';
import {
  ActiveHealthChecker,
  type ActiveHealthCheckConfig,
  type HealthCheckDispatcher,
} from './active-health-check.ts';
import {
  CircuitBreaker,
  DEFAULT_CIRCUIT_BREAKER,
  type CircuitBreakerSnapshot,
  type CircuitBreakerThresholds,
} from './circuit-breaker.ts';
import { backgroundTimers, type Timers } from './clock.ts';
import { DEFAULT_PANIC_THRESHOLD, EndpointHealth } from './endpoint-health.ts';
import type { Endpoint } from './endpoint-set.ts';
import { FaultInjection, type FaultInjectionConfig } from './fault-injection.ts';
import {
  chooseEndpoint,
  createLoadBalancer,
  isPrime,
  type HashPolicy,
  type LoadBalancer,
  type LoadBalancerConfig,
} from './load-balancer.ts';
import {
  OutlierDetector,
  type LocalOriginFailure,
  type OutlierDetectionConfig,
  type OutlierSnapshot,
} from './outlier-detection.ts';
import {
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_NUM_RETRIES,
  DEFAULT_RETRIABLE_STATUS_CODES,
  DEFAULT_RETRY_ON,
  RetryPolicy,
  type RetryPolicyConfig,
  type RetryTrigger,
} from './retry-policy.ts';

/** What Gateway API's HTTPRoute rule says about timeouts and retries (HTTPRouteRuleIR). */
export interface RouteRuleTraffic {
  timeouts?: { requestMs?: number; backendRequestMs?: number };
  retry?: { codes: number[]; attempts?: number; backoffMs?: number };
}

export interface ConnectionSettings {
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxConnectionDurationMs?: number;
  maxRequestsPerConnection?: number;
  maxConnectionsPerEndpoint?: number;
}

/** A policy compiled for one rule: plain data, compared across reloads. */
export interface BackendPolicySettings {
  loadBalancer: LoadBalancerConfig;
  circuitBreaker: CircuitBreakerThresholds;
  /** Envoy's healthy panic threshold in percent; 0 disables panic mode. */
  panicThreshold: number;
  outlierDetection?: OutlierDetectionConfig;
  activeHealthCheck?: ActiveHealthCheckConfig;
  retry?: RetryPolicyConfig;
  /** The whole request, from when it arrived; 0: none. */
  requestTimeoutMs: number;
  /** Every attempt (backendRequest, maxStreamDuration; a retry's perTryTimeout adds to it); 0: none. */
  attemptTimeoutMs: number;
  fault?: FaultInjectionConfig;
  connection?: ConnectionSettings;
}

type PolicySpec = Partial<BackendTrafficPolicySpec>;

const ms = (d: string | undefined): number | undefined =>
  d === undefined ? undefined : durationToMs(d);

function minPositive(a: number, b: number): number {
  if (a > 0 && b > 0) return Math.min(a, b);
  return a > 0 ? a : b > 0 ? b : 0;
}

/**
 * Compiles an effective BackendTrafficPolicy spec for one HTTPRoute rule. An error is a policy
 * that cannot be applied as written: the rule fails closed (500), as upstream does.
 */
export function compileBackendPolicySettings(
  spec: PolicySpec,
  rule: RouteRuleTraffic = {},
  options: { defaultHost?: string } = {},
): BackendPolicySettings | { error: string } {
  const lb = compileLoadBalancer(spec.loadBalancer);
  if ('error' in lb) return lb;
  const cb = spec.circuitBreaker;
  const circuitBreaker: CircuitBreakerThresholds = {
    maxConnections: cb?.maxConnections ?? DEFAULT_CIRCUIT_BREAKER.maxConnections,
    maxPendingRequests: cb?.maxPendingRequests ?? DEFAULT_CIRCUIT_BREAKER.maxPendingRequests,
    maxParallelRequests: cb?.maxParallelRequests ?? DEFAULT_CIRCUIT_BREAKER.maxParallelRequests,
    maxParallelRetries: cb?.maxParallelRetries ?? DEFAULT_CIRCUIT_BREAKER.maxParallelRetries,
  };
  if (cb?.retryBudget)
    circuitBreaker.retryBudget = {
      percent:
        (100 * cb.retryBudget.percent.numerator) / (cb.retryBudget.percent.denominator ?? 100),
      minRetryConcurrency: cb.retryBudget.minRetryConcurrency ?? 3,
    };

  const settings: BackendPolicySettings = {
    loadBalancer: lb,
    circuitBreaker,
    panicThreshold: spec.healthCheck?.panicThreshold ?? DEFAULT_PANIC_THRESHOLD,
    requestTimeoutMs: rule.timeouts?.requestMs ?? ms(spec.timeout?.http?.requestTimeout) ?? 0,
    attemptTimeoutMs: minPositive(
      rule.timeouts?.backendRequestMs ?? 0,
      ms(spec.timeout?.http?.maxStreamDuration) ?? 0,
    ),
  };

  const passive = spec.healthCheck?.passive;
  if (passive) {
    const base = ms(passive.baseEjectionTime) ?? 30_000;
    settings.outlierDetection = {
      intervalMs: Math.max(1, ms(passive.interval) ?? 3_000),
      baseEjectionMs: base,
      maxEjectionMs: Math.max(300_000, base),
      maxEjectionPercent: passive.maxEjectionPercent ?? 10,
      alwaysEjectOne: passive.alwaysEjectOneEndpoint ?? false,
      consecutive5xx: passive.consecutive5XxErrors ?? 5,
      consecutiveGatewayFailure: passive.consecutiveGatewayErrors ?? 0,
      splitExternalLocalOriginErrors: passive.splitExternalLocalOriginErrors ?? false,
      consecutiveLocalOriginFailure: passive.consecutiveLocalOriginFailures ?? 5,
      ...(passive.failurePercentageThreshold !== undefined
        ? {
            failurePercentage: {
              threshold: passive.failurePercentageThreshold,
              minimumHosts: 5,
              requestVolume: 50,
            },
          }
        : {}),
    };
  }

  const active = spec.healthCheck?.active;
  if (active) {
    const hc = compileActiveHealthCheck(active, options.defaultHost);
    if ('error' in hc) return hc;
    settings.activeHealthCheck = hc;
  }

  if (rule.retry) {
    const codes = rule.retry.codes.length > 0 ? rule.retry.codes : DEFAULT_RETRIABLE_STATUS_CODES;
    settings.retry = {
      numRetries: rule.retry.attempts ?? DEFAULT_NUM_RETRIES,
      triggers: DEFAULT_RETRY_ON,
      statusCodes: [...codes],
      perTryTimeoutMs: 0,
      baseIntervalMs: rule.retry.backoffMs || DEFAULT_BACKOFF_BASE_MS,
    };
  } else if (spec.retry) {
    const r = spec.retry;
    const base = ms(r.perRetry?.backOff?.baseInterval) || DEFAULT_BACKOFF_BASE_MS;
    const max = ms(r.perRetry?.backOff?.maxInterval);
    // Ignored (gRPC) triggers leave holes in the list; a list of only those retries nothing.
    const given = r.retryOn?.triggers;
    const triggers = given
      ? given.filter((t): t is RetryTrigger => typeof t === 'string')
      : DEFAULT_RETRY_ON;
    settings.retry = {
      numRetries: r.numRetries ?? DEFAULT_NUM_RETRIES,
      triggers,
      statusCodes:
        r.retryOn?.httpStatusCodes && r.retryOn.httpStatusCodes.length > 0
          ? r.retryOn.httpStatusCodes
          : [...DEFAULT_RETRIABLE_STATUS_CODES],
      perTryTimeoutMs: ms(r.perRetry?.timeout) ?? 0,
      baseIntervalMs: base,
      ...(max !== undefined ? { maxIntervalMs: Math.max(max, base) } : {}),
    };
  }

  const fi = spec.faultInjection;
  if (fi) {
    const fault: FaultInjectionConfig = {};
    if (fi.delay)
      fault.delay = {
        ms: durationToMs(fi.delay.fixedDelay),
        percentage: fi.delay.percentage ?? 100,
      };
    if (fi.abort) {
      const percentage = fi.abort.percentage ?? 100;
      if (fi.abort.httpStatus !== undefined)
        fault.abort = { httpStatus: fi.abort.httpStatus, percentage };
      else if (fi.abort.grpcStatus !== undefined)
        fault.abort = { grpcStatus: fi.abort.grpcStatus, percentage };
    }
    if (fault.delay || fault.abort) settings.fault = fault;
  }

  const connection: ConnectionSettings = {};
  const put = <K extends keyof ConnectionSettings>(k: K, v: number | undefined) => {
    if (v !== undefined) connection[k] = v;
  };
  put('connectTimeoutMs', ms(spec.timeout?.tcp?.connectTimeout));
  put('idleTimeoutMs', ms(spec.timeout?.http?.connectionIdleTimeout));
  put('maxConnectionDurationMs', ms(spec.timeout?.http?.maxConnectionDuration));
  put('maxRequestsPerConnection', cb?.maxRequestsPerConnection);
  put('maxConnectionsPerEndpoint', cb?.perEndpoint?.maxConnections);
  if (Object.keys(connection).length > 0) settings.connection = connection;
  return settings;
}

function compileLoadBalancer(
  lb: PolicySpec['loadBalancer'],
): LoadBalancerConfig | { error: string } {
  // Envoy Gateway's default is LeastRequest (concepts/load-balancing: "this is the default").
  if (!lb) return { type: 'LeastRequest' };
  switch (lb.type) {
    case 'RoundRobin':
    case 'Random':
    case 'LeastRequest':
      return { type: lb.type };
    case 'ConsistentHash': {
      const ch = lb.consistentHash;
      if (!ch) return { error: 'loadBalancer.consistentHash is required for ConsistentHash' };
      const tableSize = ch.tableSize ?? 65537;
      if (!isPrime(tableSize))
        return {
          error: `loadBalancer.consistentHash.tableSize ${tableSize} is not a prime number`,
        };
      let hash: HashPolicy;
      switch (ch.type) {
        case 'SourceIP':
          hash = { type: 'SourceIP' };
          break;
        case 'Header':
        case 'Headers': {
          const names = [
            ...(ch.header ? [ch.header.name] : []),
            ...(ch.headers ?? []).map((h) => h.name),
          ];
          hash = { type: 'Headers', names: names.map((n) => n.toLowerCase()) };
          break;
        }
        case 'Cookie': {
          if (!ch.cookie) return { error: 'consistentHash.cookie is required for type Cookie' };
          const ttl = ms(ch.cookie.ttl);
          hash = {
            type: 'Cookie',
            name: ch.cookie.name,
            ...(ttl !== undefined ? { ttlSeconds: Math.floor(ttl / 1000) } : {}),
            attributes: Object.entries(ch.cookie.attributes ?? {}),
          };
          break;
        }
        case 'QueryParams':
          hash = { type: 'QueryParams', names: (ch.queryParams ?? []).map((q) => q.name) };
          break;
      }
      return { type: 'ConsistentHash', hash, tableSize };
    }
    default:
      return { error: `loadBalancer type ${lb.type} is not supported` };
  }
}

function compileActiveHealthCheck(
  a: NonNullable<NonNullable<PolicySpec['healthCheck']>['active']>,
  defaultHost: string | undefined,
): ActiveHealthCheckConfig | { error: string } {
  if (a.type === 'GRPC') return { error: 'gRPC health checks are not supported' };
  const payload = (p: { type: 'Text' | 'Binary'; text?: string; binary?: number[] } | undefined) =>
    p === undefined
      ? undefined
      : p.type === 'Text'
        ? Buffer.from(p.text ?? '', 'utf8')
        : Buffer.from(p.binary ?? []);
  const out: ActiveHealthCheckConfig = {
    type: a.type,
    intervalMs: Math.max(1, ms(a.interval) ?? 3_000),
    timeoutMs: Math.max(1, ms(a.timeout) ?? 1_000),
    initialJitterMs: ms(a.initialJitter) ?? 0,
    healthyThreshold: a.healthyThreshold ?? 1,
    unhealthyThreshold: a.unhealthyThreshold ?? 3,
  };
  if (a.overrides?.port !== undefined) out.port = a.overrides.port;
  if (a.type === 'HTTP') {
    const http = a.http;
    if (!http) return { error: 'healthCheck.active.http is required for type HTTP' };
    const host = http.hostname ?? defaultHost;
    const expectedBody = payload(http.expectedResponse);
    out.http = {
      path: http.path,
      method: (http.method ?? 'GET').toUpperCase(),
      ...(host !== undefined ? { host } : {}),
      expectedStatuses: http.expectedStatuses ?? [200],
      retriableStatuses: http.retriableStatuses ?? [],
      ...(expectedBody ? { expectedBody } : {}),
    };
  } else {
    const send = payload(a.tcp?.send);
    const receive = payload(a.tcp?.receive);
    out.tcp = { ...(send ? { send } : {}), ...(receive ? { receive } : {}) };
  }
  return out;
}

// --- run time ---

export interface BackendPolicyRuntime {
  /** Timers of health checks (background: unref'd by default). */
  timers: Timers;
  /** Health check jitter. */
  random: () => number;
  /** Opens an undici Pool (health checks, policy-owned connection pools). */
  createPool(origin: string, options: Pool.Options): Dispatcher;
}

const DEFAULT_RUNTIME: BackendPolicyRuntime = {
  timers: backgroundTimers,
  random: Math.random,
  createPool: (origin, options) => new undici.Pool(origin, options),
};

export interface BackendPolicySnapshot {
  key: string;
  endpoints: {
    endpoint: string;
    healthy: boolean;
    ejected: boolean;
    failedActiveHealthCheck: boolean;
  }[];
  panic: boolean;
  circuitBreaker: CircuitBreakerSnapshot;
  outlierDetection?: OutlierSnapshot;
}

/** The policy of one backend of one rule, with the state its layers keep. */
export class BackendPolicy {
  readonly health: EndpointHealth;
  readonly lb: LoadBalancer;
  readonly hashPolicy: HashPolicy | undefined;
  readonly outlier: OutlierDetector | undefined;
  readonly healthChecker: ActiveHealthChecker | undefined;
  readonly retry: RetryPolicy | undefined;
  readonly fault: FaultInjection | undefined;
  readonly requestTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  /** Policy-owned pool per endpoint (connection settings), else undefined: the shared pools. */
  readonly pools: readonly Dispatcher[] | undefined;

  constructor(
    readonly key: string,
    readonly endpoints: readonly Endpoint[],
    readonly settings: BackendPolicySettings,
    /** Identifies the spec and rule it was compiled from, to recognise it after a reload. */
    readonly fingerprint: string,
    readonly breaker: CircuitBreaker,
    pools: readonly Dispatcher[] | undefined,
    healthCheckDeps: {
      timers: Timers;
      random: () => number;
      openDispatcher(origin: string): HealthCheckDispatcher;
    },
  ) {
    this.health = new EndpointHealth(endpoints.length, settings.panicThreshold);
    this.lb = createLoadBalancer(settings.loadBalancer, endpoints, this.health);
    this.hashPolicy =
      settings.loadBalancer.type === 'ConsistentHash' ? settings.loadBalancer.hash : undefined;
    this.outlier = settings.outlierDetection
      ? new OutlierDetector(settings.outlierDetection, endpoints, this.health)
      : undefined;
    const outlier = this.outlier;
    this.healthChecker = settings.activeHealthCheck
      ? new ActiveHealthChecker(settings.activeHealthCheck, endpoints, healthCheckDeps, {
          onChange: (i, healthy) => this.health.setActiveFailed(i, !healthy),
          onPass: outlier ? (i) => outlier.onActiveHealthCheckPassed(i) : undefined,
        })
      : undefined;
    this.retry = settings.retry ? new RetryPolicy(settings.retry) : undefined;
    this.fault = settings.fault ? new FaultInjection(settings.fault) : undefined;
    this.requestTimeoutMs = settings.requestTimeoutMs;
    this.attemptTimeoutMs = settings.attemptTimeoutMs;
    this.pools = pools;
  }

  /** Chooses an endpoint index (-1: none available), avoiding `tried` ones when it can. */
  choose(
    random: () => number,
    now: number,
    hash: number | undefined,
    tried: readonly number[] | undefined,
  ): number {
    this.outlier?.advance(now);
    return chooseEndpoint(this.lb, random, hash, tried);
  }

  /** The upstream answered with `status` (its status line). */
  onResponse(i: number, status: number, now: number): void {
    this.outlier?.onResponse(i, status, now);
  }

  /** An attempt failed without an answer. */
  onLocalOriginFailure(i: number, kind: LocalOriginFailure, now: number): void {
    this.outlier?.onLocalOriginFailure(i, kind, now);
  }

  snapshot(now: number): BackendPolicySnapshot {
    return {
      key: this.key,
      endpoints: this.endpoints.map((e, i) => ({
        endpoint: e.origin,
        healthy: this.health.healthy(i),
        ejected: this.health.isEjected(i),
        failedActiveHealthCheck: this.health.isActiveFailed(i),
      })),
      panic: this.health.panic,
      circuitBreaker: this.breaker.snapshot(),
      ...(this.outlier ? { outlierDetection: this.outlier.snapshot(now) } : {}),
    };
  }
}

export interface BackendPolicyRequest {
  /** Effective policy id (a key of Snapshot.effectivePolicies). */
  policyId: string;
  /** What the state is kept for besides policy and backend: the route rule at the edge. */
  scope: string;
  /** "namespace/name:port". */
  backend: string;
  endpoints: readonly Endpoint[];
  spec: unknown;
  rule?: RouteRuleTraffic;
  /** Host header of HTTP health checks when the policy names none (the route's hostname). */
  defaultHost?: string;
}

/**
 * Every BackendPolicy of one view. Built with the previous view's set, it adopts what did not
 * change and carries the state of what did; `activate` then starts its health checks and stops
 * what the previous set had and this one dropped; `close` stops everything.
 */
export class BackendPolicies {
  private readonly policies = new Map<string, BackendPolicy>();
  private readonly ownedPools = new Map<string, Dispatcher>();
  private readonly runtime: BackendPolicyRuntime;
  private previous: BackendPolicies | undefined;
  private activated = false;
  private closed = false;

  constructor(runtime: Partial<BackendPolicyRuntime> = {}, previous?: BackendPolicies) {
    this.runtime = { ...DEFAULT_RUNTIME, ...runtime };
    this.previous = previous;
  }

  get size(): number {
    return this.policies.size;
  }

  /** The BackendPolicy for a backend of a rule, or why the policy cannot be applied. */
  get(req: BackendPolicyRequest): BackendPolicy | { error: string } {
    const key = `${req.policyId}|${req.scope}|${req.backend}`;
    const fingerprint = JSON.stringify([req.spec, req.rule ?? null, req.defaultHost ?? null]);
    const existing = this.policies.get(key);
    if (existing) return existing;
    const old = this.previous?.policies.get(key);
    if (old && old.fingerprint === fingerprint && sameEndpoints(old.endpoints, req.endpoints)) {
      this.policies.set(key, old);
      this.adoptPools(old);
      return old;
    }
    const settings = compileBackendPolicySettings(
      (req.spec ?? {}) as PolicySpec,
      req.rule,
      req.defaultHost !== undefined ? { defaultHost: req.defaultHost } : {},
    );
    if ('error' in settings) return settings;
    const breaker = old?.breaker ?? new CircuitBreaker(settings.circuitBreaker);
    if (old) breaker.update(settings.circuitBreaker);
    const policy = new BackendPolicy(
      key,
      req.endpoints,
      settings,
      fingerprint,
      breaker,
      settings.connection ? this.poolsFor(req.endpoints, settings.connection) : undefined,
      this.healthCheckDeps(settings.activeHealthCheck),
    );
    if (old?.outlier && policy.outlier) policy.outlier.carryFrom(old.outlier);
    if (
      old?.healthChecker &&
      policy.healthChecker &&
      JSON.stringify(old.settings.activeHealthCheck) === JSON.stringify(settings.activeHealthCheck)
    )
      policy.healthChecker.carryFrom(old.healthChecker);
    this.policies.set(key, policy);
    if (this.activated) policy.healthChecker?.start();
    return policy;
  }

  /** Starts the health checks of this set; stops what the previous set had that this one dropped. */
  activate(): void {
    if (this.activated || this.closed) return;
    this.activated = true;
    for (const p of this.policies.values()) p.healthChecker?.start();
    const previous = this.previous;
    this.previous = undefined;
    if (previous) void previous.retire(this);
  }

  /** Stops every health check and closes the pools this set owns. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.previous = undefined;
    const work: Promise<unknown>[] = [];
    for (const p of this.policies.values()) if (p.healthChecker) work.push(p.healthChecker.stop());
    for (const pool of this.ownedPools.values()) work.push(pool.close().catch(() => undefined));
    this.ownedPools.clear();
    await Promise.all(work);
  }

  /** Health checks running and check work pending, across the set (0 after close). */
  get pendingHealthCheckWork(): number {
    let n = 0;
    for (const p of this.policies.values()) n += p.healthChecker?.pendingWork ?? 0;
    return n;
  }

  policy(key: string): BackendPolicy | undefined {
    return this.policies.get(key);
  }

  snapshot(now: number): BackendPolicySnapshot[] {
    return [...this.policies.values()].map((p) => p.snapshot(now));
  }

  /** Stops what `next` did not take over (it runs once `next` is serving). */
  private async retire(next: BackendPolicies): Promise<void> {
    this.closed = true;
    const work: Promise<unknown>[] = [];
    for (const [key, p] of this.policies)
      if (next.policies.get(key) !== p && p.healthChecker) work.push(p.healthChecker.stop());
    for (const [key, pool] of this.ownedPools)
      if (next.ownedPools.get(key) !== pool) work.push(pool.close().catch(() => undefined));
    this.ownedPools.clear();
    await Promise.all(work);
  }

  private poolKey(origin: string, c: ConnectionSettings): string {
    return `${origin}|${JSON.stringify(c)}`;
  }

  private adoptPools(p: BackendPolicy): void {
    const c = p.settings.connection;
    if (!c || !p.pools) return;
    p.endpoints.forEach((e, i) =>
      this.ownedPools.set(this.poolKey(e.origin, c), p.pools?.[i] as Dispatcher),
    );
  }

  private poolsFor(endpoints: readonly Endpoint[], c: ConnectionSettings): Dispatcher[] {
    const d = DEFAULT_UPSTREAM_POOL_OPTIONS;
    return endpoints.map((e) => {
      const key = this.poolKey(e.origin, c);
      let pool = this.ownedPools.get(key) ?? this.previous?.ownedPools.get(key);
      if (!pool) {
        const keepAlive = c.idleTimeoutMs ?? d.keepAliveTimeoutMs;
        pool = this.runtime.createPool(e.origin, {
          connections: c.maxConnectionsPerEndpoint ?? d.connections,
          keepAliveTimeout: keepAlive,
          keepAliveMaxTimeout: keepAlive,
          connect: { timeout: c.connectTimeoutMs ?? d.connectTimeoutMs },
          pipelining: 1,
          ...(c.maxConnectionDurationMs !== undefined
            ? { clientTtl: c.maxConnectionDurationMs }
            : {}),
          ...(c.maxRequestsPerConnection !== undefined
            ? { maxRequestsPerClient: c.maxRequestsPerConnection }
            : {}),
        });
      }
      this.ownedPools.set(key, pool);
      return pool;
    });
  }

  private healthCheckDeps(hc: ActiveHealthCheckConfig | undefined) {
    const keepAlive = Math.max(4_000, (hc?.intervalMs ?? 0) * 2);
    return {
      timers: this.runtime.timers,
      random: this.runtime.random,
      openDispatcher: (origin: string) =>
        this.runtime.createPool(origin, {
          connections: 1,
          pipelining: 1,
          keepAliveTimeout: keepAlive,
          keepAliveMaxTimeout: keepAlive,
          connect: { timeout: hc?.timeoutMs ?? 1_000 },
        }),
    };
  }
}

function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  return a.length === b.length && a.every((e, i) => e.origin === b[i]?.origin);
}
