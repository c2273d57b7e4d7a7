// What a listener port applies of its ClientTrafficPolicy besides client IP detection and path
// normalization: the header-name rule, rate-limit headers, and the connection settings of the
// port's server (timeouts, connection limit, requests per connection). Compiled once per view;
// the server and the request path only read the result.

import { durationToMs } from '../shared/config/duration.ts';
import type {
  ClientConnectionSpec,
  ClientTimeoutSpec,
  HeaderSettingsSpec,
} from '../shared/config/schemas/envoy-gateway.ts';

export type UnderscoresAction = 'Allow' | 'RejectRequest' | 'DropHeader';

/**
 * The header-name rule without a policy, or with one that leaves withUnderscoresAction out:
 * Envoy Gateway's default, reject (400), with or without a policy. A backend that reads
 * X_User and X-User as the same variable (CGI, WSGI, PHP) could otherwise be handed a header
 * the gateway never checked; a listener that must accept them says `Allow`.
 */
export const DEFAULT_UNDERSCORES_ACTION: UnderscoresAction = 'RejectRequest';

export interface ClientTrafficSettings {
  /** headers.withUnderscoresAction. */
  underscores: UnderscoresAction;
  /** False when headers.disableRateLimitHeaders: no RateLimit-Policy, RateLimit, X-RateLimit-*. */
  rateLimitHeaders: boolean;
  /** timeout.http.requestReceivedTimeout in ms (0: none); undefined: the server's default. */
  requestReceivedMs: number | undefined;
  /** timeout.http.idleTimeout in ms (0: none); undefined: the server's default. */
  idleMs: number | undefined;
  /** timeout.http.streamIdleTimeout in ms; 0: none (the default). */
  streamIdleMs: number;
  /** connection.connectionLimit.value for the whole process; 0: no limit. */
  connectionLimit: number;
  /** connection.connectionLimit.closeDelay in ms: how long a refused connection is held first. */
  closeDelayMs: number;
  /** connection.connectionLimit.maxRequestsPerConnection; 0: no limit. */
  maxRequestsPerConnection: number;
}

/** A port without a ClientTrafficPolicy. */
export const DEFAULT_CLIENT_TRAFFIC: ClientTrafficSettings = Object.freeze({
  underscores: DEFAULT_UNDERSCORES_ACTION,
  rateLimitHeaders: true,
  requestReceivedMs: undefined,
  idleMs: undefined,
  streamIdleMs: 0,
  connectionLimit: 0,
  closeDelayMs: 0,
  maxRequestsPerConnection: 0,
});

/** The parts of a ClientTrafficPolicy spec this module reads (fields not applied are removed at compile). */
export interface ClientTrafficSpec {
  headers?: Pick<HeaderSettingsSpec, 'withUnderscoresAction' | 'disableRateLimitHeaders'>;
  timeout?: ClientTimeoutSpec;
  connection?: Pick<ClientConnectionSpec, 'connectionLimit'>;
}

export function compileClientTraffic(spec: ClientTrafficSpec | undefined): ClientTrafficSettings {
  if (!spec) return DEFAULT_CLIENT_TRAFFIC;
  const http = spec.timeout?.http;
  const limit = spec.connection?.connectionLimit;
  const ms = (d: string | undefined) => (d === undefined ? undefined : durationToMs(d));
  return {
    underscores: spec.headers?.withUnderscoresAction ?? DEFAULT_UNDERSCORES_ACTION,
    rateLimitHeaders: spec.headers?.disableRateLimitHeaders !== true,
    requestReceivedMs: ms(http?.requestReceivedTimeout),
    idleMs: ms(http?.idleTimeout),
    streamIdleMs: ms(http?.streamIdleTimeout) ?? 0,
    connectionLimit: limit?.value ?? 0,
    closeDelayMs: ms(limit?.closeDelay) ?? 0,
    maxRequestsPerConnection: limit?.maxRequestsPerConnection ?? 0,
  };
}

/**
 * How many connections one worker admits when `workers` processes share a port (node:cluster
 * hands each new connection to the next worker in turn): the limit split evenly, rounded up, so
 * a small limit never shuts a worker out. Together the workers may hold up to workers − 1
 * connections more than the limit; with one worker it is exact.
 */
export function connectionLimitPerWorker(limit: number, workers: number): number {
  return limit > 0 ? Math.ceil(limit / Math.max(1, workers)) : 0;
}
