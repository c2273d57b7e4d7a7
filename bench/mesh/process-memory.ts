// Resident memory of the processes under test, from /proc: VmRSS (now) and VmHWM (the peak since
// the process started) of one process, and VmRSS summed over a process group (nginx's master and
// worker). Undefined where there is no /proc or the process is gone.

import { readFileSync } from 'node:fs';
import { sampleProcessCpu } from '../lib/machine-noise.ts';

export interface Memory {
  rssBytes: number;
  peakBytes: number;
  /** The private part of RSS (heap, stacks, malloc). */
  anonBytes: number;
  /** The file-backed part: mostly pages of the node binary, shared by every node process. */
  fileBytes: number;
}

function statusField(status: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

export function processMemory(pid: number | undefined): Memory | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssBytes = statusField(status, 'VmRSS');
    const peakBytes = statusField(status, 'VmHWM');
    const anonBytes = statusField(status, 'RssAnon');
    const fileBytes = statusField(status, 'RssFile');
    if (
      rssBytes === undefined ||
      peakBytes === undefined ||
      anonBytes === undefined ||
      fileBytes === undefined
    )
      return undefined;
    return { rssBytes, peakBytes, anonBytes, fileBytes };
  } catch {
    return undefined;
  }
}

/** VmRSS summed over every process of the group `pgid`. */
export function groupRss(pgid: number | undefined): number | undefined {
  if (pgid === undefined) return undefined;
  let total = 0;
  let found = false;
  for (const [pid, p] of sampleProcessCpu()) {
    if (p.pgid !== pgid) continue;
    const m = processMemory(pid);
    if (m) {
      total += m.rssBytes;
      found = true;
    }
  }
  return found ? total : undefined;
}

export function fmtMb(bytes: number | undefined): string {
  return bytes === undefined ? '–' : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
