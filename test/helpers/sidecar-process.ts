// Runs `meshgate sidecar` as a real process for tests: every port picked by the kernel (read
// back from the "sidecar listening" log line), its access log parsed as it comes, a join token
// from the control plane under test, and a cleanup that kills whatever is left.

import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { REPO } from './cli.ts';
import { GatewayProcess, type LogLine } from './gateway-process.ts';

/** What a sidecar needs of the control plane it joins (TestControlPlane has it). */
export interface ControlPlaneAccess {
  discoveryUrl: string;
  rootPem: string;
  tokenFile(namespace: string, serviceAccount: string): Promise<string>;
}

export interface SidecarProcessOptions {
  service: string;
  namespace: string;
  serviceAccount?: string;
  appPort: number;
  labels?: Record<string, string>;
  /** Default stdout, so that tests can read the access log. */
  accessLog?: string;
  drainSeconds?: number;
  args?: string[];
}

export interface SidecarPorts {
  inbound: number;
  outbound: number;
  admin: number;
  metrics: number;
}

const running = new Set<SidecarProcess>();
const caFiles = new Map<string, string>();

/** A file holding the mesh root, written once per root (for --control-plane-ca). */
export async function caFileFor(rootPem: string): Promise<string> {
  let file = caFiles.get(rootPem);
  if (!file) {
    file = join(await mkdtemp(join(tmpdir(), 'meshgate-ca-file-')), 'root.pem');
    await writeFile(file, rootPem);
    caFiles.set(rootPem, file);
  }
  return file;
}

export class SidecarProcess {
  private outboundPool: Pool | undefined;

  constructor(
    readonly process: GatewayProcess,
    readonly options: SidecarProcessOptions,
  ) {}

  get logs(): LogLine[] {
    return this.process.logs;
  }

  async ports(): Promise<SidecarPorts> {
    const l = await this.process.waitForLog((x) => x.msg === 'sidecar listening', 'the listeners');
    return {
      inbound: l.inbound as number,
      outbound: l.outbound as number,
      admin: l.admin as number,
      metrics: l.metrics as number,
    };
  }

  /** /ready is 200: a certificate and a view. */
  async ready(): Promise<this> {
    await this.process.ready();
    return this;
  }

  /**
   * Waits until this sidecar's view lists a mesh endpoint (a registered peer sidecar) for every
   * one of `services` ("ns/name:port"): /ready only says a view exists, not that every peer that
   * joined before has reached it.
   */
  async meshEndpointsFor(...services: string[]): Promise<void> {
    for (let i = 0; i < 400; i++) {
      const dump = (
        await this.admin<{
          view: { destinations: { service: string; mesh: unknown[] }[] } | null;
        }>('/config_dump')
      ).body;
      const listed = (k: string) =>
        dump.view?.destinations.some((d) => d.service === k && d.mesh.length > 0) === true;
      if (services.every(listed)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the sidecar's view never listed mesh endpoints for ${services.join(', ')}`);
  }

  admin<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }> {
    return this.process.admin<T>(path);
  }

  /** A pool to the outbound listener (the app's side), closed with the sidecar. */
  async outbound(): Promise<Pool> {
    this.outboundPool ??= new Pool(`http://127.0.0.1:${(await this.ports()).outbound}`);
    return this.outboundPool;
  }

  /** The access log line of one request (by x-request-id). */
  accessLog(requestId: string, timeoutMs = 10_000): Promise<LogLine> {
    return this.process.waitForLog(
      (l) => l.msg === 'request' && l.request_id === requestId,
      `the access log line of ${requestId}`,
      timeoutMs,
    );
  }

  /** SIGTERM, and the exit. */
  async stop() {
    await this.outboundPool?.destroy();
    this.outboundPool = undefined;
    const exit = await this.process.stop();
    running.delete(this);
    return exit;
  }

  async kill(): Promise<void> {
    await this.outboundPool?.destroy();
    this.outboundPool = undefined;
    running.delete(this);
    await this.process.kill();
  }
}

/** Starts `meshgate sidecar` joined to `cp`, with a fresh token of its identity. */
export async function startSidecar(
  cp: ControlPlaneAccess,
  options: SidecarProcessOptions,
): Promise<SidecarProcess> {
  const sa = options.serviceAccount ?? options.service;
  const [token, ca] = await Promise.all([
    cp.tokenFile(options.namespace, sa),
    caFileFor(cp.rootPem),
  ]);
  const labels = Object.entries(options.labels ?? { app: options.service })
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const args = [
    join(REPO, 'bin/meshgate.js'),
    'sidecar',
    '--service',
    options.service,
    '--namespace',
    options.namespace,
    '--service-account',
    sa,
    '--app-port',
    String(options.appPort),
    '--token',
    token,
    '--control-plane',
    cp.discoveryUrl,
    '--control-plane-ca',
    ca,
    ...(labels ? ['--labels', labels] : []),
    '--inbound-port',
    '0',
    '--outbound-port',
    '0',
    '--admin-port',
    '0',
    '--metrics-port',
    '0',
    '--access-log',
    options.accessLog ?? 'stdout',
    '--drain-seconds',
    String(options.drainSeconds ?? 5),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const p = new SidecarProcess(new GatewayProcess(child), options);
  running.add(p);
  return p;
}

/** For afterAll/afterEach: kills every sidecar a test left running. */
export async function killSidecars(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}
