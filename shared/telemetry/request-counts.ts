// Requests by status and response flags, and their durations as a histogram, kept in plain
// numbers that the registry reads when scraped (registerCollectedMetric). The gateway keeps one
// per listener and route rule, a sidecar one per direction; recording a request is a few map
// and array updates, where prom-client's labelled Counter and Histogram would build and look up
// a label-hash string for each.

import { histogramSamples, type MetricSample } from './metrics.ts';

/** Seconds. */
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

export class RequestCounts {
  /** status → flags → requests. */
  private readonly requests = new Map<number, Map<string, number>>();
  /** Per bucket, not cumulative; the last slot is over the largest bound. */
  private readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  private durationSum = 0;
  private durationCount = 0;

  constructor(readonly labels: Readonly<Record<string, string>>) {}

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
  }

  /** The counter's samples, labelled with ours plus status and flags. */
  requestSamples(out: MetricSample[]): void {
    for (const [status, byFlags] of this.requests)
      for (const [flags, value] of byFlags)
        out.push({ value, labels: { ...this.labels, status: String(status), flags } });
  }

  /** The histogram `name`'s samples (none before the first request). */
  durationSamples(name: string, out: MetricSample[]): void {
    if (this.durationCount === 0) return;
    out.push(
      ...histogramSamples(
        name,
        this.labels,
        DURATION_BUCKETS,
        this.buckets,
        this.durationSum,
        this.durationCount,
      ),
    );
  }
}
