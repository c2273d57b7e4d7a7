// The primary process of `meshgate gateway`: it watches and compiles the config folder (once, for
// every worker), runs N workers with node:cluster that share the listening sockets and serve the
// same snapshot, replaces a worker that dies, serves the admin API, and on SIGTERM/SIGINT drains
// the workers before it exits. In the mesh (--control-plane) the folder is replaced by the control
// plane: the primary gets its identity and its view from it, and hands the workers the view (as a
// snapshot) and its mTLS credentials, again on every rotation. The primary never serves a request: with node:cluster's
// round-robin scheduling (the default but on Windows) it accepts connections and hands each one
// to a worker.

import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { allConditions, isProblem } from '../shared/config/compile/conditions.ts';
import type { ConfigError } from '../shared/config/errors.ts';
import { formatLocation } from '../shared/config/resource.ts';
import { FolderSource, type FolderUpdate } from '../shared/config/sources/folder-source.ts';
import { DiscoveryClient, type ApplyResult } from '../shared/discovery/client.ts';
import type { ProxyView } from '../shared/discovery/protocol.ts';
import type { WorkloadCredentials } from '../shared/identity/workload-identity.ts';
import { joinTokenIdentity } from '../shared/proxy/join-identity.ts';
import { snapshotOfView } from '../shared/proxy/view-snapshot.ts';
import { metricsRegistry, type MetricsJson } from '../shared/telemetry/metrics.ts';
import type { MeshSnapshot } from './edge-view.ts';
import type { AccessLogTarget } from './access-log.ts';
import {
  servedGateways,
  startAdminServer,
  type AdminSource,
  type Readiness,
  type ServedConfig,
  type ServeSettings,
  type WorkerInfo,
  type WorkerPhase,
} from './admin-server.ts';
import { SupervisorBudgets } from './ratelimit/ipc.ts';
import type { FailureMode } from './ratelimit/lease-client.ts';
import {
  isWorkerMessage,
  WORKER_SETTINGS_ENV,
  type GatewayAddresses,
  type PrimaryMessage,
  type RateLimitGrantMessage,
  type WorkerMessage,
  type WorkerSettings,
} from './worker.ts';

/** The gateway joins the mesh: identity and view from the control plane instead of a folder. */
export interface GatewayMeshOptions {
  /** The discovery URL, https://HOST:15010. */
  controlPlaneUrl: string;
  controlPlaneCaPem: string;
  /** The join token: it decides the gateway's identity (meshgate-system/meshgate-gateway by default). */
  tokenFile: string;
}

export interface SupervisorOptions {
  /** The watched config folder (standalone); exactly one of configDir and mesh is given. */
  configDir?: string;
  mesh?: GatewayMeshOptions;
  listenHost: string;
  portOffset: number;
  adminHost: string;
  adminPort: number;
  /** "namespace/name"; all of meshgate's Gateways when absent. */
  gateways?: string[];
  workers: number;
  drainMs: number;
  accessLog: AccessLogTarget;
  logger: Logger;
  /** Redis for global rate limits ("redis://host:port"); without, they are counted per gateway. */
  rateLimitRedis?: string;
  /** While that Redis is unreachable: admit (open, the default) or refuse (closed). */
  rateLimitFailureMode?: FailureMode;
}

/** After the drain period, workers get this long to exit before they are killed. */
const FORCE_KILL_GRACE_MS = 2_000;
/** A worker that dies sooner than this after its start counts towards the restart backoff. */
const EARLY_DEATH_MS = 5_000;
const MAX_RESTART_DELAY_MS = 5_000;
/** How long GET /metrics waits for the workers; one that has not answered by then is left out. */
const METRICS_WAIT_MS = 2_000;

/** One GET /metrics waiting for the workers' registries. */
interface MetricsRequest {
  /** Worker ids that have not answered yet. */
  pending: Set<number>;
  /** By worker id. */
  results: Map<number, MetricsJson>;
  done: () => void;
}

interface WorkerState {
  worker: Worker;
  pid: number | undefined;
  startedAt: number;
  phase: WorkerPhase;
  /** The worker has installed its IPC handlers (its 'ready' message). */
  connected: boolean;
  /** The last version sent to it. */
  sentVersion?: string;
  applied?: Extract<WorkerMessage, { type: 'applied' }>;
  failed?: { version: string; error: string };
  /** What the worker last gave for GET /metrics: its counters outlive it (retireMetrics). */
  metrics?: MetricsJson;
}

export class GatewaySupervisor implements AdminSource {
  readonly settings: ServeSettings;
  private readonly log: Logger;
  private readonly source: FolderSource | undefined;
  /** In the mesh: the control plane's client (identity, renewals, the view). */
  private discovery: DiscoveryClient | undefined;
  private current: ServedConfig | undefined;
  private readonly states = new Map<number, WorkerState>();
  private admin: FastifyInstance | undefined;
  /** The rate-limit budgets the workers lease from (local counts here, global in Redis). */
  private budgets: SupervisorBudgets | undefined;
  private stopping = false;
  private forced = false;
  private adminClosed = false;
  private forceTimer: NodeJS.Timeout | undefined;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private earlyDeaths = 0;
  private loggedPorts = '';
  private problemsVersion = '';
  private readonly loggedProblems = new Set<string>();
  private readonly metricsRequests = new Map<number, MetricsRequest>();
  private nextMetricsRequest = 0;
  /**
   * The counters and histograms of workers that exited, as last scraped: still summed in, so a
   * replaced worker does not make the gateway's counters go back (what it counted after its last
   * scrape is lost). By worker id until a scrape folds them into `retired`.
   */
  private readonly exited = new Map<number, MetricsJson>();
  private retired: MetricsJson | undefined;
  private finish: (code: number) => void = () => {};
  private readonly onSignal = (signal: NodeJS.Signals) => void this.shutdown(signal);
  private readonly onMessage = (worker: Worker, msg: unknown) => this.handleMessage(worker, msg);
  private readonly onExit = (worker: Worker, code: number | null, signal: string | null) =>
    this.handleExit(worker, code, signal);

  constructor(private readonly options: SupervisorOptions) {
    this.log = options.logger;
    this.settings = {
      listenHost: options.listenHost,
      portOffset: options.portOffset,
      ...(options.gateways ? { gateways: options.gateways } : {}),
    };
    this.source = options.configDir
      ? new FolderSource({ dir: options.configDir, onUpdate: (u) => this.handleUpdate(u) })
      : undefined;
  }

  /** Runs until the gateway has stopped; resolves with the exit code. */
  async run(): Promise<number> {
    if (this.options.mesh) {
      if (!(await this.joinMesh(this.options.mesh))) return 1;
    } else if (this.source) {
      const first = await this.source.start();
      if (first.kind !== 'loaded') {
        if (first.kind === 'rejected') this.logErrors(first.errors);
        this.log.error(
          { dir: this.options.configDir },
          'config rejected at start: nothing to serve; fix the errors and start again',
        );
        this.source.close();
        return 1;
      }
      this.accept(first);
    }

    try {
      const admin = await startAdminServer(this, this.options.adminHost, this.options.adminPort);
      this.admin = admin.app;
      this.log.info({ address: this.options.adminHost, port: admin.port }, 'admin API listening');
    } catch (err) {
      this.log.error({ err }, 'admin API cannot listen');
      this.source?.close();
      await this.discovery?.stop();
      return 1;
    }

    this.budgets = new SupervisorBudgets({
      workers: () => Math.max(1, this.states.size),
      ...(this.options.rateLimitRedis ? { redisUrl: this.options.rateLimitRedis } : {}),
      failureMode: this.options.rateLimitFailureMode ?? 'open',
      logger: this.log,
    });
    const stopped = new Promise<number>((resolve) => (this.finish = resolve));
    cluster.setupPrimary(workerEntry());
    cluster.on('message', this.onMessage);
    cluster.on('exit', this.onExit);
    process.on('SIGTERM', this.onSignal);
    process.on('SIGINT', this.onSignal);
    for (let i = 0; i < this.options.workers; i++) this.fork();
    return stopped;
  }

  // --- AdminSource ---

  config(): ServedConfig | undefined {
    return this.current;
  }

  readiness(): Readiness {
    const version = this.current?.snapshot.version;
    const notReady = (reason: string): Readiness => ({
      ready: false,
      version: version ?? null,
      reason,
    });
    if (this.stopping) return notReady('draining: the gateway is shutting down');
    if (this.options.mesh && !this.discovery?.credentials)
      return notReady('no workload certificate from the control plane yet');
    if (!version)
      return notReady(
        this.options.mesh ? 'no view from the control plane yet' : 'no config has been loaded',
      );
    const states = [...this.states.values()];
    if (states.length < this.options.workers)
      return notReady(`${states.length} of ${this.options.workers} workers running`);
    for (const s of states) {
      if (s.failed?.version === version)
        return notReady(`worker ${s.pid}: applying ${version} failed: ${s.failed.error}`);
      if (s.applied?.version !== version)
        return notReady(
          `worker ${s.pid} has not applied ${version} yet (it serves ${s.applied?.version ?? 'nothing'})`,
        );
      if (!s.applied.listening)
        return notReady(
          `worker ${s.pid} does not listen on every port of ${version}: ${s.applied.problems.join('; ') || 'unknown'}`,
        );
    }
    return { ready: true, version };
  }

  workers(): { desired: number; workers: WorkerInfo[] } {
    return {
      desired: this.options.workers,
      workers: [...this.states.entries()].map(([id, s]) => ({
        id,
        pid: s.pid ?? null,
        phase: s.phase,
        startedAt: new Date(s.startedAt).toISOString(),
        appliedVersion: s.applied?.version ?? null,
        listening: s.applied?.listening ?? false,
        ports: s.applied?.ports ?? [],
        problems: s.applied?.problems ?? [],
        ...(s.failed ? { error: `${s.failed.version}: ${s.failed.error}` } : {}),
      })),
    };
  }

  /**
   * Prometheus text: this process's registry (the global rate-limit backend's metrics live here)
   * plus every worker's, summed series by series (prom-client's AggregatorRegistry), plus the
   * counters of workers that exited.
   */
  async metrics(): Promise<string> {
    const [own, workers] = await Promise.all([
      metricsRegistry.getMetricsAsJSON(),
      this.collectWorkerMetrics(),
    ]);
    // A worker that answered and then exited is in `workers` already.
    const exited = [...this.exited].filter(([id]) => !workers.has(id)).map(([, m]) => m);
    const all = [own, ...workers.values(), ...exited, ...(this.retired ? [this.retired] : [])];
    const text = await AggregatorRegistry.aggregate(all).metrics();
    if (this.exited.size > 0) {
      // Folded into one set, so a gateway whose workers keep dying does not hold one per worker.
      const folded = [...this.exited.values(), ...(this.retired ? [this.retired] : [])];
      this.exited.clear();
      this.retired = await AggregatorRegistry.aggregate(folded).getMetricsAsJSON();
    }
    return text;
  }

  /** Each worker's registry as JSON; a worker that does not answer within METRICS_WAIT_MS is left out. */
  private collectWorkerMetrics(): Promise<Map<number, MetricsJson>> {
    const id = this.nextMetricsRequest++;
    const targets = [...this.states.entries()].filter(([, s]) => s.connected);
    return new Promise((resolve) => {
      const request: MetricsRequest = {
        pending: new Set(targets.map(([workerId]) => workerId)),
        results: new Map(),
        done: () => {
          clearTimeout(timer);
          this.metricsRequests.delete(id);
          resolve(request.results);
        },
      };
      const timer = setTimeout(() => {
        this.log.warn(
          { workerPids: [...request.pending].map((w) => this.states.get(w)?.pid) },
          'workers did not give their metrics in time; /metrics leaves them out',
        );
        request.done();
      }, METRICS_WAIT_MS);
      this.metricsRequests.set(id, request);
      for (const [, s] of targets) this.send(s, { type: 'metrics-request', id });
      if (request.pending.size === 0) request.done();
    });
  }

  private acceptMetrics(workerId: number, s: WorkerState, id: number, metrics: MetricsJson): void {
    s.metrics = metrics;
    const request = this.metricsRequests.get(id);
    if (!request?.pending.delete(workerId)) return;
    request.results.set(workerId, metrics);
    if (request.pending.size === 0) request.done();
  }

  /** A worker exited: its counters and histograms stay in the sum; nobody waits for its answer. */
  private retireMetrics(workerId: number, s: WorkerState): void {
    if (s.metrics)
      this.exited.set(
        workerId,
        s.metrics.filter((m) => {
          // prom-client's types say an enum; at run time `type` is the exposition name.
          const type = m.type as unknown as string;
          return type === 'counter' || type === 'histogram';
        }),
      );
    for (const request of this.metricsRequests.values())
      if (request.pending.delete(workerId) && request.pending.size === 0) request.done();
  }

  addresses(): GatewayAddresses {
    const version = this.current?.snapshot.version;
    for (const s of this.states.values())
      if (s.applied && s.applied.version === version) return s.applied.addresses;
    return [];
  }

  // --- config ---

  private handleUpdate(update: FolderUpdate): void {
    if (this.stopping) return;
    switch (update.kind) {
      case 'loaded':
        this.accept(update);
        break;
      case 'rejected':
        this.logErrors(update.errors);
        this.log.error(
          { errors: update.errors.length, serving: this.current?.snapshot.version },
          'reload rejected: the last good config keeps serving',
        );
        break;
      case 'watch-error':
        this.log.error(
          { dir: this.options.configDir, error: update.message },
          'cannot watch the config folder; retrying',
        );
    }
  }

  private accept(update: Extract<FolderUpdate, { kind: 'loaded' }>): void {
    const { snapshot, statuses, parse } = update;
    const served = servedGateways(snapshot, this.settings);
    this.log.info(
      {
        version: snapshot.version,
        changed: update.changed,
        gateways: served.length,
        listeners: served.reduce((n, g) => n + g.listeners.length, 0),
        routes: snapshot.routes.length,
        services: snapshot.services.length,
        ignored: parse.ignored.length,
      },
      update.changed ? 'config loaded' : 'config reloaded, unchanged',
    );
    if (!update.changed && this.current) return;
    this.current = { snapshot, statuses, loadedAt: new Date().toISOString() };
    for (const s of statuses) {
      const problems = allConditions(s.status).filter(isProblem);
      if (problems.length === 0) continue;
      this.log.warn(
        {
          resource: `${s.kind} ${s.metadata.namespace ? `${s.metadata.namespace}/` : ''}${s.metadata.name}`,
          problems: problems.map((c) => `${c.type}=${c.status} (${c.reason}): ${c.message}`),
        },
        'resource has problem conditions; served as compiled',
      );
    }
    for (const name of this.options.gateways ?? [])
      if (!served.some((g) => `${g.namespace}/${g.name}` === name))
        this.log.warn(
          { gateway: name },
          '--gateway names no Gateway meshgate serves in this config (missing, another class, or not accepted)',
        );
    for (const s of this.states.values()) this.sendSnapshot(s);
  }

  /** One line per error, with where it is, so a log search finds the file. */
  private logErrors(errors: readonly ConfigError[]): void {
    for (const e of errors)
      this.log.error(
        {
          file: e.location.file,
          doc: e.location.doc,
          line: e.location.line,
          column: e.location.col,
          field: e.path,
          ...(e.resource ? { resource: e.resource } : {}),
          error: e.message,
        },
        `config error: ${formatLocation(e.location)} ${e.path ? `${e.path}: ` : ''}${e.message}`,
      );
  }

  // --- the mesh ---

  /**
   * Learns the gateway's identity from its join token, then opens the control plane's stream in
   * the background: the view arrives in acceptView, certificates (first and renewed) go to the
   * workers. False when the token is refused.
   */
  private async joinMesh(mesh: GatewayMeshOptions): Promise<boolean> {
    let identity;
    try {
      identity = await joinTokenIdentity({
        controlPlaneUrl: mesh.controlPlaneUrl,
        rootCaPem: mesh.controlPlaneCaPem,
        tokenFile: mesh.tokenFile,
        onRetry: (err, retryInMs) =>
          this.log.warn(
            { err: err.message, retryInMs, controlPlane: mesh.controlPlaneUrl },
            'cannot reach the control plane yet; retrying',
          ),
      });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot join the mesh');
      return false;
    }
    const gateways = this.options.gateways;
    const client = new DiscoveryClient({
      controlPlaneUrl: mesh.controlPlaneUrl,
      rootCaPem: mesh.controlPlaneCaPem,
      tokenFile: mesh.tokenFile,
      trustDomain: identity.trustDomain,
      hello: {
        proxyId: `gateway~${identity.namespace}~${identity.serviceAccount}~${hostname()}:${process.pid}`,
        kind: 'gateway',
        namespace: identity.namespace,
        serviceAccount: identity.serviceAccount,
        labels: {},
        ...(gateways ? { gateways } : {}),
      },
      apply: (view) => this.acceptView(view),
      logger: this.log,
    });
    this.discovery = client;
    client.on('rotated', (current) => this.sendCredentialsToAll(current));
    void client.start().then(
      (credentials) => {
        this.log.info(
          { spiffeId: credentials.spiffeId, notAfter: credentials.notAfter.toISOString() },
          'joined the mesh',
        );
        this.sendCredentialsToAll(credentials);
      },
      (err: unknown) => {
        if (!this.stopping) this.log.error({ err }, 'no workload certificate');
      },
    );
    return true;
  }

  /** A view from the control plane: served as a snapshot that also names the sidecar endpoints. */
  private acceptView(view: ProxyView): ApplyResult {
    if (this.stopping) return { ok: true };
    const snapshot: MeshSnapshot = {
      ...snapshotOfView(view),
      mesh: { meshEndpoints: view.meshEndpoints },
    };
    this.log.info(
      {
        version: view.version,
        snapshot: view.snapshotVersion,
        gateways: snapshot.gateways.length,
        listeners: snapshot.gateways.reduce((n, g) => n + g.listeners.length, 0),
        routes: snapshot.routes.length,
        services: snapshot.services.length,
      },
      'view from the control plane',
    );
    this.current = { snapshot, statuses: [], loadedAt: new Date().toISOString() };
    for (const name of this.options.gateways ?? [])
      if (!snapshot.gateways.some((g) => `${g.namespace}/${g.name}` === name))
        this.log.warn({ gateway: name }, '--gateway names no Gateway in the view');
    for (const s of this.states.values()) this.sendSnapshot(s);
    return { ok: true };
  }

  private sendCredentialsToAll(credentials: WorkloadCredentials): void {
    for (const s of this.states.values()) if (s.connected) this.sendCredentials(s, credentials);
  }

  private sendCredentials(s: WorkerState, credentials: WorkloadCredentials): void {
    this.send(s, {
      type: 'mesh-credentials',
      credentials: {
        keyPem: credentials.keyPem,
        chainPem: [...credentials.chainPem],
        rootPem: credentials.rootPem,
      },
    });
  }

  // --- workers ---

  private fork(replacing?: number): void {
    const settings: WorkerSettings = {
      listenHost: this.options.listenHost,
      portOffset: this.options.portOffset,
      ...(this.options.gateways ? { gateways: this.options.gateways } : {}),
      accessLog: this.options.accessLog,
      drainMs: this.options.drainMs,
      workers: this.options.workers,
      rateLimit: {
        global: this.budgets?.hasGlobal ?? false,
        failureMode: this.options.rateLimitFailureMode ?? 'open',
      },
    };
    const worker = cluster.fork({ [WORKER_SETTINGS_ENV]: JSON.stringify(settings) });
    const state: WorkerState = {
      worker,
      pid: worker.process.pid,
      startedAt: Date.now(),
      phase: 'starting',
      connected: false,
    };
    this.states.set(worker.id, state);
    // A send to a worker that is going away fails with EPIPE; its 'exit' follows.
    worker.on('error', (err) =>
      this.log.warn({ worker: worker.id, workerPid: state.pid, err }, 'worker IPC error'),
    );
    this.log.info({ worker: worker.id, workerPid: state.pid }, 'worker started');
    if (replacing !== undefined)
      this.log.info(
        { worker: worker.id, workerPid: state.pid, replacedPid: replacing },
        'worker replaced',
      );
  }

  private send(s: WorkerState, message: PrimaryMessage | RateLimitGrantMessage): void {
    if (!s.worker.isConnected()) return;
    try {
      s.worker.send(message);
    } catch (err) {
      this.log.warn({ workerPid: s.pid, err }, 'cannot send to worker');
    }
  }

  private sendSnapshot(s: WorkerState): void {
    if (!s.connected || !this.current || s.phase === 'draining') return;
    // Compared with what was sent, not what was applied: with A → B → A, the worker may still be
    // applying B when A comes back, and must be sent A again.
    const version = this.current.snapshot.version;
    if (s.sentVersion === version) return;
    s.sentVersion = version;
    s.phase = 'applying';
    this.send(s, { type: 'apply', snapshot: this.current.snapshot });
  }

  private handleMessage(worker: Worker, msg: unknown): void {
    const s = this.states.get(worker.id);
    if (!s || !isWorkerMessage(msg)) return;
    switch (msg.type) {
      case 'rl-acquire':
        void this.budgets?.answer(msg).then((answer) => this.send(s, answer));
        break;
      case 'rl-release':
        this.budgets?.release(msg);
        break;
      case 'ready': {
        s.connected = true;
        const credentials = this.discovery?.credentials;
        // Credentials first: the snapshot's sidecar endpoints need them.
        if (credentials && !this.stopping) this.sendCredentials(s, credentials);
        if (this.stopping) this.send(s, { type: 'drain', timeoutMs: this.options.drainMs });
        else this.sendSnapshot(s);
        break;
      }
      case 'applied': {
        s.applied = msg;
        delete s.failed;
        const latest = msg.version === this.current?.snapshot.version;
        if (s.phase !== 'draining') s.phase = latest ? 'serving' : 'applying';
        if (latest) this.logApplied(msg);
        break;
      }
      case 'apply-failed':
        s.failed = { version: msg.version, error: msg.error };
        if (s.phase !== 'draining') s.phase = 'failed';
        this.log.error(
          { workerPid: s.pid, version: msg.version, error: msg.error },
          'worker cannot apply the config',
        );
        break;
      case 'draining':
        s.phase = 'draining';
        this.log.info({ workerPid: s.pid, inflight: msg.inflight }, 'worker draining');
        break;
      case 'metrics':
        this.acceptMetrics(worker.id, s, msg.id, msg.metrics);
        break;
    }
  }

  /** Ports and problems are logged once per change, not once per worker. */
  private logApplied(msg: Extract<WorkerMessage, { type: 'applied' }>): void {
    const ports = msg.ports
      .map((p) => ({ port: p.port, address: `${p.address}:${p.boundPort}`, protocol: p.protocol }))
      .sort((a, b) => a.port - b.port);
    const key = JSON.stringify(ports);
    if (key !== this.loggedPorts) {
      this.loggedPorts = key;
      this.log.info({ version: msg.version, ports }, 'listening');
    }
    if (this.problemsVersion !== msg.version) {
      this.problemsVersion = msg.version;
      this.loggedProblems.clear();
    }
    for (const problem of msg.problems) {
      if (this.loggedProblems.has(problem)) continue;
      this.loggedProblems.add(problem);
      this.log.warn({ version: msg.version, problem }, 'part of the config is not served');
    }
  }

  private handleExit(worker: Worker, code: number | null, signal: string | null): void {
    const s = this.states.get(worker.id);
    if (!s) return;
    this.states.delete(worker.id);
    this.retireMetrics(worker.id, s);
    const fields = { worker: worker.id, workerPid: s.pid, code, signal };
    if (this.stopping) {
      this.log.info(fields, 'worker exited');
      this.checkStopped();
      return;
    }
    this.log.warn(fields, 'worker exited unexpectedly; replacing it');
    // A worker that keeps dying at start (a port it cannot bind, a crash) is restarted with backoff.
    this.earlyDeaths = Date.now() - s.startedAt < EARLY_DEATH_MS ? this.earlyDeaths + 1 : 0;
    const delay =
      this.earlyDeaths <= 1 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** this.earlyDeaths);
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (!this.stopping) this.fork(s.pid);
    }, delay);
    this.restartTimers.add(timer);
  }

  // --- shutdown ---

  private async shutdown(signal: NodeJS.Signals): Promise<void> {
    if (this.stopping) {
      // A second Ctrl-C: the operator does not want to wait for the drain.
      this.log.warn({ signal }, 'second signal: killing the workers now');
      this.forced = true;
      for (const s of this.states.values()) s.worker.process.kill('SIGKILL');
      return;
    }
    this.stopping = true;
    this.log.info(
      { signal, drainSeconds: this.options.drainMs / 1000, workers: this.states.size },
      'shutting down: draining workers',
    );
    this.source?.close();
    // Leaves the mesh: the control plane drops the stream (and stops renewing the certificate).
    void this.discovery?.stop();
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    // A worker that has not said 'ready' yet is told to drain when it does.
    for (const s of this.states.values()) {
      if (s.connected) this.send(s, { type: 'drain', timeoutMs: this.options.drainMs });
    }
    this.forceTimer = setTimeout(() => {
      for (const s of this.states.values()) {
        this.log.warn({ workerPid: s.pid }, 'worker did not finish draining in time; killing it');
        s.worker.process.kill('SIGKILL');
      }
    }, this.options.drainMs + FORCE_KILL_GRACE_MS);
    try {
      await this.admin?.close();
    } catch (err) {
      this.log.warn({ err }, 'admin API did not close cleanly');
    }
    this.adminClosed = true;
    this.checkStopped();
  }

  private checkStopped(): void {
    if (!this.stopping || !this.adminClosed || this.states.size > 0) return;
    clearTimeout(this.forceTimer);
    process.removeListener('SIGTERM', this.onSignal);
    process.removeListener('SIGINT', this.onSignal);
    cluster.removeListener('message', this.onMessage);
    cluster.removeListener('exit', this.onExit);
    this.budgets?.close();
    this.log.info({ forced: this.forced }, 'stopped');
    this.finish(this.forced ? 1 : 0);
  }
}

/**
 * The worker module beside this one: worker.js when running the build (dist/), else worker.ts
 * through tsx, as the CLI runs it; the loader is named by URL so that any cwd works.
 */
function workerEntry(): { exec: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const compiled = extname(here) === '.js';
  const exec = join(dirname(here), compiled ? 'worker.js' : 'worker.ts');
  const inherited = process.execArgv;
  if (compiled || inherited.some((a) => a.includes('tsx'))) return { exec, execArgv: inherited };
  return { exec, execArgv: [...inherited, '--import', import.meta.resolve('tsx')] };
}
