// Time as values (STYLE.md 7): balancers, breakers, detectors and health checks take `now` and
// timers from their caller, so their tests run in fake time and are exact.

/** Monotonic milliseconds. */
export type Clock = () => number;

/** An opaque timer handle, as `setTimeout` returns it. */
export type TimerHandle = object | number;

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Node's timers, unref'd: background work (health checks) never keeps a process alive. */
export const backgroundTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** Node's timers as they are, for waits a request is blocked on. */
export const requestTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Resolves after `ms` on the given timers. */
export function sleep(timers: Timers, ms: number): Promise<void> {
  return new Promise((resolve) => timers.setTimeout(resolve, ms));
}
