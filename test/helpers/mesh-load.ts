// Bounded load for "drops no request" tests: a fixed number of workers send requests one after
// the other until `stop()` holds or `maxRequests` have been sent; every answer that is not the
// expected status, and every error, is kept with what it said.

import type { Dispatcher } from 'undici';

export interface LoadOptions {
  dispatcher: Dispatcher;
  /** Host header naming the Service. */
  host: string;
  path?: string;
  concurrency: number;
  /** The bound: never more than this many requests. */
  maxRequests: number;
  /** At least this many are sent before `stop` is asked. */
  minRequests?: number;
  /** Checked between requests (and at most every 50 ms): true ends the run. */
  stop?: () => boolean | Promise<boolean>;
  expectStatus?: number;
}

export interface LoadResult {
  sent: number;
  ok: number;
  failures: { status?: number; body?: string; error?: string }[];
}

/** Runs the load to its end. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return startLoad(options).finished;
}

/** Starts the load; `result` is live (read it while the load runs), `finished` resolves at the end. */
export function startLoad(options: LoadOptions): {
  result: LoadResult;
  finished: Promise<LoadResult>;
} {
  const result: LoadResult = { sent: 0, ok: 0, failures: [] };
  const expected = options.expectStatus ?? 200;
  let stopped = false;
  let lastCheck = 0;
  const shouldStop = async (): Promise<boolean> => {
    if (stopped || result.sent >= options.maxRequests) return true;
    if (result.sent < (options.minRequests ?? 0) || !options.stop) return false;
    const now = Date.now();
    if (now - lastCheck < 50) return false;
    lastCheck = now;
    if (await options.stop()) stopped = true;
    return stopped;
  };
  const worker = async () => {
    while (!(await shouldStop())) {
      result.sent++;
      try {
        const res = await options.dispatcher.request({
          method: 'GET',
          path: options.path ?? '/load',
          headers: { host: options.host },
        });
        const body = await res.body.text();
        if (res.statusCode === expected) result.ok++;
        else result.failures.push({ status: res.statusCode, body: body.slice(0, 300) });
      } catch (err) {
        result.failures.push({ error: (err as Error).message });
      }
    }
  };
  const finished = Promise.all(Array.from({ length: options.concurrency }, worker)).then(
    () => result,
  );
  return { result, finished };
}
