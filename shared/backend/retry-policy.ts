// Retries as Envoy's router makes them (config_http_filters_router "x-envoy-retry-on") with the
// policy Envoy Gateway builds (internal/xds/translator/route.go buildRetryPolicy):
//
// - numRetries default 2; retryOn unset: connect-failure, refused-stream, unavailable, cancelled
//   and retriable-status-codes with [503]; httpStatusCodes, when given, replace that [503].
// - Triggers: 5xx (any 5xx answer, and any reset, connect failure or per-try timeout),
//   gateway-error (502/503/504, and the same failures), reset (resets, connect failures and per-try
//   timeouts), connect-failure, refused-stream (an HTTP/2 REFUSED_STREAM, which undici surfaces as a
//   reset; meshgate's pools speak HTTP/1.1, so it never fires), reset-before-request (failures before
//   the request went out: connect failures), retriable-4xx (409), retriable-status-codes. The gRPC
//   triggers (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable) read
//   grpc-status, which the retry hook does not see: they never fire.
// - Overflow (circuit breaker) is never retried, nor is the request timeout (only per-try ones).
// - Back-off: fully jittered exponential, uniform in [0, (2^N − 1) × base) for the Nth retry,
//   capped at maxInterval (default 10 × base); base default 25 ms.
// - perRetry.timeout bounds every attempt, the first one included (Envoy's per_try_timeout).
//
// A request whose body is being streamed is never retried: the body cannot be sent twice. One that
// an earlier layer read completely (a Buffer) is replayed on every attempt.

export type RetryTrigger =
  | '5xx'
  | 'gateway-error'
  | 'reset'
  | 'reset-before-request'
  | 'connect-failure'
  | 'retriable-4xx'
  | 'refused-stream'
  | 'retriable-status-codes'
  | 'cancelled'
  | 'deadline-exceeded'
  | 'internal'
  | 'resource-exhausted'
  | 'unavailable';

/** How an attempt that produced no answer ended. */
export type AttemptFailure = 'connect-failure' | 'reset' | 'per-try-timeout' | 'overflow';

/** An attempt's outcome: the upstream's status, or how it failed. */
export type AttemptOutcome = number | AttemptFailure;

export const DEFAULT_RETRY_ON: readonly RetryTrigger[] = [
  'connect-failure',
  'refused-stream',
  'unavailable',
  'cancelled',
  'retriable-status-codes',
];
export const DEFAULT_NUM_RETRIES = 2;
export const DEFAULT_RETRIABLE_STATUS_CODES: readonly number[] = [503];
export const DEFAULT_BACKOFF_BASE_MS = 25;

export interface RetryPolicyConfig {
  numRetries: number;
  triggers: readonly RetryTrigger[];
  /** For retriable-status-codes. */
  statusCodes: readonly number[];
  /** 0: attempts are bounded only by the request timeout. */
  perTryTimeoutMs: number;
  baseIntervalMs: number;
  /** Default 10 × baseIntervalMs. */
  maxIntervalMs?: number;
}

const ON_5XX = 1;
const ON_GATEWAY_ERROR = 2;
const ON_RESET = 4;
const ON_RESET_BEFORE_REQUEST = 8;
const ON_CONNECT_FAILURE = 16;
const ON_RETRIABLE_4XX = 32;
const ON_STATUS_CODES = 64;

const TRIGGER_BITS: Partial<Record<RetryTrigger, number>> = {
  '5xx': ON_5XX,
  'gateway-error': ON_GATEWAY_ERROR,
  reset: ON_RESET,
  'reset-before-request': ON_RESET_BEFORE_REQUEST,
  'connect-failure': ON_CONNECT_FAILURE,
  'retriable-4xx': ON_RETRIABLE_4XX,
  'retriable-status-codes': ON_STATUS_CODES,
};

export class RetryPolicy {
  readonly numRetries: number;
  readonly perTryTimeoutMs: number;
  readonly baseIntervalMs: number;
  readonly maxIntervalMs: number;
  private readonly on: number;
  private readonly codes: ReadonlySet<number>;

  constructor(readonly config: RetryPolicyConfig) {
    this.numRetries = config.numRetries;
    this.perTryTimeoutMs = config.perTryTimeoutMs;
    this.baseIntervalMs = config.baseIntervalMs;
    this.maxIntervalMs = config.maxIntervalMs ?? config.baseIntervalMs * 10;
    let on = 0;
    for (const t of config.triggers) on |= TRIGGER_BITS[t] ?? 0;
    this.on = on;
    this.codes = new Set(config.statusCodes);
  }

  /** Whether `attempt` attempts made so far (1 after the first) leave room for another. */
  hasRetriesLeft(attempt: number): boolean {
    return attempt <= this.numRetries;
  }

  /** Whether this outcome is one the triggers retry (budget aside). */
  retriable(outcome: AttemptOutcome): boolean {
    const on = this.on;
    if (typeof outcome === 'number') {
      if (outcome >= 500 && outcome <= 599 && on & ON_5XX) return true;
      if ((outcome === 502 || outcome === 503 || outcome === 504) && on & ON_GATEWAY_ERROR)
        return true;
      if (outcome === 409 && on & ON_RETRIABLE_4XX) return true;
      return (on & ON_STATUS_CODES) !== 0 && this.codes.has(outcome);
    }
    switch (outcome) {
      case 'overflow':
        return false;
      case 'connect-failure':
        return (
          (on &
            (ON_5XX |
              ON_GATEWAY_ERROR |
              ON_RESET |
              ON_CONNECT_FAILURE |
              ON_RESET_BEFORE_REQUEST)) !==
          0
        );
      case 'reset':
      case 'per-try-timeout':
        return (on & (ON_5XX | ON_GATEWAY_ERROR | ON_RESET)) !== 0;
    }
  }

  /** The retry decision after `attempt` attempts: the outcome is retriable and retries are left. */
  shouldRetry(outcome: AttemptOutcome, attempt: number): boolean {
    return this.hasRetriesLeft(attempt) && this.retriable(outcome);
  }

  /** Wait before retry number `retry` (1 for the first retry). */
  backoffMs(retry: number, random: () => number): number {
    const ceiling = Math.min(
      (2 ** Math.min(retry, 30) - 1) * this.baseIntervalMs,
      this.maxIntervalMs,
    );
    return Math.floor(random() * ceiling);
  }
}
