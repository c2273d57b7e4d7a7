// The process's Prometheus metrics: one registry that every layer registers its metrics in, and
// that the admin servers expose (GET /stats/prometheus, GET /metrics) with metricsText().
// prom-client: the Prometheus client most Node services use, maintained, with the text and
// OpenMetrics formats, default process metrics, and AggregatorRegistry for the supervisor's
// worker processes (each worker has its own registry; the supervisor can merge them).

import { Counter, Registry } from 'prom-client';

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
