// Runs a TypeScript script of an example (its sample upstreams, its token issuer) as a real
// process, as its README does (`node --import tsx FILE`): JSON log lines parsed as they come, the
// whole output kept, its own process group, and a cleanup that kills whatever is left.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './cli.ts';
import { GatewayProcess } from './gateway-process.ts';

const running = new Set<GatewayProcess>();

export interface ExampleScript {
  process: GatewayProcess;
  /** Everything it wrote on stdout so far. */
  readonly stdout: string;
}

export function startExampleScript(file: string, args: string[] = []): ExampleScript {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, file), ...args], {
    cwd: REPO,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer | string) => (stdout += String(chunk)));
  const p = new GatewayProcess(child);
  running.add(p);
  void p.exited.then(() => running.delete(p));
  return {
    process: p,
    get stdout() {
      return stdout;
    },
  };
}

/** Resolves once the script has logged `count` lines with msg "listening". */
export async function listening(script: ExampleScript, count: number): Promise<void> {
  const p = script.process;
  await p.waitForLog(
    () => p.logs.filter((l) => l.msg === 'listening').length >= count,
    `${count} "listening" lines`,
  );
}

/** For afterAll: kills every script a test left running. */
export async function killExampleScripts(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}
