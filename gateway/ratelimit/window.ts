// Fixed windows for rate limits. A window of a unit starts at a multiple of the unit since the
// epoch, as envoyproxy/ratelimit does (src/utils: MONTH is 30 days and YEAR 365 days there too), so
// every gateway replica and worker that reads the same clock lands in the same window.

import type { RateLimitRule } from '../../shared/config/schemas/envoy-gateway.ts';

export type RateLimitUnit = RateLimitRule['limit']['unit'];

const SECOND = 1_000;
const DAY = 86_400 * SECOND;

export const UNIT_MS: Readonly<Record<RateLimitUnit, number>> = {
  Second: SECOND,
  Minute: 60 * SECOND,
  Hour: 3_600 * SECOND,
  Day: DAY,
  Month: 30 * DAY,
  Year: 365 * DAY,
};

/** The start (ms since the epoch) of the window of `windowMs` that holds `now`. */
export function windowStart(now: number, windowMs: number): number {
  return now - (((now % windowMs) + windowMs) % windowMs);
}

/**
 * Whole seconds until the window that holds `now` ends, at least 1: the `t` of the RateLimit
 * field and the Retry-After of a 429 (delay-seconds, no sub-second precision).
 */
export function secondsToWindowEnd(now: number, windowMs: number): number {
  const left = windowStart(now, windowMs) + windowMs - now;
  return Math.max(1, Math.ceil(left / SECOND));
}
