import { describe, expect, it } from 'vitest';
import {
  FixedWindowBudget,
  type BudgetHolder,
  type LeaseGrant,
  type LeaseRequest,
} from '../../../gateway/ratelimit/budget.ts';
import type {
  BoundRateLimitRule,
  RuleRateLimit,
} from '../../../gateway/ratelimit/compile-rate-limit.ts';
import { policyField, sfString } from '../../../gateway/ratelimit/headers.ts';
import { LeaseClient, type FailureMode } from '../../../gateway/ratelimit/lease-client.ts';
import { rateLimit } from '../../../gateway/layers/rate-limit.ts';
import type { EdgeRequest } from '../../../gateway/request-context.ts';
import { ProxyError } from '../../../shared/proxy/errors.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';

// Leases through the real rate-limit layer, with lessees that share one holder whose answers
// arrive in an order the test chooses (a seeded shuffle): never over the limit, under it by at
// most the tokens still unspent at the lessees, windows that roll over, tokens given back, and
// a holder that fails.

const MINUTE = 60_000;
const T0 = 1_000 * MINUTE;

/** A holder whose answers wait until the test delivers them. */
class DeferredHolder implements BudgetHolder {
  readonly queue: { request: LeaseRequest; deliver: () => void }[] = [];
  failing = false;
  constructor(private readonly inner: FixedWindowBudget) {}
  acquire(request: LeaseRequest): Promise<LeaseGrant> {
    return new Promise((resolve, reject) =>
      this.queue.push({
        request,
        deliver: () =>
          this.failing ? reject(new Error('backend down')) : resolve(this.inner.acquire(request)),
      }),
    );
  }
  release(key: string, windowStart: number, tokens: number): void {
    this.inner.release(key, windowStart, tokens);
  }
  /** Answers the i-th waiting lease request. */
  deliver(i: number): void {
    const [item] = this.queue.splice(i, 1);
    item?.deliver();
  }
}

function boundRule(client: LeaseClient, limit: number, over: Partial<BoundRateLimitRule> = {}) {
  const name = 'ns/quota/local/0';
  return {
    name,
    kind: 'local',
    key: 'local|ns/quota|0|*|',
    client,
    limit,
    unit: 'Minute',
    windowMs: MINUTE,
    windowSeconds: 60,
    requestCost: 1,
    responseCost: 0,
    shadow: false,
    headers: 'ietf',
    quotedName: sfString(name),
    policyField: policyField(name, limit, 60),
    select: () => '',
    ...over,
  } satisfies BoundRateLimitRule;
}

interface FakeRequest {
  r: EdgeRequest;
  headers: Record<string, string>;
}

function fakeRequest(limits: RuleRateLimit): FakeRequest {
  const headers: Record<string, string> = {};
  const r = {
    rule: { id: 'httproute/ns/api/rule/0', rateLimit: limits },
    method: 'GET',
    path: '/',
    query: '',
    clientIP: '127.0.0.1',
    header: () => undefined,
    res: {
      setHeader: (name: string, value: string) => (headers[name] = value),
      once: () => undefined,
    },
  } as unknown as EdgeRequest;
  return { r, headers };
}

type Outcome = 'admitted' | 'refused' | 'unavailable';

/** Runs one request through the layer; resolves when it is decided. */
function admit(limits: RuleRateLimit): {
  outcome: Promise<Outcome>;
  headers: Record<string, string>;
} {
  const { r, headers } = fakeRequest(limits);
  const classify = (err: unknown): Outcome => {
    if (err instanceof ProxyError && err.code === 'MG_ERR_RATE_LIMITED') return 'refused';
    if (err instanceof ProxyError && err.code === 'MG_ERR_RATE_LIMIT_UNAVAILABLE')
      return 'unavailable';
    throw err;
  };
  try {
    const pending = rateLimit(r);
    return {
      outcome: pending
        ? pending.then(() => 'admitted' as const, classify)
        : Promise.resolve('admitted'),
      headers,
    };
  } catch (err) {
    return { outcome: Promise.resolve(classify(err)), headers };
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One request, its leases answered as they are asked for (bounded). */
async function admitDelivering(limits: RuleRateLimit, holder: DeferredHolder): Promise<Outcome> {
  let decided: Outcome | undefined;
  const { outcome } = admit(limits);
  void outcome.then((o) => (decided = o));
  for (let i = 0; i < 100 && decided === undefined; i++) {
    await tick();
    if (holder.queue.length > 0) holder.deliver(0);
  }
  return outcome;
}

function lessees(
  count: number,
  holder: BudgetHolder,
  now: () => number,
  limit: number,
  failureMode: FailureMode = 'open',
) {
  return Array.from({ length: count }, () => {
    const client = new LeaseClient({ holder, returnsTokens: true, now });
    const limits: RuleRateLimit = { rules: [boundRule(client, limit)], failureMode, now };
    return { client, limits };
  });
}

describe('leasing under concurrent lessees', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`never admits more than the limit, and misses it by at most the unspent tokens (seed ${seed})`, async () => {
      const random = seededRandom(seed);
      const limit = 37 + seed * 13;
      const now = () => T0 + 1_000;
      const budget = new FixedWindowBudget(() => 3);
      const holder = new DeferredHolder(budget);
      const procs = lessees(3, holder, now, limit);
      const outcomes: Promise<Outcome>[] = [];
      // Twice the limit in requests, answers delivered in a seeded random order in between.
      for (let sent = 0; sent < 2 * limit || holder.queue.length > 0;) {
        if (sent < 2 * limit && (holder.queue.length === 0 || random() < 0.6)) {
          const p = procs[Math.floor(random() * procs.length)] as (typeof procs)[number];
          outcomes.push(admit(p.limits).outcome);
          sent++;
        } else holder.deliver(Math.floor(random() * holder.queue.length));
        await Promise.resolve();
        await Promise.resolve();
      }
      const settled = await Promise.all(outcomes);
      const admitted = settled.filter((o) => o === 'admitted').length;
      const unspent = procs.reduce(
        (n, p) => n + [...p.client.buckets.values()].reduce((m, b) => m + b.tokens, 0),
        0,
      );
      expect(admitted).toBeLessThanOrEqual(limit);
      // Every token the holder handed out is admitted or still unspent: nothing else is lost.
      expect(admitted + unspent).toBe(limit);
      // Leases shrink near the end, so little is left unspent at the lessees.
      expect(unspent).toBeLessThanOrEqual(3);
      expect(settled.filter((o) => o === 'refused').length).toBe(2 * limit - admitted);
    });
  }

  it('gives idle tokens back, so another lessee can spend them once it asks again', async () => {
    let t = T0;
    const now = () => t;
    const budget = new FixedWindowBudget(() => 2);
    const [a, b] = lessees(2, budget, now, 10) as [
      ReturnType<typeof lessees>[number],
      ReturnType<typeof lessees>[number],
    ];
    expect(await admit(a.limits).outcome).toBe('admitted');
    const held = [...a.client.buckets.values()][0]?.tokens ?? 0;
    expect(held).toBeGreaterThan(0);
    let admittedByB = 0;
    for (let i = 0; i < 20; i++) if ((await admit(b.limits).outcome) === 'admitted') admittedByB++;
    expect(1 + admittedByB + held).toBe(10);
    // A is idle for a second: the sweep gives its tokens back, and B gets them after its recheck.
    t += 1_000;
    a.client.sweep(t);
    for (let i = 0; i < 20; i++) if ((await admit(b.limits).outcome) === 'admitted') admittedByB++;
    expect(1 + admittedByB).toBe(10);
  });
});

describe('windows', () => {
  it('starts a new budget when the window rolls over, and drops a lease that arrives too late', async () => {
    let t = T0 + 59_000;
    const now = () => t;
    const holder = new DeferredHolder(new FixedWindowBudget());
    const [p] = lessees(1, holder, now, 4);
    const { limits, client } = p as { limits: RuleRateLimit; client: LeaseClient };
    const first = admit(limits);
    expect(holder.queue).toHaveLength(1);
    // The window ends before the holder answers: the lease is for the old window, so the
    // request asks again, for the new one.
    t = T0 + MINUTE + 1;
    holder.deliver(0);
    await tick();
    expect(holder.queue).toHaveLength(1);
    expect(holder.queue[0]?.request.windowStart).toBe(T0 + MINUTE);
    holder.deliver(0);
    expect(await first.outcome).toBe('admitted');
    const bucket = [...client.buckets.values()][0];
    expect(bucket?.windowStart).toBe(T0 + MINUTE);
    expect(bucket?.tokens).toBe(1);
    // 4 for the new window in all, one of them spent already.
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 5; i++) outcomes.push(await admitDelivering(limits, holder));
    expect(outcomes).toEqual(['admitted', 'admitted', 'admitted', 'refused', 'refused']);
  });
});

describe('a holder that cannot be reached', () => {
  it('fails open by default, and asks again after the backoff', async () => {
    let t = T0;
    const now = () => t;
    const holder = new DeferredHolder(new FixedWindowBudget());
    const client = new LeaseClient({ holder, returnsTokens: false, now, backoffMs: 500 });
    const limits: RuleRateLimit = { rules: [boundRule(client, 2)], failureMode: 'open', now };
    holder.failing = true;
    const first = admit(limits);
    holder.deliver(0);
    expect(await first.outcome).toBe('admitted');
    expect(first.headers).toEqual({});
    // Within the backoff nobody asks the holder: the requests are decided at once.
    for (let i = 0; i < 5; i++) expect(await admit(limits).outcome).toBe('admitted');
    expect(holder.queue).toHaveLength(0);
    t += 500;
    holder.failing = false;
    const back = admit(limits);
    expect(holder.queue).toHaveLength(1);
    holder.deliver(0);
    expect(await back.outcome).toBe('admitted');
    expect(await admitDelivering(limits, holder)).toBe('admitted');
    expect(await admitDelivering(limits, holder)).toBe('refused');
  });

  it('refuses with MG_ERR_RATE_LIMIT_UNAVAILABLE when the failure mode is closed', async () => {
    const now = () => T0;
    const holder = new DeferredHolder(new FixedWindowBudget());
    const client = new LeaseClient({ holder, returnsTokens: false, now });
    const limits: RuleRateLimit = {
      rules: [boundRule(client, 2, { kind: 'global' })],
      failureMode: 'closed',
      now,
    };
    holder.failing = true;
    const first = admit(limits);
    holder.deliver(0);
    expect(await first.outcome).toBe('unavailable');
    expect(await admit(limits).outcome).toBe('unavailable');
    // A local limit's holder is the supervisor: closed is about Redis, local ones stay open.
    const local: RuleRateLimit = { rules: [boundRule(client, 2)], failureMode: 'closed', now };
    expect(await admit(local).outcome).toBe('admitted');
  });
});

describe('several rules', () => {
  it('admits only when every selected rule admits, and spends nothing when one refuses', async () => {
    const now = () => T0 + 30_000;
    const budget = new FixedWindowBudget();
    const client = new LeaseClient({ holder: budget, returnsTokens: true, now });
    const small = boundRule(client, 2, {
      name: 'ns/q/local/0',
      key: 'small|',
      quotedName: '"ns/q/local/0"',
      policyField: policyField('ns/q/local/0', 2, 60),
    });
    const big = boundRule(client, 10, {
      name: 'ns/q/local/1',
      key: 'big|',
      quotedName: '"ns/q/local/1"',
      policyField: policyField('ns/q/local/1', 10, 60),
    });
    const limits: RuleRateLimit = { rules: [big, small], failureMode: 'open', now };
    const a = admit(limits);
    expect(await a.outcome).toBe('admitted');
    // The rule with the least left is the one named.
    expect(a.headers).toEqual({
      'ratelimit-policy': '"ns/q/local/0";q=2;w=60',
      ratelimit: '"ns/q/local/0";r=1;t=30',
    });
    expect(await admit(limits).outcome).toBe('admitted');
    expect(await admit(limits).outcome).toBe('refused');
    const bigBucket = client.buckets.get('big|');
    expect((bigBucket?.tokens ?? 0) + (bigBucket?.holderRemaining ?? 0)).toBe(8);
  });

  it('charges nothing for a shadow rule it would refuse, and still admits', async () => {
    const now = () => T0;
    const client = new LeaseClient({ holder: new FixedWindowBudget(), returnsTokens: true, now });
    const limits: RuleRateLimit = {
      rules: [boundRule(client, 1, { shadow: true })],
      failureMode: 'open',
      now,
    };
    for (let i = 0; i < 3; i++) {
      const a = admit(limits);
      expect(await a.outcome).toBe('admitted');
      expect(a.headers).toEqual({});
    }
  });
});
