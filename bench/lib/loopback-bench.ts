// The run every loopback benchmark shares (bench/gateway.ts, bench/mesh.ts): install or find
// nginx and wrk, measure the machine's CPU stalls, start the upstream nginx, start and check
// every row's proxies, measure the rows in interleaved rounds, and stop every process at the end,
// on error and on Ctrl-C.
//
// Pinning (2 cores): wrk and the upstream nginx share the load core (1); the proxies under test
// have the proxy core (0) to themselves, so every row gets the same one core and the same load
// generator. Row 1 of each bench, wrk straight to the upstream, is the harness's own ceiling.

import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  killChildrenOnExit,
  leftoverGroups,
  startedGroups,
  stopAll,
  type ManagedProcess,
} from './child-processes.ts';
import { ensureTools, toolVersion, type Tools } from './ensure-tools.ts';
import {
  foreignCores,
  groupCpuSeconds,
  measureCpuStalls,
  ownProcessGroup,
  sampleProcessCpu,
  type CpuStalls,
} from './machine-noise.ts';
import { startNginx, upstreamConfig, UPSTREAM_BODY } from './nginx.ts';
import { checkAnswersLikeUpstream, freePort, lastLines, sleep } from './probe.ts';
import {
  DISTURBED_CORES,
  fmtLatency,
  fmtRps,
  type RowResult,
  type RunConditions,
  type Sample,
} from './results.ts';
import { runWrk } from './wrk.ts';

export const PROXY_CPU = 0;
export const LOAD_CPU = 1;
const STALL_SECONDS = 3;

export function positiveIntEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

function nonNegativeIntEnv(name: string, fallback: number): number {
  return process.env[name] === '0' ? 0 : positiveIntEnv(name, fallback);
}

/** How long and how often each row is measured. */
export interface MeasureSettings {
  /** s per measurement (BENCH_DURATION, 10) */
  durationSec: number;
  /** s of wrk at the same concurrency before each measurement (BENCH_WARMUP, 3) */
  warmupSec: number;
  /** interleaved rounds (BENCH_ROUNDS, 3) */
  rounds: number;
  /**
   * s to wait at most, before each measurement, for the other processes on the machine to go
   * quiet (BENCH_QUIET_WAIT, 0: do not wait)
   */
  quietWaitSec: number;
  /** times a disturbed round of a row is measured again, the least disturbed kept (BENCH_RETRIES, 0) */
  disturbedRetries: number;
}

export function measureSettingsFromEnv(): MeasureSettings {
  return {
    durationSec: positiveIntEnv('BENCH_DURATION', 10),
    warmupSec: positiveIntEnv('BENCH_WARMUP', 3),
    rounds: positiveIntEnv('BENCH_ROUNDS', 3),
    quietWaitSec: nonNegativeIntEnv('BENCH_QUIET_WAIT', 0),
    disturbedRetries: nonNegativeIntEnv('BENCH_RETRIES', 0),
  };
}

/** Row ids from a comma-separated env variable (BENCH_GATEWAY_ROWS=3,5a); empty: every row. */
export function rowsFromEnv(name: string): string[] {
  return (process.env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The row cannot be measured here (a command or a tool is missing): not a failure. */
export class NotAvailable extends Error {}

export function problemOf(err: unknown): string {
  const msg = (err as Error).message.replace(/\s+/g, ' ');
  return err instanceof NotAvailable ? `not available: ${msg}` : `FAILED: ${msg}`;
}

export interface Harness {
  tools: Tools;
  tmp: string;
  upstreamPort: number;
  /** Whether to pin with taskset (2+ cores and taskset present). */
  pin: boolean;
  settings: MeasureSettings;
}

export interface Target {
  url: string;
  procs: ManagedProcess[];
  /** A wrk Lua script (headers the row needs: Authorization, Host). */
  wrkScript?: string;
}

export interface RowSpec<H extends Harness = Harness> {
  id: string;
  name: string;
  cpu(h: H): string;
  start(h: H): Promise<Target>;
}

export interface RunningRow {
  row: RowResult;
  target: Target;
}

/** `taskset -c CPU command …` when pinning, else the command as it is. */
export function pinned(
  h: Harness,
  command: string,
  args: string[],
  cpu: number = PROXY_CPU,
): [string, string[]] {
  return h.pin ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
}

/** CPU of other processes, in cores, under which the machine counts as quiet. */
const QUIET_CORES = 0.1;

/**
 * Waits until processes not ours used less than QUIET_CORES over one second, or `maxSec` passed;
 * returns the seconds waited.
 */
async function waitForQuiet(ours: Set<number>, maxSec: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    const before = sampleProcessCpu();
    const t0 = performance.now();
    await sleep(1_000);
    const busy = foreignCores(before, sampleProcessCpu(), ours, (performance.now() - t0) / 1_000);
    const waited = (performance.now() - start) / 1_000;
    if (busy < QUIET_CORES || waited >= maxSec) return waited;
  }
}

/**
 * One round of one row: a warm-up then a measurement at 50 connections, the same at 1, the CPU
 * that processes not ours took during each measurement, and the CPU the row's own processes
 * spent per request at 50 connections.
 */
export async function measureOnce(h: Harness, target: Target): Promise<Sample> {
  const { url, wrkScript: script } = target;
  const ours = startedGroups();
  const rowGroups = new Set(
    target.procs.map((p) => p.child.pid).filter((pid): pid is number => pid !== undefined),
  );
  const own = ownProcessGroup();
  if (own !== undefined) ours.add(own);
  const wrk = (connections: number, durationSec: number) =>
    runWrk({
      wrk: h.tools.wrk,
      url,
      connections,
      durationSec,
      cpu: h.pin ? LOAD_CPU : undefined,
      ...(script ? { script } : {}),
    });
  const measured = async (connections: number) => {
    if (h.settings.quietWaitSec > 0) {
      const waited = await waitForQuiet(ours, h.settings.quietWaitSec);
      if (waited >= 2)
        process.stderr.write(`  waited ${waited.toFixed(0)} s for other processes to go quiet\n`);
    }
    await wrk(connections, h.settings.warmupSec);
    const before = sampleProcessCpu();
    const t0 = performance.now();
    const result = await wrk(connections, h.settings.durationSec);
    const seconds = (performance.now() - t0) / 1_000;
    const after = sampleProcessCpu();
    const cpu = groupCpuSeconds(before, after, rowGroups);
    return {
      result,
      foreign: foreignCores(before, after, ours, seconds),
      cpuUsPerRequest: result.requests > 0 ? (cpu * 1e6) / result.requests : NaN,
    };
  };
  const c50 = await measured(50);
  const c1 = await measured(1);
  return {
    c50: c50.result,
    c1: c1.result,
    foreignCores: Math.max(c50.foreign, c1.foreign),
    ...(rowGroups.size > 0 ? { cpuUsPerRequest: c50.cpuUsPerRequest } : {}),
  };
}

export function machineLine(tools: Tools | undefined): string {
  let cpu = 'unknown CPU';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = (m[1] as string).trim();
  } catch {
    // not Linux
  }
  const versions = tools
    ? `, ${toolVersion(tools.nginx, ['-v']).replace(/^nginx version: /, '')}, ${toolVersion(tools.wrk, ['-v']).split(' [')[0]}`
    : '';
  return `${cpu}, ${availableParallelism()} cores, Node ${process.version}${versions}`;
}

export interface LoopbackBench<H extends Harness> {
  /** "gateway", "mesh": the log prefix and the temp folder's name. */
  name: string;
  requestPath: string;
  rows: RowSpec<H>[];
  /** Only these row ids (empty: all). */
  onlyRows: string[];
  settings: MeasureSettings;
  /** The bench's own harness: the base one plus what its rows share (started lazily by them). */
  extend(base: Harness): H;
  /** After the rounds, before every process is stopped (e.g. to read the proxies' memory). */
  afterRounds?(h: H, running: RunningRow[]): Promise<void>;
}

export interface LoopbackOutcome {
  results: RowResult[];
  conditions: RunConditions;
  tools: Tools | undefined;
}

/** Runs the rows and stops everything; the results and the conditions they were measured in. */
export async function runLoopbackBench<H extends Harness>(
  bench: LoopbackBench<H>,
): Promise<LoopbackOutcome> {
  const log = (line: string) => process.stderr.write(`${bench.name} bench: ${line}\n`);
  const stopCatching = killChildrenOnExit();
  let tools: Tools | undefined;
  let pin = false;
  let stalls: CpuStalls[] = [];
  let setupProblem: string | undefined;
  let removeTmpOnExit: (() => void) | undefined;
  const results: RowResult[] = [];
  try {
    tools = ensureTools((line) => process.stderr.write(`${line}\n`));
    pin = availableParallelism() >= 2 && tools.taskset !== undefined;
    log(`measuring CPU stalls (${STALL_SECONDS} s)`);
    stalls = await measureCpuStalls(pin ? [PROXY_CPU, LOAD_CPU] : [0], STALL_SECONDS, pin);
    const tmp = mkdtempSync(join(tmpdir(), `meshgate-${bench.name}-bench-`));
    // Ctrl-C ends the process without reaching `finally`
    removeTmpOnExit = () => rmSync(tmp, { recursive: true, force: true });
    process.on('exit', removeTmpOnExit);
    // nginx's workers (user nobody) must reach their temp paths below it
    chmodSync(tmp, 0o755);
    const upstreamPort = await freePort();
    const upstreamDir = join(tmp, 'nginx-upstream');
    const upstream = startNginx(
      'nginx upstream',
      tools.nginx,
      upstreamDir,
      upstreamConfig(upstreamDir, upstreamPort),
      pin ? LOAD_CPU : undefined,
    );
    await checkAnswersLikeUpstream(
      upstream,
      `http://127.0.0.1:${upstreamPort}${bench.requestPath}`,
    );
    const h = bench.extend({ tools, tmp, upstreamPort, pin, settings: bench.settings });

    // Every proxy is started and checked first, then measured in rounds, the rows interleaved
    // and the order reversed every other round, so that a noisy minute on a shared machine
    // does not land on one row only. An idle proxy costs nothing while another is measured.
    const running: RunningRow[] = [];
    const only = bench.onlyRows;
    for (const spec of bench.rows.filter((r) => only.length === 0 || only.includes(r.id))) {
      const row: RowResult = { id: spec.id, name: spec.name, cpu: spec.cpu(h), samples: [] };
      results.push(row);
      log(`starting row ${spec.id}, ${spec.name}`);
      try {
        running.push({ row, target: await spec.start(h) });
      } catch (err) {
        row.problem = problemOf(err);
        log(`  ${row.problem}`);
      }
    }
    const { rounds } = bench.settings;
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? running : [...running].reverse();
      for (const { row, target } of order) {
        if (row.problem) continue;
        const dead = target.procs.find((p) => p.hasExited());
        if (dead) {
          row.problem = `FAILED: ${dead.name} exited during the run: ${lastLines(dead.output())}`;
          log(`  ${row.problem}`);
          continue;
        }
        log(`round ${round}/${rounds}, row ${row.id}, ${row.name}`);
        try {
          let sample = await measureOnce(h, target);
          for (let retry = 1; retry <= bench.settings.disturbedRetries; retry++) {
            if (sample.foreignCores < DISTURBED_CORES) break;
            log(
              `  disturbed (other processes used ${sample.foreignCores.toFixed(2)} cores): measuring again`,
            );
            const again = await measureOnce(h, target);
            if (again.foreignCores < sample.foreignCores) sample = again;
          }
          row.samples.push(sample);
          log(
            `  ${fmtRps(sample.c50.requestsPerSec)} req/s @50, p50 @1 ${fmtLatency(sample.c1.p50Us)}` +
              (sample.cpuUsPerRequest !== undefined
                ? `, ${sample.cpuUsPerRequest.toFixed(0)} µs CPU per request`
                : '') +
              (sample.foreignCores >= 0.05
                ? `, other processes used ${sample.foreignCores.toFixed(2)} cores`
                : ''),
          );
        } catch (err) {
          row.problem = problemOf(err);
          log(`  ${row.problem}`);
        }
      }
    }
    await bench.afterRounds?.(h, running);
  } catch (err) {
    setupProblem = (err as Error).message;
    log(setupProblem);
  } finally {
    await stopAll();
    const left = leftoverGroups();
    if (left.length > 0) log(`WARNING, process groups still alive: ${left}`);
    if (removeTmpOnExit) {
      removeTmpOnExit();
      process.off('exit', removeTmpOnExit);
    }
    stopCatching();
  }
  return {
    results,
    tools,
    conditions: {
      machine: machineLine(tools),
      ...bench.settings,
      requestPath: bench.requestPath,
      bodyBytes: Buffer.byteLength(UPSTREAM_BODY),
      pin,
      proxyCpu: PROXY_CPU,
      loadCpu: LOAD_CPU,
      stalls,
      ...(setupProblem !== undefined ? { setupProblem } : {}),
    },
  };
}
