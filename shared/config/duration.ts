// GEP-2257 durations as numbers, apart from the schemas: the proxies convert durations at run time
// without loading zod.

const DURATION_UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds of a GEP-2257 duration (already validated by `gatewayDuration`). */
export function durationToMs(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/([0-9]+)(ms|h|m|s)/g))
    total += Number(m[1]) * (DURATION_UNIT_MS[m[2] as string] ?? 0);
  return total;
}
