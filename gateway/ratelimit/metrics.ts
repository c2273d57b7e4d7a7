// Rate-limit metrics, in the process's one registry (shared/telemetry/metrics.ts). The backend
// ones live in the process that talks to Redis: the supervisor, or an in-process gateway.

import { Counter, Gauge } from 'prom-client';
import { metricsRegistry } from '../../shared/telemetry/metrics.ts';

export const rateLimitBackendErrors = new Counter({
  name: 'meshgate_ratelimit_backend_errors_total',
  help: 'Failed calls to the global rate-limit backend (lease commands and connection attempts), by backend.',
  labelNames: ['backend'] as const,
  registers: [metricsRegistry],
});

export const rateLimitBackendUp = new Gauge({
  name: 'meshgate_ratelimit_backend_up',
  help: 'Whether the global rate-limit backend is reachable (1) or not (0), by backend.',
  labelNames: ['backend'] as const,
  registers: [metricsRegistry],
});

/** Counted only when a request is refused, so admitted requests pay nothing for it. */
export const rateLimitRefused = new Counter({
  name: 'meshgate_ratelimit_limited_total',
  help: 'Requests answered 429 by a rate limit, by policy (the RateLimit-Policy name).',
  labelNames: ['policy'] as const,
  registers: [metricsRegistry],
});
