import { ProxyError } from '../../shared/proxy/errors.ts';
import type { BoundRateLimitRule, RuleRateLimit } from '../ratelimit/compile-rate-limit.ts';
import { draft03Fields, limitField } from '../ratelimit/headers.ts';
import type { Bucket } from '../ratelimit/lease-client.ts';
import { rateLimitRefused } from '../ratelimit/metrics.ts';
import { secondsToWindowEnd } from '../ratelimit/window.ts';
import type { EdgeRequest } from '../request-context.ts';

/** Lease rounds one request may wait through before it is refused (heavy contention only). */
const MAX_LEASE_ROUNDS = 64;

/**
 * BackendTrafficPolicy.rateLimit: every rule that selects the request must admit it, or the
 * answer is 429 with Retry-After and the RateLimit fields. A request whose buckets hold leased
 * tokens is decided synchronously; otherwise it waits for the leases (ratelimit/lease-client.ts).
 * Admitted responses carry RateLimit-Policy and RateLimit for the rule with the least left.
 */
export function rateLimit(r: EdgeRequest): void | Promise<void> {
  const limits = r.rule?.rateLimit;
  if (!limits) return;
  let keys: (string | undefined)[] | undefined;
  for (let i = 0; i < limits.rules.length; i++) {
    const rule = limits.rules[i] as BoundRateLimitRule;
    const suffix = rule.select(r);
    if (suffix === undefined) continue;
    (keys ??= new Array<string | undefined>(limits.rules.length))[i] =
      suffix === '' ? rule.key : rule.key + suffix;
  }
  if (keys) return decide(r, limits, keys, 0);
}

function decide(
  r: EdgeRequest,
  limits: RuleRateLimit,
  keys: readonly (string | undefined)[],
  round: number,
): void | Promise<void> {
  const now = limits.now();
  const buckets = new Array<Bucket | undefined>(keys.length);
  let waits: Promise<void>[] | undefined;
  let refusedBy: BoundRateLimitRule | undefined;
  let refusedBucket: Bucket | undefined;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key === undefined) continue;
    const rule = limits.rules[i] as BoundRateLimitRule;
    const client = rule.client;
    const b = client.bucket(key, rule.windowMs, rule.limit, now);
    const need = Math.max(1, rule.requestCost);
    let state = client.state(b, need, now);
    if (state === 'fill') {
      if (round >= MAX_LEASE_ROUNDS) state = 'dry';
      else {
        const wait = client.fill(b, rule.limit, rule.windowMs, need);
        if (wait) {
          (waits ??= []).push(wait);
          continue;
        }
        // The holder answered at once (in-process): the bucket is decided now.
        state = client.state(b, need, now);
        if (state === 'fill') state = 'dry';
      }
    }
    if (state === 'ready') buckets[i] = b;
    else if (state === 'failing') {
      // Unreachable Redis: open admits (nothing to spend), closed refuses with 500 (RLSE). A
      // local holder is the supervisor itself: if it does not answer, the worker is going away.
      if (limits.failureMode === 'closed' && rule.kind === 'global' && !rule.shadow)
        throw new ProxyError(
          'MG_ERR_RATE_LIMIT_UNAVAILABLE',
          `rate limit ${rule.name} of ${r.rule?.id}: the ${rule.kind} rate-limit backend is unreachable and the failure mode is closed`,
        );
    } else if (!rule.shadow) {
      // Several refuse: Retry-After names the latest window end among them.
      if (
        !refusedBy ||
        secondsToWindowEnd(now, rule.windowMs) > secondsToWindowEnd(now, refusedBy.windowMs)
      ) {
        refusedBy = rule;
        refusedBucket = b;
      }
    }
  }
  if (refusedBy) refuse(r, refusedBy, refusedBucket as Bucket, now);
  if (waits) return Promise.all(waits).then(() => decide(r, limits, keys, round + 1));

  // Every rule admits: spend, and name the rule with the least left in the response.
  let shown: BoundRateLimitRule | undefined;
  let shownLeft = 0;
  let shownReset = 0;
  let charged = false;
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i];
    if (!b) continue;
    const rule = limits.rules[i] as BoundRateLimitRule;
    rule.client.spend(b, rule.requestCost, now);
    if (rule.responseCost > 0) charged = true;
    if (rule.shadow || rule.headers === 'none') continue;
    const left = b.remaining;
    const reset = secondsToWindowEnd(now, rule.windowMs);
    if (!shown || left < shownLeft || (left === shownLeft && reset > shownReset)) {
      shown = rule;
      shownLeft = left;
      shownReset = reset;
    }
  }
  if (shown) {
    r.res.setHeader('ratelimit-policy', shown.policyField);
    r.res.setHeader('ratelimit', limitField(shown.quotedName, shownLeft, shownReset));
    if (shown.headers === 'ietf+draft03')
      for (const [name, value] of Object.entries(
        draft03Fields(shown.limit, shown.windowSeconds, shownLeft, shownReset),
      ))
        r.res.setHeader(name, value);
  }
  if (charged) chargeResponses(r, limits, keys);
}

function refuse(r: EdgeRequest, rule: BoundRateLimitRule, b: Bucket, now: number): never {
  const reset = secondsToWindowEnd(now, rule.windowMs);
  rateLimitRefused.inc({ policy: rule.name });
  const headers: Record<string, string> = { 'retry-after': String(reset) };
  if (rule.headers !== 'none') {
    headers['ratelimit-policy'] = rule.policyField;
    headers.ratelimit = limitField(rule.quotedName, b.remaining, reset);
    if (rule.headers === 'ietf+draft03')
      Object.assign(headers, draft03Fields(rule.limit, rule.windowSeconds, 0, reset));
  }
  const per = rule.unit.toLowerCase();
  throw new ProxyError(
    'MG_ERR_RATE_LIMITED',
    `rate limit ${rule.name} of ${r.rule?.id} exceeded: ${rule.limit} per ${per}`,
    {
      headers,
      publicDetail: `The rate limit "${rule.name}" allows ${rule.limit} requests per ${per}; try again in ${reset} s.`,
    },
  );
}

/** Response cost (global rules): charged when the response is done, for later requests. */
function chargeResponses(
  r: EdgeRequest,
  limits: RuleRateLimit,
  keys: readonly (string | undefined)[],
): void {
  r.res.once('finish', () => {
    const now = limits.now();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      const rule = limits.rules[i] as BoundRateLimitRule;
      if (key === undefined || rule.responseCost === 0) continue;
      rule.client.charge(
        rule.client.bucket(key, rule.windowMs, rule.limit, now),
        rule.responseCost,
        now,
      );
    }
  });
}
