// A fake monotonic clock with timers, for the backend layers (shared/backend/clock.ts Timers):
// time moves only when a test advances it, and due timers run in order.

import type { TimerHandle, Timers } from '../../shared/backend/clock.ts';

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeTime implements Timers {
  private current: number;
  private seq = 0;
  private readonly pending = new Set<FakeTimer>();

  constructor(start = 0) {
    this.current = start;
  }

  /** The clock, as a function to hand out. */
  readonly now = (): number => this.current;

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: FakeTimer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.add(t);
    return t;
  }

  clearTimeout(handle: TimerHandle): void {
    this.pending.delete(handle as FakeTimer);
  }

  /** Timers not yet run. */
  get timerCount(): number {
    return this.pending.size;
  }

  /** Moves the clock forward, running every timer that falls due, in order. */
  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.pending)
        if (t.at <= until && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq)))
          next = t;
      if (!next) break;
      this.pending.delete(next);
      this.current = next.at;
      next.fn();
    }
    this.current = until;
  }

  /** Advances, letting promise callbacks run between timers (for async code under test). */
  async advanceAsync(ms: number, step = 1): Promise<void> {
    const until = this.current + ms;
    while (this.current < until) {
      await flushMicrotasks();
      this.advance(Math.min(step, until - this.current));
    }
    await flushMicrotasks();
  }
}

export async function flushMicrotasks(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}
