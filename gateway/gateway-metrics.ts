// The edge gateway's Prometheus metrics, named like the sidecar's (mesh/sidecar/sidecar-metrics.ts):
//
//   meshgate_gateway_requests_total{port,listener,route,status,flags}
//   meshgate_gateway_request_duration_seconds{port,listener,route}        histogram
//   meshgate_gateway_upstream_errors_total{port,listener,route,flags}      UF, UR, UT, UH, UO answers
//   meshgate_gateway_active_connections{port}                              gauge
//   meshgate_gateway_connections_total{port}, meshgate_gateway_connections_refused_total{port}
//
// (rate-limited requests: meshgate_ratelimit_limited_total{policy}, ratelimit/metrics.ts, and the
// requests with flags "RL"). `port` is the listener port from config, `listener` the listener
// ("namespace/gateway/listener") and `route` the rule ("httproute/NS/NAME/rule/I"), "none" when
// no rule matched: label values come from config, never from requests, so the series stay few.
//
// The request path bumps numbers in a RouteMetrics that the view hands it (one per port, listener
// and rule, looked up when the view is compiled, kept across views so counters never go back);
// the registry reads them when scraped. Each worker process has its own; the supervisor sums them.

import { registerCollectedMetric, type MetricSample } from '../shared/telemetry/metrics.ts';
import { RequestCounts } from '../shared/telemetry/request-counts.ts';

/** Response flags of an answer the upstream caused (shared/proxy/errors.ts). */
const UPSTREAM_ERROR_FLAGS = new Set(['UF', 'UR', 'UT', 'UH', 'UO']);

export const NO_ROUTE = 'none';

/** The counts of one port, listener and route rule. */
export class RouteMetrics extends RequestCounts {
  /** flag → requests. */
  private readonly upstreamErrors = new Map<string, number>();

  constructor(override readonly labels: { port: string; listener: string; route: string }) {
    super(labels);
  }

  /** One finished request: status 0 when no response was started. */
  override record(status: number, flags: string, seconds: number): void {
    super.record(status, flags, seconds);
    if (flags !== '-' && UPSTREAM_ERROR_FLAGS.has(flags))
      this.upstreamErrors.set(flags, (this.upstreamErrors.get(flags) ?? 0) + 1);
  }

  upstreamErrorSamples(out: MetricSample[]): void {
    for (const [flags, value] of this.upstreamErrors)
      out.push({ value, labels: { ...this.labels, flags } });
  }
}

/** Connections of one listener port, across the servers of this process. */
export class PortConnections {
  active = 0;
  accepted = 0;
  refused = 0;
  constructor(readonly port: string) {}
}

const routeMetrics = new Map<string, RouteMetrics>();
const portConnections = new Map<string, PortConnections>();

/** The RouteMetrics of a port, listener and rule: the same object for as long as the process runs. */
export function metricsFor(port: number, listener: string, route: string): RouteMetrics {
  const key = `${port}|${listener}|${route}`;
  let m = routeMetrics.get(key);
  if (!m) routeMetrics.set(key, (m = new RouteMetrics({ port: String(port), listener, route })));
  return m;
}

export function connectionsOf(port: number): PortConnections {
  const key = String(port);
  let c = portConnections.get(key);
  if (!c) portConnections.set(key, (c = new PortConnections(key)));
  return c;
}

function fromRoutes(collect: (m: RouteMetrics, out: MetricSample[]) => void): () => MetricSample[] {
  return () => {
    const out: MetricSample[] = [];
    for (const m of routeMetrics.values()) collect(m, out);
    return out;
  };
}

function fromPorts(read: (c: PortConnections) => number): () => MetricSample[] {
  return () =>
    [...portConnections.values()].map((c) => ({ value: read(c), labels: { port: c.port } }));
}

registerCollectedMetric({
  name: 'meshgate_gateway_requests_total',
  help: 'Requests the edge gateway answered, by listener port, listener ("namespace/gateway/listener"), route rule ("httproute/NS/NAME/rule/I"; "none" when no rule matched), response status (0: none was sent) and response flags.',
  type: 'counter',
  samples: fromRoutes((m, out) => m.requestSamples(out)),
});

registerCollectedMetric({
  name: 'meshgate_gateway_request_duration_seconds',
  help: 'Time from a request arriving at the edge gateway to its response ending, by listener port, listener and route rule.',
  type: 'histogram',
  samples: fromRoutes((m, out) =>
    m.durationSamples('meshgate_gateway_request_duration_seconds', out),
  ),
});

registerCollectedMetric({
  name: 'meshgate_gateway_upstream_errors_total',
  help: 'Requests answered with an upstream failure, by listener port, listener, route rule and response flag (UF: connect failure, UR: reset, UT: timeout, UH: no healthy endpoint, UO: circuit breaker open).',
  type: 'counter',
  samples: fromRoutes((m, out) => m.upstreamErrorSamples(out)),
});

registerCollectedMetric({
  name: 'meshgate_gateway_active_connections',
  help: 'Client connections open on the edge gateway, by listener port.',
  type: 'gauge',
  samples: fromPorts((c) => c.active),
});

registerCollectedMetric({
  name: 'meshgate_gateway_connections_total',
  help: 'Client connections the edge gateway accepted, by listener port.',
  type: 'counter',
  samples: fromPorts((c) => c.accepted),
});

registerCollectedMetric({
  name: 'meshgate_gateway_connections_refused_total',
  help: "Client connections closed unanswered because the port's ClientTrafficPolicy connection limit was reached (after its closeDelay, if any), by listener port.",
  type: 'counter',
  samples: fromPorts((c) => c.refused),
});
