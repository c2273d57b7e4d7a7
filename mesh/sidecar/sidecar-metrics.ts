// The sidecar's Prometheus metrics, in the process registry (shared/telemetry/metrics.ts) that
// the metrics port exposes. Names follow Istio's standard metrics where one fits
// (istio_requests_total → meshgate_sidecar_requests_total, by direction instead of reporter).

import { Counter, Gauge, Histogram } from 'prom-client';
import { metricsRegistry } from '../../shared/telemetry/metrics.ts';

export const requestsTotal = new Counter({
  name: 'meshgate_sidecar_requests_total',
  help: 'Requests handled by the sidecar, by direction (inbound, outbound), response status and response flags.',
  labelNames: ['direction', 'status', 'flags'] as const,
  registers: [metricsRegistry],
});

export const requestDuration = new Histogram({
  name: 'meshgate_sidecar_request_duration_seconds',
  help: 'Time from a request arriving at the sidecar to its response ending, by direction.',
  labelNames: ['direction'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [metricsRegistry],
});

export const authzDenials = new Counter({
  name: 'meshgate_sidecar_authz_denials_total',
  help: 'Inbound requests refused by RequestAuthentication or AuthorizationPolicy, by the policy that decided ("-" when none did: no ALLOW policy matched, or the token was invalid).',
  labelNames: ['policy', 'status'] as const,
  registers: [metricsRegistry],
});

export const mtlsHandshakes = new Counter({
  name: 'meshgate_sidecar_mtls_handshakes_total',
  help: 'mTLS handshakes, by direction (inbound: peers calling us; outbound: us calling peers) and result (ok, failed).',
  labelNames: ['direction', 'result'] as const,
  registers: [metricsRegistry],
});

export const plaintextConnections = new Counter({
  name: 'meshgate_sidecar_inbound_plaintext_connections_total',
  help: 'Inbound connections accepted in plaintext (PeerAuthentication PERMISSIVE or DISABLE).',
  registers: [metricsRegistry],
});

export const certificateExpiry = new Gauge({
  name: 'meshgate_sidecar_certificate_expiry_timestamp_seconds',
  help: 'When the current workload certificate expires (seconds since the epoch).',
  registers: [metricsRegistry],
});

export const certificateRotations = new Counter({
  name: 'meshgate_sidecar_certificate_rotations_total',
  help: 'Workload certificates replaced by a renewed one.',
  registers: [metricsRegistry],
});

export const viewsApplied = new Counter({
  name: 'meshgate_sidecar_views_total',
  help: 'Views received from the control plane, by result (ack: applied; nack: refused, the previous one kept).',
  labelNames: ['result'] as const,
  registers: [metricsRegistry],
});
