// The process's Prometheus metrics: one registry that every layer registers its metrics in, and
// that the admin servers expose (GET /stats/prometheus, GET /metrics) with metricsText().
// prom-client: the Prometheus client most Node services use, maintained, with the text and
// OpenMetrics formats, default process metrics, and AggregatorRegistry for the supervisor's
// worker processes (each worker has its own registry; the supervisor can merge them).

import { Counter, Registry, type Metric } from 'prom-client';

export const metricsRegistry = new Registry();

/** Requests that did not match their API's OpenAPI document (ReportOnly and Enforce alike). */
export const openapiViolations = new Counter({
  name: 'meshgate_openapi_violations_total',
  help: 'Requests that did not match the OpenAPI document of their ApiDefinition, by API ("namespace/name"), operation (operationId, or "METHOD /template") and location (path, query, header, cookie, body, operation).',
  labelNames: ['api', 'operation', 'location'] as const,
  registers: [metricsRegistry],
});

/** The Content-Type of metricsText(). */
export const METRICS_CONTENT_TYPE = metricsRegistry.contentType;

/** Every metric in the Prometheus text exposition format. */
export function metricsText(): Promise<string> {
  return metricsRegistry.metrics();
}

/** What Registry.getMetricsAsJSON() gives: the form in which worker processes hand over metrics. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** One sample: `metricName` for a histogram's _bucket, _sum and _count lines. */
export interface MetricSample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * A metric whose samples are read from the caller's own numbers when the registry is scraped.
 * The hot path then bumps plain fields instead of going through prom-client's labelled children,
 * which build and look up a label-hash string on every inc() and observe() (≈0.3 µs each).
 * Aggregated across processes by summing, as prom-client's own metrics are.
 */
export function registerCollectedMetric(definition: {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  samples: () => MetricSample[];
}): void {
  const { name, help, type, samples } = definition;
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: () => Promise.resolve({ name, help, type, aggregator: 'sum', values: samples() }),
    // Registry.resetMetrics() calls it; the numbers belong to their owners.
    reset: () => {},
  };
  metricsRegistry.registerMetric(metric as unknown as Metric);
}

/** The _bucket (cumulative, with +Inf), _sum and _count samples of one histogram series. */
export function histogramSamples(
  name: string,
  labels: Record<string, string>,
  bounds: readonly number[],
  counts: ArrayLike<number>,
  sum: number,
  count: number,
): MetricSample[] {
  const out: MetricSample[] = [];
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    cumulative += counts[i] as number;
    out.push({
      value: cumulative,
      labels: { ...labels, le: bounds[i] as number },
      metricName: `${name}_bucket`,
    });
  }
  out.push(
    { value: count, labels: { ...labels, le: '+Inf' }, metricName: `${name}_bucket` },
    { value: sum, labels, metricName: `${name}_sum` },
    { value: count, labels, metricName: `${name}_count` },
  );
  return out;
}
