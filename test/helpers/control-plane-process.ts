// Runs `meshgate control-plane` as a real process for tests, with its JSON log lines parsed as
// they come (the gateway's process wrapper does that), and its ports read from the log (it is
// started with --discovery-port 0 --admin-port 0 unless told otherwise).

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './cli.ts';
import { GatewayProcess } from './gateway-process.ts';

const running = new Set<ControlPlaneProcess>();

export class ControlPlaneProcess {
  constructor(readonly process: GatewayProcess) {}

  async ports(): Promise<{ discoveryPort: number; adminPort: number }> {
    const discovery = await this.process.waitForLog(
      (l) => l.msg === 'discovery listening',
      'the discovery server',
    );
    return { discoveryPort: discovery.port as number, adminPort: await this.process.adminPort() };
  }

  async kill(): Promise<void> {
    running.delete(this);
    await this.process.kill();
  }
}

export function startControlPlaneProcess(args: string[]): ControlPlaneProcess {
  const extra = [
    ...(args.includes('--discovery-port') ? [] : ['--discovery-port', '0']),
    ...(args.includes('--admin-port') ? [] : ['--admin-port', '0']),
  ];
  const child = spawn(
    process.execPath,
    [join(REPO, 'bin/meshgate.js'), 'control-plane', ...args, ...extra],
    // Its own process group, so the cleanup kills whatever it left.
    { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const p = new ControlPlaneProcess(new GatewayProcess(child));
  running.add(p);
  return p;
}

/** For afterEach: kills every control plane a test left running. */
export async function killControlPlanes(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}
