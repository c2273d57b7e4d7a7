import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_ON,
  RetryPolicy,
  type AttemptOutcome,
  type RetryTrigger,
} from '../../shared/backend/retry-policy.ts';

function policy(triggers: readonly RetryTrigger[], statusCodes: number[] = [503], numRetries = 2) {
  return new RetryPolicy({
    numRetries,
    triggers,
    statusCodes,
    perTryTimeoutMs: 0,
    baseIntervalMs: 25,
  });
}

const OUTCOMES: AttemptOutcome[] = [
  500,
  502,
  503,
  504,
  501,
  409,
  429,
  200,
  'connect-failure',
  'reset',
  'per-try-timeout',
  'overflow',
];

function retried(p: RetryPolicy) {
  return OUTCOMES.filter((o) => p.retriable(o));
}

describe('retry triggers (Envoy router retry_on)', () => {
  it('5xx: any 5xx and every failure without an answer, overflow aside', () => {
    expect(retried(policy(['5xx']))).toEqual([
      500,
      502,
      503,
      504,
      501,
      'connect-failure',
      'reset',
      'per-try-timeout',
    ]);
  });

  it('gateway-error: 502, 503, 504 and failures without an answer', () => {
    expect(retried(policy(['gateway-error']))).toEqual([
      502,
      503,
      504,
      'connect-failure',
      'reset',
      'per-try-timeout',
    ]);
  });

  it('reset: failures without an answer', () => {
    expect(retried(policy(['reset']))).toEqual(['connect-failure', 'reset', 'per-try-timeout']);
  });

  it('connect-failure and reset-before-request: connection failures only', () => {
    expect(retried(policy(['connect-failure']))).toEqual(['connect-failure']);
    expect(retried(policy(['reset-before-request']))).toEqual(['connect-failure']);
  });

  it('retriable-4xx: 409', () => {
    expect(retried(policy(['retriable-4xx']))).toEqual([409]);
  });

  it('retriable-status-codes: the listed codes', () => {
    expect(retried(policy(['retriable-status-codes'], [429, 500]))).toEqual([500, 429]);
  });

  it('the default (Envoy Gateway): connect failures and 503', () => {
    expect(retried(policy(DEFAULT_RETRY_ON))).toEqual([503, 'connect-failure']);
  });

  it('gRPC triggers never fire (grpc-status is not read); overflow is never retried', () => {
    expect(retried(policy(['unavailable', 'cancelled', 'internal']))).toEqual([]);
  });
});

describe('retry budget per request and back-off', () => {
  it('allows numRetries retries after the first attempt', () => {
    const p = policy(['5xx'], [], 2);
    expect(p.shouldRetry(503, 1)).toBe(true);
    expect(p.shouldRetry(503, 2)).toBe(true);
    expect(p.shouldRetry(503, 3)).toBe(false);
    expect(policy(['5xx'], [], 0).shouldRetry(503, 1)).toBe(false);
  });

  it('backs off fully jittered in [0, (2^N − 1) × base), capped at maxInterval', () => {
    const p = new RetryPolicy({
      numRetries: 5,
      triggers: ['5xx'],
      statusCodes: [],
      perTryTimeoutMs: 0,
      baseIntervalMs: 25,
    });
    const top = () => 0.999999;
    expect([1, 2, 3, 4].map((n) => p.backoffMs(n, top))).toEqual([24, 74, 174, 249]);
    expect(p.backoffMs(3, () => 0)).toBe(0);
    const capped = new RetryPolicy({ ...p.config, maxIntervalMs: 100 });
    expect(capped.backoffMs(10, top)).toBe(99);
  });
});
