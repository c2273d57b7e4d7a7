import { describe, expect, it } from 'vitest';
import { CircuitBreaker, DEFAULT_CIRCUIT_BREAKER } from '../../shared/backend/circuit-breaker.ts';

const thresholds = (t: Partial<typeof DEFAULT_CIRCUIT_BREAKER>) => ({
  ...DEFAULT_CIRCUIT_BREAKER,
  ...t,
});

describe('circuit breaker', () => {
  it('refuses a request beyond maxParallelRequests', () => {
    const b = new CircuitBreaker(thresholds({ maxParallelRequests: 2 }));
    expect(b.tryAcquire()).toBe('admitted');
    expect(b.tryAcquire()).toBe('admitted');
    expect(b.tryAcquire()).toBe('overflow');
    b.release();
    expect(b.tryAcquire()).toBe('admitted');
    expect(b.snapshot()).toMatchObject({ active: 2, overflowRequests: 1 });
  });

  it('queues beyond maxConnections up to maxPendingRequests, first come first admitted', async () => {
    const b = new CircuitBreaker(thresholds({ maxConnections: 1, maxPendingRequests: 2 }));
    expect(b.tryAcquire()).toBe('admitted');
    expect(b.tryAcquire()).toBe('pending');
    const first = b.waitForSlot();
    expect(b.tryAcquire()).toBe('pending');
    const second = b.waitForSlot();
    expect(b.tryAcquire()).toBe('overflow');
    expect(b.snapshot()).toMatchObject({ active: 1, pending: 2, overflowPending: 1 });
    const order: string[] = [];
    void first.admitted.then(() => order.push('first'));
    void second.admitted.then(() => order.push('second'));
    b.release();
    await Promise.resolve();
    expect(order).toEqual(['first']);
    expect(b.active).toBe(1);
    b.release();
    await Promise.resolve();
    expect(order).toEqual(['first', 'second']);
    expect(b.pending).toBe(0);
  });

  it('with maxPendingRequests 0 refuses as soon as no connection is free', () => {
    const b = new CircuitBreaker(thresholds({ maxConnections: 1, maxPendingRequests: 0 }));
    expect(b.tryAcquire()).toBe('admitted');
    expect(b.tryAcquire()).toBe('overflow');
  });

  it('a request that gives up leaves the queue; one already admitted cannot', async () => {
    const b = new CircuitBreaker(thresholds({ maxConnections: 1 }));
    b.tryAcquire();
    const waiting = b.waitForSlot();
    expect(waiting.cancel()).toBe(true);
    expect(b.pending).toBe(0);
    const next = b.waitForSlot();
    b.release();
    await next.admitted;
    expect(next.cancel()).toBe(false);
    expect(b.active).toBe(1);
  });

  it('new requests queue behind waiting ones even when a slot frees', () => {
    const b = new CircuitBreaker(thresholds({ maxConnections: 1 }));
    b.tryAcquire();
    b.waitForSlot();
    b.release(); // the waiter takes the slot
    expect(b.tryAcquire()).toBe('pending');
  });

  it('limits retries in flight by maxParallelRetries', () => {
    const b = new CircuitBreaker(thresholds({ maxParallelRetries: 1 }));
    expect(b.tryStartRetry()).toBe(true);
    expect(b.tryStartRetry()).toBe(false);
    b.retryDone();
    expect(b.tryStartRetry()).toBe(true);
    expect(b.snapshot().overflowRetries).toBe(1);
  });

  it('a retry budget allows a share of the requests in flight, at least minRetryConcurrency', () => {
    const b = new CircuitBreaker(
      thresholds({ maxParallelRetries: 0, retryBudget: { percent: 20, minRetryConcurrency: 1 } }),
    );
    expect(b.tryStartRetry()).toBe(true); // the minimum
    expect(b.tryStartRetry()).toBe(false);
    for (let i = 0; i < 10; i++) b.tryAcquire();
    expect(b.tryStartRetry()).toBe(true); // 20% of 10 = 2
    expect(b.tryStartRetry()).toBe(false);
  });

  it('takes new thresholds on reload and admits waiters the new room allows', async () => {
    const b = new CircuitBreaker(thresholds({ maxConnections: 1 }));
    b.tryAcquire();
    const w = b.waitForSlot();
    b.update(thresholds({ maxConnections: 2 }));
    await w.admitted;
    expect(b.active).toBe(2);
  });
});
