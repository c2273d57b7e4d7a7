// One wrk run (one thread, pinned) and the numbers we read from its `--latency` report.

import { runToEnd } from './child-processes.ts';

export interface WrkResult {
  requestsPerSec: number;
  /** Latency percentiles in microseconds, from wrk's "Latency Distribution". */
  p50Us: number;
  p99Us: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

export interface WrkOptions {
  wrk: string;
  url: string;
  connections: number;
  durationSec: number;
  /** `taskset -c CPU wrk …`, or no pinning when undefined. */
  cpu?: number;
  /** A Lua script (`-s`), e.g. one that adds an Authorization header. */
  script?: string;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1_000, s: 1_000_000, m: 60_000_000 };

function toMicros(value: string, unit: string): number {
  const scale = UNIT_US[unit];
  if (scale === undefined) throw new Error(`wrk: unknown latency unit "${unit}"`);
  return Number(value) * scale;
}

/** Parses wrk's text report; throws when a number we need is missing. */
export function parseWrkOutput(text: string): WrkResult {
  const percentile = (p: number): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    if (!m) throw new Error(`wrk: no ${p}% latency in output:\n${text}`);
    return toMicros(m[1] as string, m[2] as string);
  };
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  if (!rps) throw new Error(`wrk: no Requests/sec in output:\n${text}`);
  const requests = /^\s*(\d+) requests in /m.exec(text);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    requestsPerSec: Number(rps[1]),
    p50Us: percentile(50),
    p99Us: percentile(99),
    requests: requests ? Number(requests[1]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock ? sock.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

export async function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const wrkArgs = [
    '-t1',
    `-c${opts.connections}`,
    `-d${opts.durationSec}s`,
    '--latency',
    ...(opts.script ? ['-s', opts.script] : []),
    opts.url,
  ];
  const [command, args] =
    opts.cpu === undefined
      ? [opts.wrk, wrkArgs]
      : ['taskset', ['-c', String(opts.cpu), opts.wrk, ...wrkArgs]];
  const { code, output } = await runToEnd('wrk', command, args);
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${output}`);
  return parseWrkOutput(output);
}
