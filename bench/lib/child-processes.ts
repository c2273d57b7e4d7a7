// Every process a loopback benchmark starts (nginx, proxies, meshgate, wrk) runs in its own
// process group, so one kill(-pgid) also reaches what it forked (nginx workers, meshgate
// workers). The groups are killed at the end of the run, on error, and on Ctrl-C or exit.

import { spawn, type ChildProcess } from 'node:child_process';

const OUTPUT_TAIL = 16_384;
const live = new Set<ManagedProcess>();
const everyGroup = new Set<number>();

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** The last 16 KiB of stdout and stderr, interleaved. */
  output(): string;
  /** The exit code (or the signal's name), once the leader has exited and its output is read. */
  exited: Promise<number | string>;
  hasExited(): boolean;
}

/** Starts `command` as the leader of a new process group, output captured. */
export function startProcess(name: string, command: string, args: string[]): ManagedProcess {
  const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.on('error', (err) => {
      done = true;
      tail += `\n${err.message}`;
      resolve('spawn-error');
    });
    // 'close', not 'exit': it waits for stdout and stderr to be read to the end
    child.on('close', (code, signal) => {
      done = true;
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const proc: ManagedProcess = {
    name,
    child,
    output: () => tail,
    exited,
    hasExited: () => done,
  };
  live.add(proc);
  if (child.pid !== undefined) everyGroup.add(child.pid);
  return proc;
}

function killGroup(proc: ManagedProcess, signal: NodeJS.Signals): void {
  const pid = proc.child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the whole group is gone already
  }
}

async function exitedWithin(proc: ManagedProcess, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([proc.exited.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

/** SIGTERM to the group, SIGKILL to whatever is left after `graceMs`. */
export async function stopProcess(proc: ManagedProcess, graceMs = 3_000): Promise<void> {
  killGroup(proc, 'SIGTERM');
  await exitedWithin(proc, graceMs);
  // also reaches group members that outlived their leader
  killGroup(proc, 'SIGKILL');
  // a process that left the group but holds our pipes would keep 'close' away for ever
  if (!(await exitedWithin(proc, 2_000))) {
    process.stderr.write(`bench: ${proc.name} (pid ${proc.child.pid}) did not exit\n`);
  }
  live.delete(proc);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => stopProcess(p)));
}

/** Every process group this module started, live or not. */
export function startedGroups(): Set<number> {
  return new Set(everyGroup);
}

/** Process groups this module started that still have a member: empty after stopAll. */
export function leftoverGroups(): number[] {
  return [...everyGroup].filter((pgid) => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

function killAllNow(): void {
  for (const proc of live) killGroup(proc, 'SIGKILL');
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Until the returned function is called, Ctrl-C and exit kill every live group first. */
export function killChildrenOnExit(): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${signal}, killing child processes\n`);
    killAllNow();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', killAllNow);
  return () => {
    for (const s of SIGNALS) process.off(s, onSignal);
    process.off('exit', killAllNow);
  };
}

/** Runs a command to completion (its own group, killed with the others on Ctrl-C). */
export async function runToEnd(
  name: string,
  command: string,
  args: string[],
): Promise<{ code: number | string; output: string }> {
  const proc = startProcess(name, command, args);
  const code = await proc.exited;
  killGroup(proc, 'SIGKILL');
  live.delete(proc);
  return { code, output: proc.output() };
}
