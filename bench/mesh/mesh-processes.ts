// The mesh of rows 4 and 5 as an operator runs it: `meshgate control-plane` on the config folder
// and a data folder (the mesh CA's root is in it), a join token per identity from
// `meshgate token create --control-plane ADMIN_URL`, and `meshgate sidecar` processes that join
// with them. Ports are all picked by the kernel and read back from the processes' JSON log lines.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startProcess, type ManagedProcess } from '../lib/child-processes.ts';
import { LOAD_CPU, pinned, PROXY_CPU, type Harness } from '../lib/loopback-bench.ts';
import { lastLines, probe, sleep } from '../lib/probe.ts';

const READY_TIMEOUT_MS = 60_000;

interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

/** The first JSON log line of `proc` whose msg is `msg`, waiting for it to be written. */
async function logLine(proc: ManagedProcess, msg: string, timeoutMs = READY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const text of proc.output().split('\n')) {
      if (!text.includes(`"msg":"${msg}"`)) continue;
      try {
        const line = JSON.parse(text) as LogLine;
        if (line.msg === msg) return line;
      } catch {
        // a line cut by the output tail's start
      }
    }
    if (proc.hasExited())
      throw new Error(`${proc.name} exited with ${await proc.exited}: ${lastLines(proc.output())}`);
    await sleep(50);
  }
  throw new Error(`${proc.name}: no "${msg}" log line in ${timeoutMs} ms`);
}

export interface ControlPlane {
  proc: ManagedProcess;
  discoveryUrl: string;
  adminUrl: string;
}

/** `meshgate control-plane`, on the load core with wrk and the upstream: it is the harness's. */
export async function startControlPlane(
  h: Harness,
  bin: string,
  configDir: string,
  dataDir: string,
): Promise<ControlPlane> {
  const args = [
    bin,
    'control-plane',
    '--config',
    configDir,
    '--data',
    dataDir,
    '--discovery-port',
    '0',
    '--admin-port',
    '0',
  ];
  const [cmd, cmdArgs] = pinned(h, process.execPath, args, LOAD_CPU);
  const proc = startProcess('meshgate control-plane', cmd, cmdArgs);
  const discovery = await logLine(proc, 'discovery listening');
  const admin = await logLine(proc, 'admin API listening');
  return {
    proc,
    discoveryUrl: `https://127.0.0.1:${discovery.port as number}`,
    adminUrl: `http://127.0.0.1:${admin.port as number}`,
  };
}

/** `meshgate token create`, asking the running control plane; the token in a file. */
export async function joinTokenFile(
  bin: string,
  cp: ControlPlane,
  namespace: string,
  serviceAccount: string,
  file: string,
): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      bin,
      'token',
      'create',
      '--namespace',
      namespace,
      '--service-account',
      serviceAccount,
      '--ttl',
      '2h',
      '--control-plane',
      cp.adminUrl,
    ],
    { timeout: 30_000 },
  );
  writeFileSync(file, stdout, { mode: 0o600 });
  return file;
}

export interface SidecarPorts {
  inbound: number;
  outbound: number;
  admin: number;
}

export interface Sidecar {
  proc: ManagedProcess;
  service: string;
  ports: SidecarPorts;
}

export interface SidecarSpec {
  /** The process's name in logs and the report. */
  name: string;
  service: string;
  namespace: string;
  appPort: number;
  /** A join token file for the sidecar's identity (service account = service). */
  tokenFile: string;
  /** The mesh root, to verify the control plane. */
  rootFile: string;
  /** Node options before the CLI (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** The core to pin it to (default: the proxy core). */
  cpu?: number;
}

/**
 * `meshgate sidecar` on the proxy core, access log off (the gateway bench measures its gateway
 * the same way); resolves once its admin /ready says it has a certificate and a view.
 */
export async function startSidecar(
  h: Harness,
  bin: string,
  cp: ControlPlane,
  spec: SidecarSpec,
): Promise<Sidecar> {
  const args = [
    ...(spec.nodeArgs ?? []),
    bin,
    'sidecar',
    '--service',
    spec.service,
    '--namespace',
    spec.namespace,
    '--service-account',
    spec.service,
    '--labels',
    `app=${spec.service}`,
    '--app-port',
    String(spec.appPort),
    '--token',
    spec.tokenFile,
    '--control-plane',
    cp.discoveryUrl,
    '--control-plane-ca',
    spec.rootFile,
    '--inbound-port',
    '0',
    '--outbound-port',
    '0',
    '--admin-port',
    '0',
    '--metrics-port',
    '0',
    '--access-log',
    'off',
    '--drain-seconds',
    '0',
  ];
  const [cmd, cmdArgs] = pinned(h, process.execPath, args, spec.cpu ?? PROXY_CPU);
  const proc = startProcess(spec.name, cmd, cmdArgs);
  const listening = await logLine(proc, 'sidecar listening');
  const ports = {
    inbound: listening.inbound as number,
    outbound: listening.outbound as number,
    admin: listening.admin as number,
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.hasExited())
      throw new Error(`${proc.name} exited with ${await proc.exited}: ${lastLines(proc.output())}`);
    try {
      const { status, body } = await probe(`http://127.0.0.1:${ports.admin}/ready`);
      if (status === 200) return { proc, service: spec.service, ports };
      last = `${status} ${body.slice(0, 120)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${proc.name}: /ready not 200 in ${READY_TIMEOUT_MS / 1000} s (${last})`);
}

/** How many Services the sidecar's current view holds (its admin /config_dump). */
export async function servicesInView(sidecar: Sidecar): Promise<number> {
  const { status, body } = await probe(`http://127.0.0.1:${sidecar.ports.admin}/config_dump`);
  if (status !== 200) throw new Error(`${sidecar.proc.name}: /config_dump answered ${status}`);
  const dump = JSON.parse(body) as { view: { destinations: { service: string }[] } | null };
  // one destination per Service port: "namespace/name:port"
  const services = new Set(
    (dump.view?.destinations ?? []).map((d) => d.service.slice(0, d.service.lastIndexOf(':'))),
  );
  return services.size;
}

/** A wrk script that names the Service in the Host header, as an app calling it by name does. */
export function hostHeaderScript(dir: string, host: string): string {
  const file = join(dir, `host-${host.replace(/[^a-z0-9.-]/gi, '_')}.lua`);
  writeFileSync(
    file,
    `-- The Service the sidecar is asked for.\nwrk.headers["Host"] = "${host}"\n`,
  );
  return file;
}
