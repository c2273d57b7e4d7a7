// The gateway benchmark's results: medians over rounds, the targets, the markdown report and
// the rows for bench/run.ts's table.

import type { BenchRow } from '../bench.ts';
import type { CpuStalls } from './machine-noise.ts';
import type { WrkResult } from './wrk.ts';

/** One round of one row: wrk at 50 connections and at 1, and what others took meanwhile. */
export interface Sample {
  c50: WrkResult;
  c1: WrkResult;
  /** CPU used by processes not ours during the two measurements, in cores (the larger). */
  foreignCores: number;
}

export interface RowResult {
  id: string;
  name: string;
  cpu: string;
  samples: Sample[];
  /** "not available: …" or "FAILED: …" */
  problem?: string;
}

export interface Summary {
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50c50: number;
  p99c50: number;
  p50c1: number;
  p99c1: number;
  foreignMax: number;
  non2xx: number;
  socketErrors: number;
}

export interface ReportContext {
  machine: string;
  durationSec: number;
  warmupSec: number;
  rounds: number;
  requestPath: string;
  bodyBytes: number;
  pin: boolean;
  proxyCpu: number;
  loadCpu: number;
  stalls: CpuStalls[];
  setupProblem?: string;
}

export interface TargetCheck {
  target: string;
  measured: string;
  pass: boolean | undefined;
  ratio?: number;
  /** Other processes took a real share of the CPU while one of the two rows was measured. */
  disturbed?: boolean;
}

/** Cores of CPU taken by other processes above which a measurement counts as disturbed. */
export const DISTURBED_CORES = 0.25;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Medians over the rounds; undefined when the row has no sample. */
export function summarize(r: RowResult): Summary | undefined {
  if (r.samples.length === 0) return undefined;
  const of = (f: (s: Sample) => number) => r.samples.map(f);
  const rps = of((s) => s.c50.requestsPerSec);
  return {
    rps: median(rps),
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    p50c50: median(of((s) => s.c50.p50Us)),
    p99c50: median(of((s) => s.c50.p99Us)),
    p50c1: median(of((s) => s.c1.p50Us)),
    p99c1: median(of((s) => s.c1.p99Us)),
    foreignMax: Math.max(...of((s) => s.foreignCores)),
    non2xx: of((s) => s.c50.non2xx + s.c1.non2xx).reduce((a, b) => a + b, 0),
    socketErrors: of((s) => s.c50.socketErrors + s.c1.socketErrors).reduce((a, b) => a + b, 0),
  };
}

export function fmtRps(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtLatency(us: number): string {
  return us < 1_000 ? `${Math.round(us)} µs` : `${(us / 1_000).toFixed(2)} ms`;
}

function fmtRatio(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '–' : `${x.toFixed(2)}x`;
}

function fmtPercent(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}

export function checkTargets(summaries: Map<string, Summary | undefined>): TargetCheck[] {
  const rps = (id: string) => summaries.get(id)?.rps;
  const p50 = (id: string) => summaries.get(id)?.p50c1;
  const disturbed = (...ids: string[]) =>
    ids.some((id) => (summaries.get(id)?.foreignMax ?? 0) >= DISTURBED_CORES);
  const checks: TargetCheck[] = [];
  const check = (
    target: string,
    [a, b]: [string, string],
    value: (id: string) => number | undefined,
    ok: (r: number) => boolean,
    show: (r: number) => string,
  ) => {
    const va = value(a);
    const vb = value(b);
    if (va === undefined || vb === undefined) {
      checks.push({ target, measured: 'not measured', pass: undefined });
      return;
    }
    const r = va / vb;
    checks.push({ target, measured: show(r), pass: ok(r), ratio: r, disturbed: disturbed(a, b) });
  };
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
  const notes: string[] = [];
  if (r.problem) notes.push(r.problem);
  if (s) {
    if (s.non2xx > 0) notes.push(`${s.non2xx} non-2xx responses`);
    if (s.socketErrors > 0) notes.push(`${s.socketErrors} socket errors`);
    if (s.foreignMax >= 0.05)
      notes.push(`other processes used up to ${s.foreignMax.toFixed(2)} cores`);
    if (r.id !== '1' && direct !== undefined && s.rps >= 0.9 * direct) {
      notes.push('within 10% of row 1: bound by the harness, not the proxy');
    }
  }
  return notes.join('; ').replace(/\|/g, '\\|');
}

export function markdownReport(
  results: RowResult[],
  checks: TargetCheck[],
  ctx: ReportContext,
): string {
  const summaries = new Map(results.map((r) => [r.id, summarize(r)]));
  const lines: string[] = [];
  lines.push(`## Gateway benchmark (loopback), ${new Date().toISOString().slice(0, 16)}Z`, '');
  lines.push(
    `${ctx.machine}. wrk -t1; each number is the median of ${ctx.rounds} round(s), the rows interleaved within a round; each measurement ${ctx.durationSec} s after a ${ctx.warmupSec} s warm-up at the same concurrency. GET ${ctx.requestPath}; the upstream (nginx, 1 worker) answers 200 with a ${ctx.bodyBytes}-byte body.`,
    '',
  );
  lines.push(
    ctx.pin
      ? `Pinning: wrk and the upstream nginx (and the redis-server of rows 8a/b) on core ${ctx.loadCpu}; the proxy under test alone on core ${ctx.proxyCpu} (rows 2, 3, 4, 5a, 6a, 7a/b, 8a/b). Rows 5b and 6b (meshgate's default worker count) are not pinned: their workers share both cores with wrk and the upstream. Row 1 is the harness's own ceiling (wrk and the upstream on one core).`
      : 'Pinning: none (fewer than 2 cores, or no taskset); the rows are less comparable.',
    '',
  );
  if (ctx.stalls.length > 0) {
    lines.push(
      `CPU stalls before the run (a busy loop per core, ${ctx.stalls[0]?.seconds} s): ${ctx.stalls
        .map((s) => `core ${s.cpu} max ${s.maxMs.toFixed(0)} ms, ${s.over10Ms} stalls > 10 ms`)
        .join(
          '; ',
        )}. Stalls of tens of ms mean a shared or virtual machine: read p99 and single runs with care.`,
      '',
    );
  }
  if (ctx.setupProblem) lines.push(`**Not run:** ${ctx.setupProblem}`, '');
  const foreign = Math.max(0, ...[...summaries.values()].map((s) => s?.foreignMax ?? 0));
  if (foreign >= DISTURBED_CORES) {
    lines.push(
      `**Disturbed run:** processes that are not this benchmark's used up to ${foreign.toFixed(2)} cores during measurements (see the notes). On 2 cores that is CPU taken from the proxy or from wrk and the upstream: the numbers and the targets below are not reliable. Re-run on a quiet machine.`,
      '',
    );
  }
  const direct = summaries.get('1')?.rps;
  lines.push(
    '| # | proxy | cpu | req/s @50 | req/s range | p50 @50 | p99 @50 | p50 @1 | p99 @1 | note |',
  );
  lines.push('|---|---|---|--:|--:|--:|--:|--:|--:|---|');
  for (const r of results) {
    const s = summaries.get(r.id);
    const cells = s
      ? [
          fmtRps(s.rps),
          `${fmtRps(s.rpsMin)}–${fmtRps(s.rpsMax)}`,
          fmtLatency(s.p50c50),
          fmtLatency(s.p99c50),
          fmtLatency(s.p50c1),
          fmtLatency(s.p99c1),
        ]
      : ['–', '–', '–', '–', '–', '–'];
    lines.push(
      `| ${r.id} | ${r.name} | ${r.cpu} | ${cells.join(' | ')} | ${noteFor(r, s, direct)} |`,
    );
  }

  const refs = results.filter((r) => ['1', '2', '3', '4'].includes(r.id));
  const ratioTable = (title: string, value: (s: Summary) => number) => {
    if (refs.length === 0) return;
    lines.push('', title, '');
    lines.push(`| # | proxy | ${refs.map((r) => `÷ ${r.id}`).join(' | ')} |`);
    lines.push(`|---|---|${refs.map(() => '--:').join('|')}|`);
    for (const r of results) {
      const s = summaries.get(r.id);
      const cells = refs.map((ref) => {
        const b = summaries.get(ref.id);
        return fmtRatio(s && b ? value(s) / value(b) : undefined);
      });
      lines.push(`| ${r.id} | ${r.name} | ${cells.join(' | ')} |`);
    }
  };
  ratioTable(
    'Ratios of req/s @50 (higher is better) to rows 1 direct, 2 nginx proxy, 3 bare undici proxy, 4 @fastify/http-proxy:',
    (s) => s.rps,
  );
  ratioTable('Ratios of p50 @1 (lower is better):', (s) => s.p50c1);
  ratioTable('Ratios of p99 @50 (lower is better):', (s) => s.p99c50);

  lines.push(
    '',
    'Targets (on the pinned single-worker rows; 6b vs 5b unpinned, for information):',
    '',
  );
  lines.push('| target | measured | result |');
  lines.push('|---|--:|---|');
  for (const c of checks) {
    const result =
      (c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'FAIL') +
      (c.disturbed ? ' (disturbed run)' : '');
    lines.push(`| ${c.target} | ${c.measured} | ${result} |`);
  }
  lines.push(
    '',
    'p50 @50 is not a separate target: with 50 connections always busy it follows from req/s (50 ÷ req/s).',
  );
  return `${lines.join('\n')}\n`;
}

export function benchRows(results: RowResult[], checks: TargetCheck[]): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const r of results) {
    const label = `${r.id} ${r.name}`;
    const s = summarize(r);
    if (!s) {
      rows.push({ bench: 'gateway', case: label, value: NaN, unit: '', note: r.problem });
      continue;
    }
    rows.push({
      bench: 'gateway',
      case: `${label}, req/s @50`,
      value: s.rps,
      unit: 'req/s',
      note: r.cpu,
    });
    rows.push({ bench: 'gateway', case: `${label}, p50 @1`, value: s.p50c1, unit: 'µs' });
  }
  for (const c of checks) {
    rows.push({
      bench: 'gateway',
      case: c.target,
      value: c.ratio ?? NaN,
      unit: 'ratio',
      note:
        (c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'FAIL') +
        (c.disturbed ? ' (disturbed run)' : ''),
    });
  }
  return rows;
}
