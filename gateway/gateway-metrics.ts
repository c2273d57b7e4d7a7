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

import {
  histogramSamples,
  registerCollectedMetric,
  type MetricSample,
} from '../shared/telemetry/metrics.ts';

/** Seconds; the sidecar's buckets. */
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** Response flags of an answer the upstream caused (shared/proxy/errors.ts). */
const UPSTREAM_ERROR_FLAGS = new Set(['UF', 'UR', 'UT', 'UH', 'UO']);

export const NO_ROUTE = 'none';

/** The counts of one port, listener and route rule. */
export class RouteMetrics {
  /** status → flags → requests. */
  private readonly requests = new Map<number, Map<string, number>>();
  /** Per bucket, not cumulative; the last slot is over the largest bound. */
  private readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  private durationSum = 0;
  private durationCount = 0;
  /** flag → requests. */
  private readonly upstreamErrors = new Map<string, number>();

  constructor(readonly labels: { port: string; listener: string; route: string }) {}

  /** One finished request: status 0 when no response was started. */
  record(status: number, flags: string, seconds: number): void {
    let byFlags = this.requests.get(status);
    if (!byFlags) this.requests.set(status, (byFlags = new Map()));
    byFlags.set(flags, (byFlags.get(flags) ?? 0) + 1);
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.durationSum += seconds;
    this.durationCount++;
    if (flags !== '-' && UPSTREAM_ERROR_FLAGS.has(flags))
      this.upstreamErrors.set(flags, (this.upstreamErrors.get(flags) ?? 0) + 1);
  }

  requestSamples(out: MetricSample[]): void {
    for (const [status, byFlags] of this.requests)
      for (const [flags, value] of byFlags)
        out.push({ value, labels: { ...this.labels, status: String(status), flags } });
  }

  durationSamples(out: MetricSample[]): void {
    if (this.durationCount === 0) return;
    out.push(
      ...histogramSamples(
        'meshgate_gateway_request_duration_seconds',
        this.labels,
        DURATION_BUCKETS,
        this.buckets,
        this.durationSum,
        this.durationCount,
      ),
    );
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
  samples: fromRoutes((m, out) => m.durationSamples(out)),
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
