// The sidecar's Prometheus metrics, in the process registry (shared/telemetry/metrics.ts) that
// the metrics port exposes. Names follow Istio's standard metrics where one fits
// (istio_requests_total → meshgate_sidecar_requests_total, by direction instead of reporter).

import { Counter, Gauge } from 'prom-client';
import {
  metricsRegistry,
  registerCollectedMetric,
  type MetricSample,
} from '../../shared/telemetry/metrics.ts';
import { RequestCounts } from '../../shared/telemetry/request-counts.ts';

/** Requests by direction: the hot path records into these plain numbers (request-counts.ts). */
export const requestCounts = {
  inbound: new RequestCounts({ direction: 'inbound' }),
  outbound: new RequestCounts({ direction: 'outbound' }),
} as const;

registerCollectedMetric({
  name: 'meshgate_sidecar_requests_total',
  help: 'Requests handled by the sidecar, by direction (inbound, outbound), response status and response flags.',
  type: 'counter',
  samples: () => {
    const out: MetricSample[] = [];
    requestCounts.inbound.requestSamples(out);
    requestCounts.outbound.requestSamples(out);
    return out;
  },
});

registerCollectedMetric({
  name: 'meshgate_sidecar_request_duration_seconds',
  help: 'Time from a request arriving at the sidecar to its response ending, by direction.',
  type: 'histogram',
  samples: () => {
    const out: MetricSample[] = [];
    requestCounts.inbound.durationSamples('meshgate_sidecar_request_duration_seconds', out);
    requestCounts.outbound.durationSamples('meshgate_sidecar_request_duration_seconds', out);
    return out;
  },
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
