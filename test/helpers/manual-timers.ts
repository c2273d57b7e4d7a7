import type { RenewalTimers } from '../../shared/identity/workload-identity.ts';

interface PendingTimer {
  id: number;
  at: number;
  callback: () => void;
}

/**
 * A clock and timers that move only when the test says so. `advanceTo`/`advance` run every timer
 * that falls due, in time order, with the clock set to each timer's time as it runs.
 */
export class ManualTimers implements RenewalTimers {
  private current: number;
  private nextId = 1;
  private pending: PendingTimer[] = [];
  /** Every delay ever requested, in order (what a backoff test checks). */
  readonly requestedDelays: number[] = [];

  constructor(startMs: number) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer = { id: this.nextId++, at: this.current + Math.max(0, ms), callback };
    this.requestedDelays.push(ms);
    this.pending.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((t) => t.id !== handle);
  }

  /** How many timers wait, and when the next one is due. */
  get pendingCount(): number {
    return this.pending.length;
  }

  get nextDueAt(): number | undefined {
    return this.pending.reduce<number | undefined>(
      (min, t) => (min === undefined || t.at < min ? t.at : min),
      undefined,
    );
  }

  advance(ms: number): void {
    this.advanceTo(this.current + ms);
  }

  advanceTo(time: number): void {
    for (;;) {
      const due = this.pending
        .filter((t) => t.at <= time)
        .sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.pending = this.pending.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.callback();
    }
    this.current = Math.max(this.current, time);
  }
}
