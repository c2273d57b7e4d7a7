// How far the numbers can be trusted: a shared or virtual machine steals CPU from a benchmark.
// Two measures: stalls a busy loop sees on each core (hypervisor preemption and other load), and
// the CPU that processes other than ours used during each measurement.

import { readdirSync, readFileSync } from 'node:fs';
import { runToEnd } from './child-processes.ts';

/** USER_HZ: the unit of utime and stime in /proc/PID/stat, 100 on every Linux we run on. */
const TICKS_PER_SEC = 100;
const PF_KTHREAD = 0x00200000;

export interface CpuStalls {
  cpu: number;
  maxMs: number;
  over10Ms: number;
  seconds: number;
}

// a busy loop that records the gaps between two reads of the clock: any gap is time this
// core was taken from us
const STALL_LOOP = `
const ms = Number(process.argv[1]);
const start = performance.now();
let last = start, max = 0, over10 = 0, now;
while ((now = performance.now()) - start < ms) {
  const gap = now - last;
  if (gap > max) max = gap;
  if (gap > 10) over10++;
  last = now;
}
console.log(JSON.stringify({ maxMs: max, over10Ms: over10 }));
`;

/** Runs the stall loop on every core in `cpus` at once, for `seconds`. */
export async function measureCpuStalls(
  cpus: number[],
  seconds: number,
  taskset: boolean,
): Promise<CpuStalls[]> {
  return Promise.all(
    cpus.map(async (cpu) => {
      const nodeArgs = ['-e', STALL_LOOP, String(seconds * 1_000)];
      const { code, output } = taskset
        ? await runToEnd('stall meter', 'taskset', [
            '-c',
            String(cpu),
            process.execPath,
            ...nodeArgs,
          ])
        : await runToEnd('stall meter', process.execPath, nodeArgs);
      if (code !== 0) throw new Error(`stall meter exited with ${code}: ${output}`);
      const r = JSON.parse(output) as { maxMs: number; over10Ms: number };
      return { cpu, seconds, ...r };
    }),
  );
}

interface ProcCpu {
  pgid: number;
  ticks: number;
}

/** utime + stime of every user-space process, by pid. Empty where there is no /proc. */
export function sampleProcessCpu(): Map<number, ProcCpu> {
  const out = new Map<number, ProcCpu>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // the command name may hold spaces and parentheses: fields start after the last ')'
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if ((Number(f[6]) & PF_KTHREAD) !== 0) continue;
    out.set(Number(pid), { pgid: Number(f[2]), ticks: Number(f[11]) + Number(f[12]) });
  }
  return out;
}

/**
 * Cores' worth of CPU that processes outside `ourGroups` used between two samples. A lower
 * bound: a process that started and ended between the samples is not seen.
 */
export function foreignCores(
  before: Map<number, ProcCpu>,
  after: Map<number, ProcCpu>,
  ourGroups: Set<number>,
  seconds: number,
): number {
  let ticks = 0;
  for (const [pid, p] of after) {
    if (ourGroups.has(p.pgid)) continue;
    ticks += p.ticks - (before.get(pid)?.ticks ?? 0);
  }
  return ticks / TICKS_PER_SEC / seconds;
}

/** CPU seconds that the processes of `groups` used between two samples. */
export function groupCpuSeconds(
  before: Map<number, ProcCpu>,
  after: Map<number, ProcCpu>,
  groups: Set<number>,
): number {
  let ticks = 0;
  for (const [pid, p] of after) {
    if (!groups.has(p.pgid)) continue;
    ticks += p.ticks - (before.get(pid)?.ticks ?? 0);
  }
  return ticks / TICKS_PER_SEC;
}

/** This process's own group (npm, the shell and the bench itself). */
export function ownProcessGroup(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}
