import { describe, expect, it } from 'vitest';
import {
  FixedWindowBudget,
  leaseSize,
  type LeaseRequest,
} from '../../../gateway/ratelimit/budget.ts';
import {
  draft03Fields,
  limitField,
  policyField,
  sfString,
} from '../../../gateway/ratelimit/headers.ts';
import { secondsToWindowEnd, UNIT_MS, windowStart } from '../../../gateway/ratelimit/window.ts';

// The pure parts of rate limiting: fixed windows, the lease-size rule, the in-memory holder and
// the IETF RateLimit fields.

const MINUTE = 60_000;

describe('fixed windows', () => {
  it('starts a window at a multiple of its length since the epoch, as envoyproxy/ratelimit does', () => {
    const t = Date.UTC(2026, 4, 23, 10, 17, 42, 500);
    expect(windowStart(t, UNIT_MS.Second)).toBe(Date.UTC(2026, 4, 23, 10, 17, 42));
    expect(windowStart(t, UNIT_MS.Minute)).toBe(Date.UTC(2026, 4, 23, 10, 17));
    expect(windowStart(t, UNIT_MS.Hour)).toBe(Date.UTC(2026, 4, 23, 10));
    expect(windowStart(t, UNIT_MS.Day)).toBe(Date.UTC(2026, 4, 23));
    expect(UNIT_MS.Month).toBe(30 * 86_400_000);
    expect(UNIT_MS.Year).toBe(365 * 86_400_000);
    expect(windowStart(t, UNIT_MS.Month) % UNIT_MS.Month).toBe(0);
  });

  it('counts whole seconds to the end, at least one (delay-seconds)', () => {
    const start = 120 * MINUTE;
    expect(secondsToWindowEnd(start, MINUTE)).toBe(60);
    expect(secondsToWindowEnd(start + 42_001, MINUTE)).toBe(18);
    expect(secondsToWindowEnd(start + 59_999, MINUTE)).toBe(1);
    expect(secondsToWindowEnd(start + 400, 1_000)).toBe(1);
  });
});

describe('leaseSize', () => {
  it('shrinks with what is left, down to one token, and never grants more than is left', () => {
    expect(leaseSize(1000, 1, 1000, 4)).toBe(250);
    expect(leaseSize(1000, 1, 100, 4)).toBe(100);
    expect(leaseSize(10, 1, 1000, 4)).toBe(3);
    expect(leaseSize(3, 1, 1000, 4)).toBe(1);
    expect(leaseSize(1, 1, 1000, 4)).toBe(1);
    expect(leaseSize(5, 4, 1000, 4)).toBe(4);
    expect(leaseSize(3, 4, 1000, 4)).toBe(0);
    expect(leaseSize(0, 1, 1000, 4)).toBe(0);
    expect(leaseSize(-3, 1, 1000, 4)).toBe(0);
  });
});

describe('FixedWindowBudget', () => {
  const request = (over: Partial<LeaseRequest> = {}): LeaseRequest => ({
    key: 'local|ns/p|0|*|',
    windowStart: 0,
    windowMs: MINUTE,
    limit: 10,
    need: 1,
    want: 10,
    debit: 0,
    ...over,
  });

  it('hands out at most the limit per window, then starts again in the next one', () => {
    const budget = new FixedWindowBudget(() => 2);
    let total = 0;
    for (let i = 0; i < 20; i++) total += budget.acquire(request()).granted;
    expect(total).toBe(10);
    expect(budget.acquire(request())).toEqual({ granted: 0, remaining: 0 });
    expect(budget.acquire(request({ windowStart: MINUTE })).granted).toBeGreaterThan(0);
    // The window before is over: nothing for it any more.
    expect(budget.acquire(request({ windowStart: 0 }))).toEqual({ granted: 0, remaining: 0 });
  });

  it('takes back unspent tokens of the current window only', () => {
    const budget = new FixedWindowBudget();
    expect(budget.acquire(request({ want: 10 }))).toEqual({ granted: 5, remaining: 5 });
    budget.release('local|ns/p|0|*|', 0, 3);
    expect(budget.acquire(request({ need: 8, want: 8 }))).toEqual({ granted: 8, remaining: 0 });
    budget.release('local|ns/p|0|*|', -MINUTE, 8);
    expect(budget.acquire(request()).granted).toBe(0);
  });

  it('counts a debit (response cost) before granting', () => {
    const budget = new FixedWindowBudget();
    expect(budget.acquire(request({ debit: 7, need: 4 }))).toEqual({ granted: 0, remaining: 3 });
    expect(budget.acquire(request({ debit: 0, need: 3, want: 3 }))).toEqual({
      granted: 3,
      remaining: 0,
    });
  });

  it('forgets counters whose window is over', () => {
    const budget = new FixedWindowBudget();
    budget.acquire(request({ key: 'a' }));
    budget.acquire(request({ key: 'b', windowStart: MINUTE }));
    budget.sweep(MINUTE);
    expect(budget.size).toBe(1);
    budget.sweep(2 * MINUTE);
    expect(budget.size).toBe(0);
  });
});

describe('RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11)', () => {
  it('writes the policy name as an sf-string with q and w, and the limit with r and t', () => {
    expect(policyField('default/api-quota/local/0', 100, 60)).toBe(
      '"default/api-quota/local/0";q=100;w=60',
    );
    expect(limitField(sfString('default/api-quota/local/0'), 42, 17)).toBe(
      '"default/api-quota/local/0";r=42;t=17',
    );
    expect(limitField('"p"', -3, 1)).toBe('"p";r=0;t=1');
  });

  it('escapes what an sf-string cannot hold as is', () => {
    expect(sfString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(sfString('tab\there')).toBe('"tab?here"');
  });

  it('writes draft-polli-03 X-RateLimit fields for DraftVersion03 rules', () => {
    expect(draft03Fields(10, 60, 4, 17)).toEqual({
      'x-ratelimit-limit': '10, 10;w=60',
      'x-ratelimit-remaining': '4',
      'x-ratelimit-reset': '17',
    });
  });
});
