// The control plane's metrics, in the process registry that GET /metrics exposes
// (shared/telemetry/metrics.ts).

import { Counter, Gauge } from 'prom-client';
import { metricsRegistry } from '../../shared/telemetry/metrics.ts';

export const connectedProxies = new Gauge({
  name: 'meshgate_control_plane_connected_proxies',
  help: 'Proxies with an open discovery stream, by kind (sidecar, gateway).',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

export const registeredEndpoints = new Gauge({
  name: 'meshgate_control_plane_registered_endpoints',
  help: 'Sidecar endpoints registered by open discovery streams.',
  registers: [metricsRegistry],
});

export const viewPushes = new Counter({
  name: 'meshgate_control_plane_pushes_total',
  help: 'Views sent to proxies (on connect and on change), by kind.',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

export const viewNacks = new Counter({
  name: 'meshgate_control_plane_nacks_total',
  help: 'Views that proxies refused (NACK), by kind.',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

export const configRejections = new Counter({
  name: 'meshgate_control_plane_config_rejections_total',
  help: 'Reloads of the config folder that did not parse; the last good snapshot kept serving.',
  registers: [metricsRegistry],
});

export const certificatesIssued = new Counter({
  name: 'meshgate_control_plane_certificates_issued_total',
  help: 'Workload certificates issued, by how the proxy authenticated (token, certificate).',
  labelNames: ['auth'] as const,
  registers: [metricsRegistry],
});
