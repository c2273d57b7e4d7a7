// The gateway benchmark's targets and markdown report, built from bench/lib/results.ts.

import {
  commonNotes,
  fmtPercent,
  fmtRatio,
  ratioTable,
  reportOpening,
  resultsTable,
  summarize,
  targetChecker,
  targetsTable,
  type RowResult,
  type RunConditions,
  type Summary,
  type TargetCheck,
} from '../lib/results.ts';

export function checkTargets(summaries: Map<string, Summary | undefined>): TargetCheck[] {
  const { checks, check } = targetChecker(summaries);
  const rps = (a: Summary, b: Summary) => a.rps / b.rps;
  const p50 = (a: Summary, b: Summary) => a.p50c1 / b.p50c1;
  check(
    'meshgate 1 route (5a) req/s ≥ 90% of the bare undici proxy (3)',
    ['5a', '3'],
    rps,
    (r) => r >= 0.9,
    fmtPercent,
  );
  check(
    'meshgate 1 route (5a) req/s ≥ 100% of @fastify/http-proxy (4)',
    ['5a', '4'],
    rps,
    (r) => r >= 1,
    fmtPercent,
  );
  check(
    'meshgate 1 route (5a) p50 @1 ≤ 1.3x the bare undici proxy (3)',
    ['5a', '3'],
    p50,
    (r) => r <= 1.3,
    fmtRatio,
  );
  // "costs < 10% more" is time per request: req/s may fall to 1/1.1 (90.9%), p50 rise to 1.1x
  for (const [one, many] of [
    ['5a', '6a'],
    ['5b', '6b'],
  ] as const) {
    check(
      `1,000 routes (${many}) vs 1 route (${one}): req/s, cost < 10% more (≥ 90.9%)`,
      [many, one],
      rps,
      (r) => 1 / r < 1.1,
      fmtPercent,
    );
    check(
      `1,000 routes (${many}) vs 1 route (${one}): p50 @1 < 1.1x`,
      [many, one],
      p50,
      (r) => r < 1.1,
      fmtRatio,
    );
  }
  // API management (JWT over hot tokens, a rate limit that never triggers) vs the plain route
  for (const [row, floor] of [
    ['7a', 0.85],
    ['7b', 0.85],
    ['8a', 0.7],
    ['8b', 0.7],
  ] as const)
    check(
      `JWT + ${row.startsWith('7') ? 'local' : 'Redis'} rate limit (${row}) req/s ≥ ${floor * 100}% of 1 route (5a)`,
      [row, '5a'],
      rps,
      (r) => r >= floor,
      fmtPercent,
    );
  return checks;
}

function noteFor(r: RowResult, s: Summary | undefined, direct: number | undefined): string {
  const notes = commonNotes(r, s);
  if (s && r.id !== '1' && direct !== undefined && s.rps >= 0.9 * direct) {
    notes.push('within 10% of row 1: bound by the harness, not the proxy');
  }
  return notes.join('; ');
}

export function markdownReport(
  results: RowResult[],
  checks: TargetCheck[],
  ctx: RunConditions,
): string {
  const lines = reportOpening(
    'Gateway benchmark (loopback)',
    `Pinning: wrk and the upstream nginx (and the redis-server of rows 8a/b) on core ${ctx.loadCpu}; the proxy under test alone on core ${ctx.proxyCpu} (rows 2, 3, 4, 5a, 6a, 7a/b, 8a/b). Rows 5b and 6b (meshgate's default worker count) are not pinned: their workers share both cores with wrk and the upstream. Row 1 is the harness's own ceiling (wrk and the upstream on one core).`,
    results,
    ctx,
  );
  const directRow = results.find((r) => r.id === '1');
  const direct = directRow ? summarize(directRow)?.rps : undefined;
  lines.push(...resultsTable(results, (r, s) => noteFor(r, s, direct)));

  const refs = results.filter((r) => ['1', '2', '3', '4'].includes(r.id));
  lines.push(
    ...ratioTable(
      'Ratios of req/s @50 (higher is better) to rows 1 direct, 2 nginx proxy, 3 bare undici proxy, 4 @fastify/http-proxy:',
      results,
      refs,
      (s) => s.rps,
    ),
    ...ratioTable('Ratios of p50 @1 (lower is better):', results, refs, (s) => s.p50c1),
    ...ratioTable('Ratios of p99 @50 (lower is better):', results, refs, (s) => s.p99c50),
  );

  lines.push(
    '',
    'Targets (on the pinned single-worker rows; 6b vs 5b unpinned, for information):',
    '',
    ...targetsTable(checks),
    '',
    'p50 @50 is not a separate target: with 50 connections always busy it follows from req/s (50 ÷ req/s).',
  );
  return `${lines.join('\n')}\n`;
}
