// The budget holder of a rate limit: the one place that counts, per bucket and fixed window, how
// many tokens it has handed out. Lessees (the workers, or the gateway itself in-process) take
// leases of tokens from it and spend them locally; see lease-client.ts for the guarantee.
//
// FixedWindowBudget is the holder of local limits: the supervisor (primary) runs one for all its
// workers, an in-process GatewayServer runs its own. Global limits are held by Redis instead
// (redis-budget.ts), with the same grant rule in a Lua script.

export interface LeaseRequest {
  /** The bucket: rule, scope and distinct values (never the window). */
  key: string;
  /** Start of the window the tokens are for (ms since the epoch). */
  windowStart: number;
  windowMs: number;
  limit: number;
  /** Fewer than this is useless to the lessee: grant nothing rather than less. */
  need: number;
  /** The most the lessee takes in one lease. */
  want: number;
  /** Tokens already spent without a lease (response cost): counted first, unconditionally. */
  debit: number;
}

export interface LeaseGrant {
  granted: number;
  /** What the holder has left for the window after this grant (0 or more). */
  remaining: number;
}

export interface BudgetHolder {
  acquire(request: LeaseRequest): LeaseGrant | Promise<LeaseGrant>;
  /** Unspent tokens of a window given back (local limits only; Redis lets them expire). */
  release(key: string, windowStart: number, tokens: number): void;
}

/**
 * How many tokens a lease gets when `remaining` are left: a share that shrinks with what is left
 * (remaining / spread, spread = 2 × the number of lessees), capped at `want`, at least `need`,
 * never more than `remaining`; nothing when fewer than `need` are left. Near the end of a window
 * leases are of one token, so what sits unspent at the lessees when the holder runs dry is small.
 */
export function leaseSize(remaining: number, need: number, want: number, spread: number): number {
  if (remaining <= 0 || remaining < need) return 0;
  const share = Math.ceil(remaining / Math.max(1, spread));
  return Math.min(remaining, Math.max(need, Math.min(want, share)));
}

interface Counter {
  windowStart: number;
  windowEnd: number;
  /** Tokens handed out (and debited) for the window, less those given back. */
  used: number;
}

/** An in-memory holder: one counter per bucket for its current window. */
export class FixedWindowBudget implements BudgetHolder {
  private readonly counters = new Map<string, Counter>();

  /** @param lessees how many processes lease from this holder (the spread of leaseSize is twice that). */
  constructor(private readonly lessees: () => number = () => 1) {}

  acquire(r: LeaseRequest): LeaseGrant {
    let c = this.counters.get(r.key);
    if (!c) {
      c = { windowStart: r.windowStart, windowEnd: r.windowStart + r.windowMs, used: 0 };
      this.counters.set(r.key, c);
    } else if (c.windowStart !== r.windowStart) {
      // A request for an older window than the counter's gets nothing: that window is over.
      if (r.windowStart < c.windowStart) return { granted: 0, remaining: 0 };
      c.windowStart = r.windowStart;
      c.windowEnd = r.windowStart + r.windowMs;
      c.used = 0;
    }
    c.used += r.debit;
    const granted = leaseSize(r.limit - c.used, r.need, r.want, 2 * this.lessees());
    c.used += granted;
    return { granted, remaining: Math.max(0, r.limit - c.used) };
  }

  release(key: string, windowStart: number, tokens: number): void {
    const c = this.counters.get(key);
    if (c && c.windowStart === windowStart && tokens > 0) c.used = Math.max(0, c.used - tokens);
  }

  /** Drops the counters of windows that ended before `now` (bounded memory with Distinct buckets). */
  sweep(now: number): void {
    for (const [key, c] of this.counters) if (c.windowEnd <= now) this.counters.delete(key);
  }

  get size(): number {
    return this.counters.size;
  }
}
