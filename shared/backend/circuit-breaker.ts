// Envoy's circuit breakers for one backend (arch_overview circuit_breaking), with Envoy Gateway's
// BackendTrafficPolicy `circuitBreaker` thresholds (defaults 1024, as Envoy's):
//
// - maxParallelRequests: requests in flight; one more is refused at once (503, flag UO).
// - maxConnections: meshgate's pools are shared and speak HTTP/1.1 without pipelining, so a
//   request in flight holds one connection; the number of requests in flight therefore stands
//   for the connections this backend needs. Beyond it a request waits, as Envoy's HTTP/1 pool
//   queues it while no connection can be opened.
// - maxPendingRequests: how many may wait so; one more is refused at once (503 UO).
// - maxParallelRetries: retries in flight (from the decision to retry until that attempt ends);
//   beyond it the retry is not made and the last answer stands, as Envoy's retry overflow does.
//   With a retryBudget, the limit is instead that percentage of requests in flight and waiting,
//   at least minRetryConcurrency (default 3), and maxParallelRetries is ignored (Envoy's rule).

export interface CircuitBreakerThresholds {
  maxConnections: number;
  maxPendingRequests: number;
  maxParallelRequests: number;
  maxParallelRetries: number;
  retryBudget?: { percent: number; minRetryConcurrency: number };
}

export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerThresholds = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxParallelRequests: 1024,
  maxParallelRetries: 1024,
};

/** `admitted`: counted in flight, go; `pending`: call `waitForSlot`; `overflow`: refuse (UO). */
export type Admission = 'admitted' | 'pending' | 'overflow';

export interface PendingSlot {
  /** Resolves once the request is admitted (and counted in flight). */
  readonly admitted: Promise<void>;
  /** Leaves the queue (a request that gave up waiting): true; false when already admitted. */
  cancel(): boolean;
}

export interface CircuitBreakerSnapshot {
  active: number;
  pending: number;
  activeRetries: number;
  /** Refusals since the breaker was created (Envoy's upstream_rq_pending_overflow & co.). */
  overflowRequests: number;
  overflowPending: number;
  overflowRetries: number;
  thresholds: CircuitBreakerThresholds;
}

interface Waiter {
  resolve: () => void;
  done: boolean;
}

export class CircuitBreaker {
  active = 0;
  activeRetries = 0;
  private readonly waiters: Waiter[] = [];
  private overflowRequests = 0;
  private overflowPending = 0;
  private overflowRetries = 0;

  constructor(public thresholds: CircuitBreakerThresholds = DEFAULT_CIRCUIT_BREAKER) {}

  get pending(): number {
    return this.waiters.length;
  }

  tryAcquire(): Admission {
    const t = this.thresholds;
    if (this.active >= t.maxParallelRequests) {
      this.overflowRequests++;
      return 'overflow';
    }
    if (this.active < t.maxConnections && this.waiters.length === 0) {
      this.active++;
      return 'admitted';
    }
    if (this.waiters.length < t.maxPendingRequests) return 'pending';
    this.overflowPending++;
    return 'overflow';
  }

  /** Queues a request that `tryAcquire` answered `pending` for. First come, first admitted. */
  waitForSlot(): PendingSlot {
    let waiter!: Waiter;
    const admitted = new Promise<void>((resolve) => {
      waiter = { resolve, done: false };
    });
    this.waiters.push(waiter);
    return {
      admitted,
      cancel: () => {
        if (waiter.done) return false;
        waiter.done = true;
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        return true;
      },
    };
  }

  /** A request admitted by `tryAcquire` or `waitForSlot` ended. */
  release(): void {
    if (this.active > 0) this.active--;
    this.admitWaiting();
  }

  /** Starts a retry if the retry limit allows; `retryDone` ends it. */
  tryStartRetry(): boolean {
    if (this.activeRetries >= this.retryLimit()) {
      this.overflowRetries++;
      return false;
    }
    this.activeRetries++;
    return true;
  }

  retryDone(): void {
    if (this.activeRetries > 0) this.activeRetries--;
  }

  /** New thresholds (a reload changed the policy); waiting requests get the new room at once. */
  update(thresholds: CircuitBreakerThresholds): void {
    this.thresholds = thresholds;
    this.admitWaiting();
  }

  snapshot(): CircuitBreakerSnapshot {
    return {
      active: this.active,
      pending: this.waiters.length,
      activeRetries: this.activeRetries,
      overflowRequests: this.overflowRequests,
      overflowPending: this.overflowPending,
      overflowRetries: this.overflowRetries,
      thresholds: this.thresholds,
    };
  }

  private retryLimit(): number {
    const budget = this.thresholds.retryBudget;
    if (!budget) return this.thresholds.maxParallelRetries;
    return Math.max(
      budget.minRetryConcurrency,
      Math.floor(((this.active + this.waiters.length) * budget.percent) / 100),
    );
  }

  private admitWaiting(): void {
    const t = this.thresholds;
    while (
      this.waiters.length > 0 &&
      this.active < t.maxConnections &&
      this.active < t.maxParallelRequests
    ) {
      const w = this.waiters.shift() as Waiter;
      w.done = true;
      this.active++;
      w.resolve();
    }
  }
}
