// `meshgate demo` (`npm start`): the whole product on one machine, unprivileged, on 127.0.0.1:
// the control plane, the edge gateway joined to the mesh, and Istio's Bookinfo sample with every
// instance behind its own sidecar. It runs the config folder (examples/bookinfo) as the ordinary
// manifests it is, and prints what to try.
//
// Ports. Everything the demo does not have to know in advance listens on a port the kernel picks
// (read back from each process's log). The app ports and the JWKS address are written in the
// manifests (a Service's targetPort, a remoteJWKS uri); the demo uses them when they are free and
// otherwise picks free ones, and then serves a copy of the folder, in its data folder, with those
// numbers changed. The copy is kept in step with the folder while the demo runs, so an edit to
// examples/bookinfo is hot-reloaded all the same. `--base-port N` makes every port N, N+1, ….
//
// Processes. Each child runs in its own process group (so that a Ctrl-C in the terminal reaches
// the demo alone, and the demo can stop them in order: gateway, sidecars, apps, control plane) and
// gets SIGTERM, a bounded wait, then SIGKILL for whatever is left of its group.

import { spawn, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatConfigError } from '../../shared/config/errors.ts';
import { loadConfig, ConfigFolderError } from '../../shared/config/load.ts';
import type { Resource } from '../../shared/config/resource.ts';
import { UsageError } from './usage-error.ts';
import { DEMO_USAGE } from './usage.ts';

/** The package root: the nearest folder up with a package.json (this file may run from dist/). */
function packageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return from;
  }
}

const REPO = packageRoot(dirname(fileURLToPath(import.meta.url)));
const CLI = join(REPO, 'bin/meshgate.js');
const DEFAULT_DIR = join(REPO, 'examples/bookinfo');
const NAMESPACE = 'bookinfo';
const GATEWAY_NAMESPACE = 'meshgate-system';
const GATEWAY_SERVICE_ACCOUNT = 'meshgate-gateway';
/** How long one process may take to drain after SIGTERM before its group is killed. */
const STOP_TIMEOUT_MS = 8_000;
/** Startup, from the first process to the printed try list; bounded so a failure is reported. */
const START_TIMEOUT_MS = 90_000;

/** One Bookinfo instance: an app process and its sidecar. */
interface Workload {
  name: string;
  role: 'productpage' | 'details' | 'reviews' | 'ratings';
  version: string;
  /** The Service the sidecar names itself after (--service). */
  service: string;
  serviceAccount: string;
  /** The Service whose targetPort is this instance's app port. */
  portService: string;
}

const WORKLOADS: readonly Workload[] = [
  ['productpage', 'v1', 'productpage'],
  ['details', 'v1', 'details'],
  ['reviews', 'v1', 'reviews-v1'],
  ['reviews', 'v2', 'reviews-v2'],
  ['reviews', 'v3', 'reviews-v3'],
  ['ratings', 'v1', 'ratings'],
].map(([role, version, portService]) => ({
  name: `${role}-${version}`,
  role: role as Workload['role'],
  version: version as string,
  service: role as string,
  // Bookinfo gives every reviews version one account; here each has its own, so that ratings can
  // admit v2 and v3 by identity and the printed callers say which version called.
  serviceAccount: role === 'reviews' ? `bookinfo-reviews-${version}` : `bookinfo-${role}`,
  portService: portService as string,
}));

interface JwtProvider {
  issuer: string;
  audience: string | undefined;
  jwksUrl: URL;
}

/** What the demo reads from the manifests before it starts anything. */
interface Plan {
  appPorts: Map<string, number>;
  listenerPorts: number[];
  providers: JwtProvider[];
}

export async function runDemo(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        dir: { type: 'string' },
        'base-port': { type: 'string' },
        data: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${DEMO_USAGE}`);
  }
  const v = parsed.values;
  const dir = v.dir === undefined ? DEFAULT_DIR : resolve(v.dir);
  let basePort: number | undefined;
  if (v['base-port'] !== undefined) {
    basePort = Number(v['base-port']);
    if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65_535 - 64)
      throw new UsageError(`--base-port ${v['base-port']}: expected an integer from 1024 to 65471`);
  }
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new ConfigFolderError(`config folder ${dir} does not exist or is not a folder`);

  const plan = await readPlan(dir);
  if (typeof plan === 'string') {
    process.stderr.write(`meshgate demo: ${plan}\n`);
    return 1;
  }
  const demo = new Demo(dir, plan, basePort, v.data);
  return demo.run();
}

/** Loads the folder (it must parse) and finds the ports and issuers it names. */
async function readPlan(dir: string): Promise<Plan | string> {
  const loaded = await loadConfig(dir);
  if (loaded.parse.errors.length > 0)
    return `${displayPath(dir)} does not parse; \`meshgate validate\` shows every error:\n${loaded.parse.errors
      .map((e) => `  ${formatConfigError(e)}`)
      .join('\n')}`;
  const resources = loaded.parse.resources;
  const appPorts = new Map<string, number>();
  for (const w of WORKLOADS) {
    const svc = resources.find(
      (r) =>
        r.kind === 'Service' &&
        r.metadata.namespace === NAMESPACE &&
        r.metadata.name === w.portService,
    ) as Resource<{ ports?: { targetPort?: unknown; port: number }[] }> | undefined;
    const port = svc?.spec.ports?.[0];
    const target = port?.targetPort ?? port?.port;
    if (typeof target !== 'number')
      return `${w.name} runs on the numeric targetPort of Service ${NAMESPACE}/${w.portService}, and the folder has ${svc ? 'no numeric targetPort on it' : 'no such Service'}`;
    appPorts.set(w.name, target);
  }
  const listenerPorts = resources
    .filter((r) => r.kind === 'Gateway')
    .flatMap((r) => (r as Resource<{ listeners: { port: number }[] }>).spec.listeners)
    .map((l) => l.port);
  if (listenerPorts.length === 0) return 'the folder has no Gateway listener for the edge';
  const providers: JwtProvider[] = [];
  for (const r of resources.filter((x) => x.kind === 'SecurityPolicy')) {
    const spec = r.spec as {
      jwt?: {
        providers: { issuer?: string; audiences?: string[]; remoteJWKS?: { uri: string } }[];
      };
    };
    for (const p of spec.jwt?.providers ?? []) {
      if (!p.remoteJWKS) continue;
      let url: URL;
      try {
        url = new URL(p.remoteJWKS.uri);
      } catch {
        continue;
      }
      // The demo is the issuer of every provider whose keys are on this machine.
      if (url.protocol !== 'http:' || !['127.0.0.1', 'localhost'].includes(url.hostname)) continue;
      providers.push({
        issuer: p.issuer ?? 'meshgate-demo',
        audience: p.audiences?.[0],
        jwksUrl: url,
      });
    }
  }
  return { appPorts, listenerPorts, providers };
}

// --- ports ---

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createNetServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Hands out ports: with a base, base+slot, which must be free; otherwise the port asked for when
 * it is free, else one the kernel picks; 0 ("let the process pick") for ports nobody needs first.
 */
class PortPlanner {
  constructor(private readonly base: number | undefined) {}

  async fixed(slot: number, preferred: number | undefined, what: string): Promise<number> {
    if (this.base !== undefined) {
      const port = this.base + slot;
      if (!(await canBind(port)))
        throw new DemoError(`port ${port} (${what}, --base-port + ${slot}) is in use`);
      return port;
    }
    if (preferred !== undefined && preferred > 0 && (await canBind(preferred))) return preferred;
    return freePort();
  }

  /** A port for a process that reports what it bound: base+slot, or 0. */
  any(slot: number): number {
    return this.base === undefined ? 0 : this.base + slot;
  }
}

class DemoError extends Error {}

// --- the copy of the config folder the control plane reads ---

const CONFIG_FILE = /\.(ya?ml|json)$/i;

/**
 * Writes `from` into `to` with the demo's port numbers in place of the manifests' (targetPorts of
 * Services, loopback URLs), writing only files that changed and removing files that went away.
 * Line numbers stay the same, so an error the control plane reports points at the right line of
 * the file the user edits.
 */
function mirrorFolder(from: string, to: string, ports: ReadonlyMap<number, number>): string[] {
  const targetPort = /(\btargetPort["']?\s*:\s*)(\d+)\b/g;
  const loopback = /(\/\/(?:127\.0\.0\.1|localhost):)(\d+)\b/g;
  const remap = (text: string) => {
    const swap = (_m: string, prefix: string, n: string) =>
      `${prefix}${ports.get(Number(n)) ?? Number(n)}`;
    return text.replace(targetPort, swap).replace(loopback, swap);
  };
  const written: string[] = [];
  const seen = new Set<string>();
  const walk = (rel: string) => {
    mkdirSync(join(to, rel), { recursive: true });
    for (const e of readdirSync(join(from, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue;
      const r = join(rel, e.name);
      if (e.isDirectory()) {
        seen.add(r);
        walk(r);
        continue;
      }
      if (!e.isFile()) continue;
      seen.add(r);
      const raw = readFileSync(join(from, r));
      const out = CONFIG_FILE.test(e.name) ? Buffer.from(remap(raw.toString('utf8'))) : raw;
      const target = join(to, r);
      if (existsSync(target) && readFileSync(target).equals(out)) continue;
      // Written aside and renamed, so the control plane never reads half a file.
      const tmp = join(to, rel, `.${e.name}.mirror`);
      writeFileSync(tmp, out);
      renameSync(tmp, target);
      written.push(r);
    }
  };
  walk('');
  const prune = (rel: string) => {
    for (const e of readdirSync(join(to, rel), { withFileTypes: true })) {
      const r = join(rel, e.name);
      if (e.name.startsWith('.')) continue;
      if (!seen.has(r)) {
        rmSync(join(to, r), { recursive: true, force: true });
        written.push(r);
      } else if (e.isDirectory()) prune(r);
    }
  };
  prune('');
  return written;
}

// --- child processes ---

interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

/** A child in its own process group, its output in a log file, its JSON log lines watched. */
class Child {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  stopping = false;
  private readonly recent: LogLine[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly listeners: ((l: LogLine) => void)[] = [];
  private readonly log: WriteStream;
  private readonly child: ChildProcess;

  constructor(
    readonly name: string,
    args: string[],
    readonly logFile: string,
    options: { ipc?: boolean } = {},
  ) {
    this.log = createWriteStream(logFile, { flags: 'a' });
    this.child = spawn(process.execPath, args, {
      cwd: REPO,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', ...(options.ipc ? (['ipc'] as const) : [])],
    });
    let buffered = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.log.write(chunk);
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const text of lines) {
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          continue;
        }
        if (line.msg === 'request') continue; // access log lines: in the file only
        this.recent.push(line);
        if (this.recent.length > 200) this.recent.shift();
        for (const l of this.listeners) l(line);
      }
      this.wake();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.log.write(chunk));
    this.child.on('error', (err) => this.log.write(`spawn error: ${err.message}\n`));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.wake();
        resolve(this.exit);
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  onLine(listener: (l: LogLine) => void): void {
    this.listeners.push(listener);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** The first log line (since start) that passes `test`; rejects on exit or after `timeoutMs`. */
  waitForLine(test: (l: LogLine) => boolean, what: string, timeoutMs = 30_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.recent.find(test);
        if (found) return done(() => resolve(found));
        if (this.exit)
          done(() =>
            reject(
              new DemoError(
                `${this.name} exited (${this.exit?.signal ?? `code ${this.exit?.code}`}) before ${what}; see ${this.logFile}`,
              ),
            ),
          );
      };
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new DemoError(`${this.name}: timed out waiting for ${what}; see ${this.logFile}`),
            ),
          ),
        timeoutMs,
      );
      this.waiters.add(check);
      check();
    });
  }

  /** SIGTERM to the group, a bounded wait, then SIGKILL to whatever is left of the group. */
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    this.stopping = true;
    if (this.pid > 0 && !this.exit) signalGroup(this.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    // The leader may be gone and leave workers behind; the group tells.
    if (this.pid > 0 && groupAlive(this.pid)) {
      signalGroup(this.pid, 'SIGKILL');
      for (let i = 0; i < 100 && groupAlive(this.pid); i++) await sleep(20);
    }
    // A child that never started has no exit to wait for.
    if (this.pid > 0) await this.exited;
    await new Promise<void>((r) => this.log.end(r));
  }

  kill(): void {
    this.stopping = true;
    if (this.pid > 0) signalGroup(this.pid, 'SIGKILL');
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function getJson<T>(url: string): Promise<{ status: number; body: T | undefined }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    let body: T | undefined;
    try {
      body = JSON.parse(text) as T;
    } catch {
      body = undefined;
    }
    return { status: res.status, body };
  } catch {
    return { status: 0, body: undefined };
  }
}

/** Polls `probe` until it returns a value, or throws naming `what` when `deadline` passes. */
async function until<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  deadline: number,
): Promise<T> {
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new DemoError(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// --- the demo ---

interface SidecarPorts {
  inbound: number;
  outbound: number;
  admin: number;
  metrics: number;
}

interface Instance {
  workload: Workload;
  appPort: number;
  sidecar: Child;
  ports: SidecarPorts;
  app: Child;
}

/** One "try" line: a description, a command, and what it prints. */
interface Try {
  title: string;
  command: string;
  expect: string | string[];
}

class Demo {
  private readonly children: Child[] = [];
  private readonly dataDir: string;
  private readonly removeData: boolean;
  private readonly startedAt = Date.now();
  private readonly jwksServers: Server[] = [];
  private mirrorWatch: { close(): void } | undefined;
  private stopping: Promise<number> | undefined;
  private ready = false;

  constructor(
    private readonly dir: string,
    private readonly plan: Plan,
    private readonly basePort: number | undefined,
    data: string | undefined,
  ) {
    if (data !== undefined) {
      this.dataDir = resolve(data);
      mkdirSync(this.dataDir, { recursive: true });
      this.removeData = false;
    } else {
      this.dataDir = mkdtempSync(join(tmpdir(), 'meshgate-demo-'));
      this.removeData = true;
    }
  }

  async run(): Promise<number> {
    let resolveExit: (code: number) => void = () => undefined;
    const exit = new Promise<number>((r) => (resolveExit = r));
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.stopping) {
        // A second Ctrl-C: no more waiting.
        process.stdout.write(`\n${signal} again: killing every process now\n`);
        for (const c of this.children) c.kill();
        return;
      }
      process.stdout.write(`\n${signal}: stopping every process…\n`);
      void this.stop().then(resolveExit);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
    // Last resort, if the demo itself fails: no child outlives it.
    process.on('exit', () => {
      for (const c of this.children) if (!c.exit) c.kill();
    });
    try {
      await this.start();
    } catch (err) {
      if (this.stopping) return exit;
      const message = err instanceof DemoError ? err.message : (err as Error).stack;
      process.stderr.write(`meshgate demo: cannot start: ${message}\n`);
      // The logs say why: they stay.
      await this.stop({ keepData: this.children.length > 0 });
      if (this.children.length > 0)
        process.stderr.write(`the logs are in ${join(this.dataDir, 'logs')}\n`);
      return 1;
    }
    return exit;
  }

  private async start(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    const { plan } = this;
    const planner = new PortPlanner(this.basePort);
    const dirs = {
      config: join(this.dataDir, 'config'),
      mesh: join(this.dataDir, 'mesh'),
      tokens: join(this.dataDir, 'tokens'),
      logs: join(this.dataDir, 'logs'),
    };
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    process.stdout.write(
      `meshgate demo: Bookinfo on 127.0.0.1, every instance behind its own sidecar; starting…\n`,
    );

    // Ports written in the manifests: used when free, else swapped in the served copy.
    const listenerLow = Math.min(...plan.listenerPorts);
    const edgePort = await planner.fixed(0, listenerLow, 'the gateway listener');
    let portOffset = edgePort - listenerLow;
    for (const p of plan.listenerPorts) {
      if (p + portOffset > 65_535 || (p !== listenerLow && !(await canBind(p + portOffset)))) {
        if (this.basePort !== undefined)
          throw new DemoError(`listener port ${p} + offset ${portOffset} is not free`);
        portOffset = (await freePort()) - listenerLow;
      }
    }
    const remap = new Map<number, number>();
    const jwksPorts = [...new Set(plan.providers.map((p) => Number(p.jwksUrl.port || 80)))];
    const jwksServed = new Map<number, number>();
    for (const [i, port] of jwksPorts.entries()) {
      const chosen = await planner.fixed(5 + i, port, 'the JWKS of the demo issuer');
      jwksServed.set(port, chosen);
      if (chosen !== port) remap.set(port, chosen);
    }
    const appPorts = new Map<string, number>();
    for (const [i, w] of WORKLOADS.entries()) {
      const manifest = plan.appPorts.get(w.name) as number;
      const chosen = await planner.fixed(10 + i * 5, manifest, `the ${w.name} app`);
      appPorts.set(w.name, chosen);
      if (chosen !== manifest) remap.set(manifest, chosen);
    }
    mirrorFolder(this.dir, dirs.config, remap);
    this.watchFolder(dirs.config, remap);

    // The demo's JWT issuer: a key made now (none is committed), its JWKS on loopback.
    const issuer = await this.startIssuer(jwksServed);

    // Join tokens, written straight into the control plane's token store.
    const { JoinTokenStore } = await import('../../shared/identity/join-tokens.ts');
    const store = new JoinTokenStore(dirs.mesh);
    const tokenFile = async (name: string, namespace: string, serviceAccount: string) => {
      const { token } = await store.create({ namespace, serviceAccount });
      const file = join(dirs.tokens, `${name}.token`);
      writeFileSync(file, `${token}\n`, { mode: 0o600 });
      return file;
    };

    // The control plane.
    const cp = this.spawn(
      'control-plane',
      [
        'control-plane',
        '--config',
        dirs.config,
        '--data',
        dirs.mesh,
        '--discovery-port',
        String(planner.any(2)),
        '--admin-port',
        String(planner.any(3)),
      ],
      dirs.logs,
    );
    const discoveryPort = (
      await cp.waitForLine((l) => l.msg === 'discovery listening', 'its discovery port')
    ).port as number;
    const cpAdminPort = (
      await cp.waitForLine((l) => l.msg === 'admin API listening', 'its admin port')
    ).port as number;
    const discoveryUrl = `https://127.0.0.1:${discoveryPort}`;
    const cpAdmin = `http://127.0.0.1:${cpAdminPort}`;
    const caFile = join(dirs.mesh, 'ca', 'root-cert.pem');

    // One sidecar per instance, then its app (which needs the sidecar's outbound port).
    const instances = await Promise.all(
      WORKLOADS.map(async (w, i): Promise<Instance> => {
        const appPort = appPorts.get(w.name) as number;
        const slot = 11 + i * 5;
        const sidecar = this.spawn(
          `${w.name}-sidecar`,
          [
            'sidecar',
            '--service',
            w.service,
            '--namespace',
            NAMESPACE,
            '--service-account',
            w.serviceAccount,
            '--labels',
            `app=${w.service},version=${w.version}`,
            '--app-port',
            String(appPort),
            '--token',
            await tokenFile(w.name, NAMESPACE, w.serviceAccount),
            '--control-plane',
            discoveryUrl,
            '--control-plane-ca',
            caFile,
            '--inbound-port',
            String(planner.any(slot)),
            '--outbound-port',
            String(planner.any(slot + 1)),
            '--admin-port',
            String(planner.any(slot + 2)),
            '--metrics-port',
            String(planner.any(slot + 3)),
            '--drain-seconds',
            '2',
          ],
          dirs.logs,
        );
        const l = await sidecar.waitForLine((x) => x.msg === 'sidecar listening', 'its ports');
        const ports = {
          inbound: l.inbound as number,
          outbound: l.outbound as number,
          admin: l.admin as number,
          metrics: l.metrics as number,
        };
        const app = this.spawn(
          `${w.name}-app`,
          [
            '--import',
            'tsx',
            join(REPO, 'examples/bookinfo/apps/bookinfo-app.ts'),
            '--role',
            w.role,
            '--version',
            w.version,
            '--port',
            String(appPort),
            '--outbound-port',
            String(ports.outbound),
            '--namespace',
            NAMESPACE,
          ],
          dirs.logs,
          { ipc: true, script: true },
        );
        await app.waitForLine((x) => x.msg === 'listening', 'its port');
        return { workload: w, appPort, sidecar, ports, app };
      }),
    );

    // The edge gateway, a member of the mesh with its own identity.
    const gateway = this.spawn(
      'gateway',
      [
        'gateway',
        '--control-plane',
        discoveryUrl,
        '--token',
        await tokenFile('gateway', GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT),
        '--control-plane-ca',
        caFile,
        '--port-offset',
        String(portOffset),
        '--admin-port',
        String(planner.any(4)),
        '--workers',
        '1',
        '--drain-seconds',
        '2',
      ],
      dirs.logs,
    );
    const gwAdminPort = (
      await gateway.waitForLine((l) => l.msg === 'admin API listening', 'its admin port')
    ).port as number;
    const gwAdmin = `http://127.0.0.1:${gwAdminPort}`;
    const edge = `http://127.0.0.1:${listenerLow + portOffset}`;

    // Ready: every proxy has a certificate and a view, the callers' views list every instance,
    // the gateway reaches what it routes to, and the control plane sees every proxy SYNCED.
    await until(
      async () => ((await getJson(`${gwAdmin}/ready`)).status === 200 ? true : undefined),
      'the gateway to be ready',
      deadline,
    );
    for (const inst of instances)
      await until(
        async () =>
          (await getJson(`http://127.0.0.1:${inst.ports.admin}/ready`)).status === 200
            ? true
            : undefined,
        `the ${inst.workload.name} sidecar to be ready`,
        deadline,
      );
    const mustSee: Record<string, string[]> = {
      'productpage-v1': ['details', 'reviews-v1', 'reviews-v2', 'reviews-v3'],
      'reviews-v2': ['ratings'],
      'reviews-v3': ['ratings'],
    };
    for (const inst of instances) {
      const services = mustSee[inst.workload.name];
      if (!services) continue;
      await until(
        async () => {
          const dump = await getJson<{
            view: { destinations: { service: string; mesh: unknown[] }[] } | null;
          }>(`http://127.0.0.1:${inst.ports.admin}/config_dump`);
          const ok = services.every((s) =>
            dump.body?.view?.destinations.some(
              (d) => d.service === `${NAMESPACE}/${s}:9080` && d.mesh.length > 0,
            ),
          );
          return ok ? true : undefined;
        },
        `${inst.workload.name}'s sidecar to list ${services.join(', ')}`,
        deadline,
      );
    }
    // The gateway reaches the services it routes to: an answer from their sidecars (whatever
    // the policies say), not 404 (no route yet) or 503 (no endpoints yet).
    for (const path of ['/productpage', '/ratings/0'])
      await until(
        async () => {
          const res = await fetch(`${edge}${path}`, { signal: AbortSignal.timeout(5_000) }).catch(
            () => undefined,
          );
          await res?.body?.cancel();
          return res && res.status !== 404 && res.status < 500 ? true : undefined;
        },
        `the gateway to reach ${path}`,
        deadline,
      );
    const proxies = WORKLOADS.length + 1;
    await until(
      async () => {
        const s = await getJson<{ proxies: { state: string }[] }>(`${cpAdmin}/status`);
        const all = s.body?.proxies ?? [];
        return all.length === proxies && all.every((p) => p.state === 'SYNCED') ? true : undefined;
      },
      `the control plane to see ${proxies} proxies SYNCED`,
      deadline,
    );

    this.relayEvents(cp, gateway);
    this.ready = true;
    this.print({ cp, cpAdmin, discoveryUrl, gateway, gwAdmin, edge, instances, issuer, remap });
  }

  private spawn(
    name: string,
    args: string[],
    logs: string,
    options: { ipc?: boolean; script?: boolean } = {},
  ): Child {
    if (this.stopping) throw new DemoError('stopping');
    const child = new Child(
      name,
      options.script ? args : [CLI, ...args],
      join(logs, `${name}.log`),
      {
        ipc: options.ipc === true,
      },
    );
    this.children.push(child);
    void child.exited.then((e) => {
      if (child.stopping || this.stopping) return;
      const how = e.signal ?? `code ${e.code}`;
      process.stdout.write(
        `${stamp()} ${name} (pid ${child.pid}) exited (${how}); see ${child.logFile}\n`,
      );
    });
    return child;
  }

  /** An ES256 key made at start, its JWKS served on loopback, one token per provider. */
  private async startIssuer(
    served: ReadonlyMap<number, number>,
  ): Promise<{ urls: string[]; tokens: { issuer: string; token: string }[] }> {
    const { exportJWK, generateKeyPair, SignJWT } = await import('jose');
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const kid = `demo-${Date.now().toString(36)}`;
    const jwks = JSON.stringify({
      keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }],
    });
    const urls: string[] = [];
    for (const [manifestPort, port] of served) {
      const server = createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
        res.end(jwks);
      });
      await new Promise<void>((r, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => r());
      });
      this.jwksServers.push(server);
      for (const p of this.plan.providers)
        if (Number(p.jwksUrl.port || 80) === manifestPort)
          urls.push(`http://127.0.0.1:${port}${p.jwksUrl.pathname}`);
    }
    const tokens: { issuer: string; token: string }[] = [];
    for (const p of this.plan.providers) {
      const jwt = new SignJWT({ name: 'Demo User', scope: 'products.read' })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer(p.issuer)
        .setSubject('demo-user')
        .setIssuedAt()
        .setExpirationTime('12h');
      if (p.audience) jwt.setAudience(p.audience);
      tokens.push({ issuer: p.issuer, token: await jwt.sign(privateKey) });
    }
    return { urls: [...new Set(urls)], tokens };
  }

  /** Keeps the served copy in step with the folder the user edits. */
  private watchFolder(copy: string, remap: ReadonlyMap<number, number>): void {
    let timer: NodeJS.Timeout | undefined;
    let warned = false;
    const sync = () => {
      if (this.stopping) return;
      try {
        const changed = mirrorFolder(this.dir, copy, remap);
        warned = false;
        if (changed.length > 0)
          process.stdout.write(`${stamp()} ${changed.join(', ')} changed: reloading\n`);
      } catch (err) {
        if (!warned)
          process.stdout.write(`${stamp()} cannot copy ${this.dir}: ${(err as Error).message}\n`);
        warned = true;
      }
    };
    void import('../../shared/config/sources/folder-source.ts').then(({ watchRecursively }) => {
      if (this.stopping) return;
      this.mirrorWatch = watchRecursively(
        this.dir,
        () => {
          clearTimeout(timer);
          timer = setTimeout(sync, 50);
        },
        (err) => process.stdout.write(`${stamp()} cannot watch ${this.dir}: ${err.message}\n`),
      );
    });
  }

  /** What a user editing the folder wants to hear about: reloads, rejections, problems. */
  private relayEvents(cp: Child, gateway: Child): void {
    const rel = displayPath(this.dir);
    cp.onLine((l) => {
      if (l.msg === 'config loaded')
        process.stdout.write(
          `${stamp()} config ${String(l.version).slice(0, 12)} loaded and pushed to the proxies it changes\n`,
        );
      else if (l.file !== undefined && l.error !== undefined)
        process.stdout.write(
          `${stamp()}   ${rel}/${String(l.file)}:${String(l.line)}:${String(l.column)} ${l.field ? `${String(l.field)}: ` : ''}${String(l.error)}\n`,
        );
      else if (typeof l.msg === 'string' && l.msg.startsWith('config rejected'))
        process.stdout.write(`${stamp()} ${l.msg}\n`);
      else if (l.msg === 'resource has problem conditions; served as compiled')
        process.stdout.write(
          `${stamp()} ${String(l.resource)}: ${(l.problems as string[]).join('; ')}\n`,
        );
    });
    gateway.onLine((l) => {
      if (l.msg === 'part of the config is not served')
        process.stdout.write(`${stamp()} gateway: ${String(l.problem)}\n`);
    });
  }

  private print(s: {
    cp: Child;
    cpAdmin: string;
    discoveryUrl: string;
    gateway: Child;
    gwAdmin: string;
    edge: string;
    instances: Instance[];
    issuer: { urls: string[]; tokens: { issuer: string; token: string }[] };
    remap: ReadonlyMap<number, number>;
  }): void {
    const out: string[] = [];
    const rows: [string, string, string][] = [
      ['control-plane', String(s.cp.pid), `discovery ${s.discoveryUrl}  admin ${s.cpAdmin}`],
      ['gateway', String(s.gateway.pid), `edge ${s.edge}  admin ${s.gwAdmin}`],
    ];
    for (const i of s.instances) {
      rows.push([
        `${i.workload.name} sidecar`,
        String(i.sidecar.pid),
        `inbound ${i.ports.inbound} (mTLS)  outbound ${i.ports.outbound}  admin ${i.ports.admin}  metrics ${i.ports.metrics}`,
      ]);
      rows.push([`${i.workload.name} app`, String(i.app.pid), `${i.appPort}`]);
    }
    rows.push(['jwt issuer (this process)', String(process.pid), s.issuer.urls.join('  ')]);
    const w0 = Math.max(...rows.map((r) => r[0].length));
    const w1 = Math.max(...rows.map((r) => r[1].length));
    const rel = displayPath(this.dir);
    const here = process.cwd() === REPO;
    const meshgate = here ? 'npx meshgate' : `node ${CLI}`;
    const remapped = [...s.remap].map(([a, b]) => `${a}→${b}`).join(', ');
    out.push(
      '',
      `── Processes ── (all on 127.0.0.1; ports chosen at start)`,
      `  ${'PROCESS'.padEnd(w0)}  ${'PID'.padEnd(w1)}  PORTS`,
      ...rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`),
      '',
      `── Files ──`,
      `  config  ${rel}: edit it while the demo runs; every save is hot-reloaded`,
      ...(s.remap.size > 0
        ? [
            `          (served from ${join(this.dataDir, 'config')}, a copy kept in step, with ports`,
            `          ${remapped}${this.basePort === undefined ? ', which were taken)' : ' from --base-port)'}`,
          ]
        : []),
      `  data    ${this.dataDir}: mesh CA, join tokens, logs${this.removeData ? '; removed when the demo stops' : ''}`,
      `  logs    ${join(this.dataDir, 'logs')}/<process>.log`,
      '',
      `── Open ──`,
      `  the product page   ${s.edge}/productpage`,
      `  the API docs       ${s.edge}/apis/products/docs   (catalog ${s.edge}/apis)`,
      `  control plane      ${s.cpAdmin}/   (status page; JSON at /status, /config_dump, /metrics)`,
      `  gateway admin      ${s.gwAdmin}/ready   /routes   /config_dump   /workers`,
      `  sidecar admin      http://127.0.0.1:<admin>/ready   /config_dump   /denials   /stats`,
      '',
    );
    const ratings = s.instances.find((i) => i.workload.role === 'ratings') as Instance;
    const token = s.issuer.tokens[0];
    out.push(
      `── Try it ── (in another shell${here ? '' : `, in ${REPO}`}; under each command, what it prints)`,
      '',
      `  export GW=${s.edge}`,
      ...(token ? [`  export TOKEN=${token.token}`] : []),
      '',
    );
    for (const t of this.tries({ ...s, ratingsAdmin: ratings.ports.admin, meshgate }))
      out.push(
        `  # ${t.title}`,
        `  ${t.command}`,
        ...(typeof t.expect === 'string'
          ? [`  # expect ${t.expect}`]
          : ['  # expect:', ...t.expect.map((e) => `  #   ${e}`)]),
        '',
      );
    out.push(
      `── Edit it ──`,
      `  Set the weights in ${rel}/mesh-routes.yaml to 0, 0 and 100, save, and run the canary loop`,
      `  again: every answer is v3. A broken edit is reported here and never pushed; check one with`,
      `  \`${meshgate} validate ${rel}\`.`,
      '',
      `Ready in ${((Date.now() - this.startedAt) / 1000).toFixed(1)} s. Ctrl-C stops every process.`,
      '',
    );
    process.stdout.write(out.join('\n'));
  }

  private tries(s: {
    edge: string;
    cpAdmin: string;
    ratingsAdmin: number;
    meshgate: string;
  }): Try[] {
    const gatewayId = `spiffe://cluster.local/ns/${GATEWAY_NAMESPACE}/sa/${GATEWAY_SERVICE_ACCOUNT}`;
    const id = (sa: string) => `spiffe://cluster.local/ns/${NAMESPACE}/sa/${sa}`;
    const status = `-s -o /dev/null -w '%{http_code}\\n'`;
    const bearer = `-H "Authorization: Bearer $TOKEN"`;
    return [
      {
        title: 'path routing: /productpage goes to productpage, which calls details and reviews',
        command: `curl -s $GW/productpage | jq -r '.service, .details.service, .reviews.service'`,
        expect: ['productpage', 'details', 'reviews'],
      },
      {
        title:
          'path routing: /static goes to productpage too; no route is a 404 (problem+json, flag NR)',
        command: `curl -s -o /dev/null -w '%{http_code} %{content_type}\\n' $GW/static/bookinfo.css; curl ${status} $GW/nowhere`,
        expect: ['200 text/css', '404'],
      },
      {
        title:
          "the canary: productpage's sidecar splits calls to reviews 50/25/25 (mesh-routes.yaml)",
        command: `for i in $(seq 20); do curl -s $GW/productpage | jq -r .reviews.version; done | sort | uniq -c`,
        expect: 'a mix of v1, v2 and v3',
      },
      {
        title: 'a header route: the user jason always gets reviews v2',
        command: `curl -s -H 'end-user: jason' $GW/productpage | jq -r .reviews.version`,
        expect: 'v2',
      },
      {
        title:
          'the mTLS identity each app sees (X-Forwarded-Client-Cert, set by its sidecar): productpage, details, reviews, ratings',
        command: `curl -s -H 'end-user: jason' $GW/productpage | jq -r '.caller, .details.caller, .reviews.caller, .reviews.ratings.caller'`,
        expect: [
          gatewayId,
          id('bookinfo-productpage'),
          id('bookinfo-productpage'),
          id('bookinfo-reviews-v2'),
        ],
      },
      {
        title:
          'an AuthorizationPolicy: ratings admits only reviews v2 and v3, so the gateway is refused',
        command: `curl -s -w ' %{http_code}\\n' $GW/ratings/0`,
        expect: 'RBAC: access denied 403',
      },
      {
        title: "the ratings sidecar says who was refused and why (its admin API's /denials)",
        command: `curl -s http://127.0.0.1:${s.ratingsAdmin}/denials | jq -r '.recent[0].peer, .recent[0].reason'`,
        expect: [
          gatewayId.replace('spiffe://', ''),
          `denied: no ALLOW policy matches (${NAMESPACE}/ratings-from-reviews)`,
        ],
      },
      {
        title: 'the products API wants a JWT: 401 without one',
        command: `curl ${status} $GW/api/v1/products`,
        expect: '401',
      },
      {
        title: 'with the token: 200, and the verified sub claim reaches the app as x-user',
        command: `curl -s ${bearer} $GW/api/v1/products/0 | jq -r '.title, .requestedBy'`,
        expect: ['The Comedy of Errors', 'demo-user'],
      },
      {
        title: 'the API is published at the edge with its OpenAPI document and docs page',
        command: `curl -s $GW/apis/products/openapi.json | jq -r '.info.title, .servers[0].url'; curl ${status} $GW/apis/products/docs`,
        expect: ['Bookinfo products', `${s.edge}/api/v1/products`, '200'],
      },
      {
        title: 'a request the OpenAPI document does not allow is refused at the edge (Enforce)',
        command: `curl ${status} ${bearer} $GW/api/v1/products/not-a-number`,
        expect: '400',
      },
      {
        title: 'the quota: 10 requests a minute on the API (edge-policies.yaml), then 429',
        command: `for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' ${bearer} $GW/api/v1/products; done; echo`,
        expect: '200 until the quota is spent, then 429',
      },
      {
        title: 'every proxy, the config version it runs and its certificate',
        command: `${s.meshgate} status --control-plane ${s.cpAdmin}`,
        expect: `${WORKLOADS.length + 1} proxies, every one SYNCED`,
      },
    ];
  }

  /** Stops every child in order (gateway, sidecars, apps, control plane); the exit code. */
  stop(options: { keepData?: boolean } = {}): Promise<number> {
    this.stopping ??= (async () => {
      const started = Date.now();
      this.mirrorWatch?.close();
      const byName = (test: (n: string) => boolean) => this.children.filter((c) => test(c.name));
      await Promise.all(byName((n) => n === 'gateway').map((c) => c.stop()));
      await Promise.all(byName((n) => n.endsWith('-sidecar')).map((c) => c.stop()));
      await Promise.all(byName((n) => n.endsWith('-app')).map((c) => c.stop()));
      await Promise.all(byName((n) => n === 'control-plane').map((c) => c.stop()));
      // Anything else (nothing today) last.
      await Promise.all(this.children.map((c) => c.stop()));
      for (const server of this.jwksServers) {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
      const left = this.children.filter((c) => c.pid > 0 && groupAlive(c.pid));
      if (this.removeData && !options.keepData) {
        try {
          rmSync(this.dataDir, { recursive: true, force: true });
        } catch {
          // a file still open on some platforms; it is in the temp folder anyway
        }
      }
      process.stdout.write(
        left.length === 0
          ? `stopped ${this.children.length} processes in ${((Date.now() - started) / 1000).toFixed(1)} s${this.ready ? '' : ' (the demo did not finish starting)'}\n`
          : `could not stop: ${left.map((c) => `${c.name} (pid ${c.pid})`).join(', ')}\n`,
      );
      return left.length === 0 ? 0 : 1;
    })();
    return this.stopping;
  }
}

/** A path relative to the working directory when it is inside it, else absolute. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
}

function stamp(): string {
  return `[${new Date().toISOString().slice(11, 19)}]`;
}
