// The lessee side of a rate limit: a process that admits requests against a budget it does not
// hold. It takes leases of tokens from the holder (budget.ts: the supervisor over cluster IPC for
// local limits, an in-process holder without a supervisor, Redis for global limits) and spends
// them without asking again, so a request that finds tokens in its bucket costs no round trip.
//
// The guarantee, per bucket and fixed window:
//   - never over: a request is admitted only by spending a token that the holder counted for
//     this window, and the holder never counts more than the limit (response-cost debits aside,
//     which upstream also charges after the fact), so the requests admitted across every lessee
//     of a holder never exceed the limit;
//   - under by at most the tokens outstanding: the only tokens counted but not spent are those
//     still unspent at the lessees when the window ends (or given back too late). Leases shrink
//     with what the holder has left (leaseSize: remaining / (2 × lessees), down to 1), so once
//     the holder is nearly dry every lessee holds only a few tokens; local limits also give
//     back what an idle bucket holds, so another worker can use it.
// A lease that arrives after its window ended is dropped: its tokens belong to the old window.

import type { BudgetHolder, LeaseGrant, LeaseRequest } from './budget.ts';
import { windowStart } from './window.ts';

/** A lease is never larger than this, whatever the limit. */
export const MAX_LEASE = 1_000;

export type FailureMode = 'open' | 'closed';

export interface LeaseClientOptions {
  holder: BudgetHolder;
  /** Local limits give unspent tokens back when a bucket goes idle; Redis lets them expire. */
  returnsTokens: boolean;
  /** ms since the epoch. */
  now: () => number;
  /** A bucket unused this long gives its tokens back (returnsTokens only). */
  idleReturnMs?: number;
  /**
   * A bucket the holder said was dry asks again after this long (returnsTokens only: another
   * lessee may have given tokens back). Without returns, dry means dry until the window ends.
   */
  recheckMs?: number;
  /** After a failed lease, no lease is asked for this long (the failure mode applies instead). */
  backoffMs?: number;
  onError?: (err: Error) => void;
}

export class Bucket {
  windowStart = Number.NEGATIVE_INFINITY;
  windowEnd = Number.NEGATIVE_INFINITY;
  /** Leased for this window and not spent. */
  tokens = 0;
  /** What the holder had left after the last lease of this window. */
  holderRemaining = 0;
  /** The holder had fewer tokens than needed: when (ms), or -1. */
  dryAt = -1;
  /** Spent without a lease (response cost beyond the tokens held); debited with the next lease. */
  debt = 0;
  lastUsed = 0;
  pending: Promise<void> | undefined = undefined;
  constructor(readonly key: string) {}

  /** What a client may still spend this window, as far as this lessee knows. */
  get remaining(): number {
    return this.tokens + this.holderRemaining;
  }
}

/** What a bucket can do for a request that needs `need` tokens. */
export type BucketState = 'ready' | 'fill' | 'dry' | 'failing';

export class LeaseClient {
  readonly buckets = new Map<string, Bucket>();
  private failingUntil = Number.NEGATIVE_INFINITY;
  private readonly idleReturnMs: number;
  private readonly recheckMs: number;
  private readonly backoffMs: number;

  constructor(private readonly options: LeaseClientOptions) {
    this.idleReturnMs = options.idleReturnMs ?? 1_000;
    this.recheckMs = options.recheckMs ?? 250;
    this.backoffMs = options.backoffMs ?? 500;
  }

  get now(): () => number {
    return this.options.now;
  }

  /** The bucket of `key`, moved to the window that holds `now`. */
  bucket(key: string, windowMs: number, limit: number, now: number): Bucket {
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = new Bucket(key)));
    if (now >= b.windowEnd || now < b.windowStart) {
      b.windowStart = windowStart(now, windowMs);
      b.windowEnd = b.windowStart + windowMs;
      b.tokens = 0;
      b.holderRemaining = limit;
      b.dryAt = -1;
      b.debt = 0;
    }
    return b;
  }

  state(b: Bucket, need: number, now: number): BucketState {
    if (b.tokens >= need) return 'ready';
    if (now < this.failingUntil) return 'failing';
    if (b.dryAt >= 0 && !(this.options.returnsTokens && now - b.dryAt >= this.recheckMs))
      return 'dry';
    return 'fill';
  }

  /** Takes `cost` tokens the bucket holds (state() said ready). */
  spend(b: Bucket, cost: number, now: number): void {
    b.tokens -= cost;
    b.lastUsed = now;
  }

  /** Charges tokens after the fact (response cost): from what the bucket holds, the rest as debt. */
  charge(b: Bucket, cost: number, now: number): void {
    const fromTokens = Math.min(b.tokens, cost);
    b.tokens -= fromTokens;
    b.debt += cost - fromTokens;
    b.lastUsed = now;
  }

  /**
   * Asks the holder for a lease that brings the bucket to at least `need` tokens. Concurrent
   * requests for one bucket share one lease request. Returns nothing when the holder answered
   * synchronously (the in-process holder): the caller looks at the bucket again at once.
   */
  fill(b: Bucket, limit: number, windowMs: number, need: number): Promise<void> | undefined {
    if (b.pending) return b.pending;
    const missing = Math.max(1, need - b.tokens);
    const request: LeaseRequest = {
      key: b.key,
      windowStart: b.windowStart,
      windowMs,
      limit,
      need: missing,
      want: Math.max(missing, Math.min(MAX_LEASE, limit)),
      debit: b.debt,
    };
    b.debt = 0;
    let answer: LeaseGrant | Promise<LeaseGrant>;
    try {
      answer = this.options.holder.acquire(request);
    } catch (err) {
      this.failed(b, request, err);
      return undefined;
    }
    if (!(answer instanceof Promise)) {
      this.granted(b, request, answer);
      return undefined;
    }
    const pending = answer.then(
      (grant) => this.granted(b, request, grant),
      (err: unknown) => this.failed(b, request, err),
    );
    b.pending = pending;
    void pending.finally(() => {
      if (b.pending === pending) b.pending = undefined;
    });
    return pending;
  }

  private granted(b: Bucket, request: LeaseRequest, grant: LeaseGrant): void {
    if (b.windowStart !== request.windowStart) return;
    b.tokens += grant.granted;
    b.holderRemaining = grant.remaining;
    if (b.tokens < request.need) b.dryAt = this.options.now();
    else b.dryAt = -1;
  }

  private failed(b: Bucket, request: LeaseRequest, err: unknown): void {
    if (b.windowStart === request.windowStart) b.debt += request.debit;
    this.failingUntil = this.options.now() + this.backoffMs;
    this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
  }

  /**
   * Housekeeping, about once a second: forgets buckets whose window is over, and (local limits)
   * gives back the tokens of buckets idle for idleReturnMs so that other lessees can spend them.
   */
  sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.pending) continue;
      if (now >= b.windowEnd) this.buckets.delete(key);
      else if (this.options.returnsTokens && b.tokens > 0 && now - b.lastUsed >= this.idleReturnMs)
        this.giveBack(b);
    }
  }

  /** Gives back every unspent token (local limits), e.g. when the process drains. */
  releaseAll(): void {
    if (!this.options.returnsTokens) return;
    for (const b of this.buckets.values()) if (b.tokens > 0) this.giveBack(b);
  }

  private giveBack(b: Bucket): void {
    this.options.holder.release(b.key, b.windowStart, b.tokens);
    b.holderRemaining += b.tokens;
    b.tokens = 0;
  }
}
