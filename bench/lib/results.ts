// What the loopback benchmarks have in common once the rounds are measured: medians over rounds,
// targets checked on them, the markdown pieces of a report (the run's conditions, the results
// table, ratio tables, the targets table) and the rows for bench/run.ts's table.

import type { BenchRow } from '../bench.ts';
import type { CpuStalls } from './machine-noise.ts';
import type { WrkResult } from './wrk.ts';

/** One round of one row: wrk at 50 connections and at 1, and what others took meanwhile. */
export interface Sample {
  c50: WrkResult;
  c1: WrkResult;
  /** CPU used by processes not ours during the two measurements, in cores (the larger). */
  foreignCores: number;
  /**
   * CPU time the row's own processes (the proxies, not wrk or the upstream) spent per request
   * at 50 connections, in µs; absent for a row without processes of its own.
   */
  cpuUsPerRequest?: number;
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
  /** Median CPU µs per request of the row's processes at 50 connections (NaN: none). */
  cpuUsPerRequest: number;
  non2xx: number;
  socketErrors: number;
}

/** The conditions of a run, for the report's opening paragraphs. */
export interface RunConditions {
  machine: string;
  durationSec: number;
  warmupSec: number;
  rounds: number;
  /** s waited at most for quiet before each measurement (0: none) */
  quietWaitSec: number;
  /** re-measurements of a disturbed round (0: none) */
  disturbedRetries: number;
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
  /** The measured value (a ratio, a difference, a size: what the target is written in). */
  ratio?: number;
  /** The unit of `ratio` in bench/run.ts's table ("ratio" unless told). */
  unit?: string;
  /** Other processes took a real share of the CPU while one of the rows was measured. */
  disturbed?: boolean;
}

/** Cores of CPU taken by other processes above which a measurement counts as disturbed. */
export const DISTURBED_CORES = 0.25;

export function median(xs: number[]): number {
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
    cpuUsPerRequest: r.samples.every((s) => s.cpuUsPerRequest !== undefined)
      ? median(of((s) => s.cpuUsPerRequest as number))
      : NaN,
    non2xx: of((s) => s.c50.non2xx + s.c1.non2xx).reduce((a, b) => a + b, 0),
    socketErrors: of((s) => s.c50.socketErrors + s.c1.socketErrors).reduce((a, b) => a + b, 0),
  };
}

/**
 * The median over rounds of `f(a's sample, b's sample)` for two rows measured in the same rounds:
 * each pair was measured seconds apart, under the same conditions, so a machine that is slower
 * in one round than in another moves both. Undefined unless both rows have every round.
 */
export function pairedMedian(
  results: RowResult[],
  a: string,
  b: string,
  f: (a: Sample, b: Sample) => number,
): number | undefined {
  const ra = results.find((r) => r.id === a)?.samples;
  const rb = results.find((r) => r.id === b)?.samples;
  if (!ra || !rb || ra.length === 0 || ra.length !== rb.length) return undefined;
  return median(ra.map((s, i) => f(s, rb[i] as Sample)));
}

export function summaries(results: RowResult[]): Map<string, Summary | undefined> {
  return new Map(results.map((r) => [r.id, summarize(r)]));
}

export function fmtRps(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtLatency(us: number): string {
  return us < 1_000 ? `${Math.round(us)} µs` : `${(us / 1_000).toFixed(2)} ms`;
}

export function fmtRatio(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '–' : `${x.toFixed(2)}x`;
}

export function fmtPercent(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}

/**
 * Checks targets that compare rows: `check(target, ids, measure, ok, show)` measures on the
 * rows' summaries (all present, else "not measured") and marks the check disturbed when another
 * process took CPU while any of those rows was measured.
 */
export function targetChecker(all: Map<string, Summary | undefined>, results: RowResult[] = []) {
  const checks: TargetCheck[] = [];
  const disturbed = (ids: readonly string[]) =>
    ids.some((id) => (all.get(id)?.foreignMax ?? 0) >= DISTURBED_CORES);
  const record = (
    target: string,
    ids: readonly string[],
    x: number | undefined,
    ok: (x: number) => boolean,
    show: (x: number) => string,
    unit?: string,
  ): void => {
    if (x === undefined) {
      checks.push({ target, measured: 'not measured', pass: undefined });
      return;
    }
    checks.push({
      target,
      measured: show(x),
      pass: ok(x),
      ratio: x,
      ...(unit ? { unit } : {}),
      disturbed: disturbed(ids),
    });
  };
  /** A target on the rows' medians. */
  const check = (
    target: string,
    ids: readonly string[],
    measure: (...rows: Summary[]) => number,
    ok: (x: number) => boolean,
    show: (x: number) => string,
    unit?: string,
  ): void => {
    const rows = ids.map((id) => all.get(id));
    const x = rows.some((s) => s === undefined) ? undefined : measure(...(rows as Summary[]));
    record(target, ids, x, ok, show, unit);
  };
  /** A target on two rows compared round by round (pairedMedian of `results`). */
  const paired = (
    target: string,
    ids: readonly [string, string],
    measure: (a: Sample, b: Sample) => number,
    ok: (x: number) => boolean,
    show: (x: number) => string,
    unit?: string,
  ): void => record(target, ids, pairedMedian(results, ids[0], ids[1], measure), ok, show, unit);
  return { checks, check, paired };
}

/** The notes every row gets: its problem, errors, the CPU others took. */
export function commonNotes(r: RowResult, s: Summary | undefined): string[] {
  const notes: string[] = [];
  if (r.problem) notes.push(r.problem);
  if (s) {
    if (s.non2xx > 0) notes.push(`${s.non2xx} non-2xx responses`);
    if (s.socketErrors > 0) notes.push(`${s.socketErrors} socket errors`);
    if (s.foreignMax >= 0.05)
      notes.push(`other processes used up to ${s.foreignMax.toFixed(2)} cores`);
  }
  return notes;
}

export function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/**
 * The report's opening: the title, how it was measured, `pinning` (the bench's own words), CPU
 * stalls, a setup problem, and the disturbed-run warning.
 */
export function reportOpening(
  title: string,
  pinning: string,
  results: RowResult[],
  ctx: RunConditions,
): string[] {
  const lines: string[] = [];
  lines.push(`## ${title}, ${new Date().toISOString().slice(0, 16)}Z`, '');
  lines.push(
    `${ctx.machine}. wrk -t1; each number is the median of ${ctx.rounds} round(s), the rows interleaved within a round; each measurement ${ctx.durationSec} s after a ${ctx.warmupSec} s warm-up at the same concurrency. GET ${ctx.requestPath}; the upstream (nginx, 1 worker) answers 200 with a ${ctx.bodyBytes}-byte body.`,
    '',
  );
  if (ctx.quietWaitSec > 0 || ctx.disturbedRetries > 0)
    lines.push(
      `Shared machine: before each measurement the run waited up to ${ctx.quietWaitSec} s for other processes to use less than 0.1 cores; a round that others disturbed anyway (≥ ${DISTURBED_CORES} cores) was measured again up to ${ctx.disturbedRetries} time(s), the least disturbed kept.`,
      '',
    );
  lines.push(
    ctx.pin
      ? pinning
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
  const foreign = Math.max(0, ...results.map((r) => summarize(r)?.foreignMax ?? 0));
  if (foreign >= DISTURBED_CORES) {
    lines.push(
      `**Disturbed run:** processes that are not this benchmark's used up to ${foreign.toFixed(2)} cores during measurements (see the notes). On 2 cores that is CPU taken from the proxy or from wrk and the upstream: the numbers and the targets below are not reliable. Re-run on a quiet machine.`,
      '',
    );
  }
  return lines;
}

/** The results table: one line per row, medians, and the note `noteFor` writes. */
export function resultsTable(
  results: RowResult[],
  noteFor: (r: RowResult, s: Summary | undefined) => string,
): string[] {
  const lines = [
    '| # | proxy | cpu | req/s @50 | req/s range | p50 @50 | p99 @50 | p50 @1 | p99 @1 | note |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of results) {
    const s = summarize(r);
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
      `| ${r.id} | ${r.name} | ${r.cpu} | ${cells.join(' | ')} | ${markdownCell(noteFor(r, s))} |`,
    );
  }
  return lines;
}

/** Every row's `value` divided by each reference row's. */
export function ratioTable(
  title: string,
  results: RowResult[],
  refs: RowResult[],
  value: (s: Summary) => number,
): string[] {
  if (refs.length === 0) return [];
  const lines = ['', title, ''];
  lines.push(`| # | proxy | ${refs.map((r) => `÷ ${r.id}`).join(' | ')} |`);
  lines.push(`|---|---|${refs.map(() => '--:').join('|')}|`);
  for (const r of results) {
    const s = summarize(r);
    const cells = refs.map((ref) => {
      const b = summarize(ref);
      return fmtRatio(s && b ? value(s) / value(b) : undefined);
    });
    lines.push(`| ${r.id} | ${r.name} | ${cells.join(' | ')} |`);
  }
  return lines;
}

function verdict(c: TargetCheck): string {
  return (
    (c.pass === undefined ? 'n/a' : c.pass ? 'PASS' : 'FAIL') +
    (c.disturbed ? ' (disturbed run)' : '')
  );
}

export function targetsTable(checks: TargetCheck[]): string[] {
  const lines = ['| target | measured | result |', '|---|--:|---|'];
  for (const c of checks) lines.push(`| ${c.target} | ${c.measured} | ${verdict(c)} |`);
  return lines;
}

/** bench/run.ts's rows: req/s @50 and p50 @1 of every row, then every target. */
export function benchRows(bench: string, results: RowResult[], checks: TargetCheck[]): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const r of results) {
    const label = `${r.id} ${r.name}`;
    const s = summarize(r);
    if (!s) {
      rows.push({ bench, case: label, value: NaN, unit: '', note: r.problem });
      continue;
    }
    rows.push({ bench, case: `${label}, req/s @50`, value: s.rps, unit: 'req/s', note: r.cpu });
    rows.push({ bench, case: `${label}, p50 @1`, value: s.p50c1, unit: 'µs' });
  }
  for (const c of checks)
    rows.push({
      bench,
      case: c.target,
      value: c.ratio ?? NaN,
      unit: c.unit ?? 'ratio',
      note: verdict(c),
    });
  return rows;
}
