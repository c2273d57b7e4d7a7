// Load for the rate-limit tests on real processes: a bounded number of requests, a few at a time,
// each on its own connection (so node:cluster spreads them over the workers).

import { request } from 'undici';
import { UNIT_MS, windowStart, type RateLimitUnit } from '../../../gateway/ratelimit/window.ts';

/** Sends `total` GETs spread round-robin over `urls`, `concurrency` at a time; their statuses. */
export async function fire(
  urls: readonly string[],
  total: number,
  concurrency: number,
  headers: Record<string, string> = {},
): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const url = urls[next % urls.length] as string;
      next++;
      const res = await request(url, {
        headers: { host: 'rl.test', connection: 'close', ...headers },
      });
      await res.body.text();
      statuses.push(res.statusCode);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

/**
 * Real processes count in real windows: a test that must stay inside one waits, when it starts
 * less than 20 s before the window's end, until the next one has begun (Day: rarely).
 */
export async function outsideWindowEdge(unit: RateLimitUnit): Promise<void> {
  const windowMs = UNIT_MS[unit];
  const left = windowStart(Date.now(), windowMs) + windowMs - Date.now();
  if (left < 20_000) await new Promise((r) => setTimeout(r, left + 100));
}
