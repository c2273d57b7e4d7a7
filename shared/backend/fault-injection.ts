// Envoy's fault filter as Envoy Gateway's BackendTrafficPolicy `faultInjection` configures it: a
// share of requests is delayed (fixedDelay, flag DI), a share is aborted (httpStatus or
// grpcStatus, flag FI), each drawn on its own; a request may be delayed and then aborted, as
// Envoy delays first and aborts after the delay. Percentages are 0–100 (default 100).

export interface FaultInjectionConfig {
  delay?: { ms: number; percentage: number };
  abort?: FaultAbort & { percentage: number };
}

export type FaultAbort = { httpStatus: number } | { grpcStatus: number };

export class FaultInjection {
  constructor(readonly config: FaultInjectionConfig) {}

  /** The delay to apply to this request, 0 for none. */
  delayMs(random: () => number): number {
    const d = this.config.delay;
    return d && d.ms > 0 && drawn(d.percentage, random) ? d.ms : 0;
  }

  /** The abort to answer this request with, or undefined. */
  abort(random: () => number): FaultAbort | undefined {
    const a = this.config.abort;
    return a && drawn(a.percentage, random) ? a : undefined;
  }
}

function drawn(percentage: number, random: () => number): boolean {
  if (percentage >= 100) return true;
  if (percentage <= 0) return false;
  return random() * 100 < percentage;
}
