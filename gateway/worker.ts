// A worker of `meshgate gateway`: one GatewayServer, fed snapshots by the supervisor over the
// cluster IPC channel. The workers share the listening sockets (node:cluster); the primary
// compiles once and every worker serves the same snapshot.
//
// The IPC protocol (JSON messages on the cluster channel):
//   worker → primary  {type:'ready'}                         handlers installed; send the snapshot
//   primary → worker  {type:'apply', snapshot}               serve this snapshot (newest wins)
//   worker → primary  {type:'applied', version, ports, problems, listening, addresses}
//                     {type:'apply-failed', version, error}
//   primary → worker  {type:'drain', timeoutMs}              stop accepting, finish, exit 0
//   primary → worker  {type:'mesh-credentials', credentials} the gateway's workload certificate
//                     (in the mesh: before the first snapshot, and on every rotation)
//   worker → primary  {type:'draining', inflight}
//   primary → worker  {type:'metrics-request', id}            GET /metrics on the admin API
//   worker → primary  {type:'metrics', id, metrics}           its registry as getMetricsAsJSON() gives it
// Rate-limit leases (gateway/ratelimit/ipc.ts; the supervisor holds local budgets, Redis global ones):
//   worker → primary  {type:'rl-acquire', id, kind, request}  a lease of tokens for one bucket and window
//   primary → worker  {type:'rl-grant', id, granted, remaining, error?}   the answer (error: backend down)
//   worker → primary  {type:'rl-release', kind, key, windowStart, tokens} unspent local tokens given back
// Static settings (listen host, port offset, Gateways, access log, rate limits) come in the environment, as
// MESHGATE_GATEWAY_WORKER (JSON), so a replacement worker starts exactly like the first one.

import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { deepFreeze } from '../shared/config/compile/snapshot-version.ts';
import type { Snapshot } from '../shared/config/snapshot.ts';
import type { MtlsCredentials } from '../shared/identity/peer-verification.ts';
import type { MeshPools } from '../shared/proxy/mesh-pools.ts';
import { metricsRegistry, type MetricsJson } from '../shared/telemetry/metrics.ts';
import { createLogger, type AccessLogTarget } from './access-log.ts';
import type { BoundPort, GatewayServer } from './gateway-server.ts';
import type { LeaseRequest } from './ratelimit/budget.ts';
import type { RateLimitKind } from './ratelimit/compile-rate-limit.ts';
import type { FailureMode } from './ratelimit/lease-client.ts';

export const WORKER_SETTINGS_ENV = 'MESHGATE_GATEWAY_WORKER';

export interface WorkerSettings {
  listenHost: string;
  portOffset: number;
  /** "namespace/name"; all of meshgate's Gateways when absent. */
  gateways?: string[];
  accessLog: AccessLogTarget;
  /** Used when the primary disappears or a SIGTERM reaches the worker itself. */
  drainMs: number;
  /** Whether the supervisor has a global rate-limit backend (Redis), and the failure mode. */
  rateLimit?: { global: boolean; failureMode: FailureMode };
  /** How many workers the supervisor runs (a ClientTrafficPolicy connection limit is split among them). */
  workers?: number;
}

export type GatewayAddresses = ReturnType<GatewayServer['addresses']>;

export type PrimaryMessage =
  | { type: 'apply'; snapshot: Snapshot }
  | { type: 'drain'; timeoutMs: number }
  | { type: 'metrics-request'; id: number }
  /** Key, chain and root: what the worker's mTLS pools to mesh sidecars present and trust. */
  | { type: 'mesh-credentials'; credentials: MtlsCredentials };

export interface RateLimitAcquireMessage {
  type: 'rl-acquire';
  id: number;
  kind: RateLimitKind;
  request: LeaseRequest;
}
export interface RateLimitReleaseMessage {
  type: 'rl-release';
  kind: RateLimitKind;
  key: string;
  windowStart: number;
  tokens: number;
}
export interface RateLimitGrantMessage {
  type: 'rl-grant';
  id: number;
  granted: number;
  remaining: number;
  error?: string;
}

export type WorkerMessage =
  | RateLimitAcquireMessage
  | RateLimitReleaseMessage
  | { type: 'ready' }
  | {
      type: 'applied';
      version: string;
      ports: BoundPort[];
      problems: string[];
      /** Every port of the view is bound. */
      listening: boolean;
      addresses: GatewayAddresses;
    }
  | { type: 'apply-failed'; version: string; error: string }
  | { type: 'draining'; inflight: number }
  | { type: 'metrics'; id: number; metrics: MetricsJson };

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  const type = (m as { type?: unknown } | null)?.type;
  return (
    type === 'apply' ||
    type === 'drain' ||
    type === 'mesh-credentials' ||
    type === 'metrics-request'
  );
}

class GatewayWorker {
  /** The newest snapshot not applied yet: applies run one at a time, intermediate ones are skipped. */
  private pending: Snapshot | undefined;
  private applying = false;
  private draining = false;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly server: GatewayServer,
    private readonly logger: Logger,
    /** The backend layer's pools to mesh sidecars (gateway/layers/forward-to-backend.ts). */
    private readonly meshPools: MeshPools,
  ) {}

  start(): void {
    // A terminal's Ctrl-C reaches the whole process group; the primary decides how to stop.
    process.on('SIGINT', () => {});
    // A SIGTERM to the worker alone (or to the group, as systemd does) drains it like the primary would.
    process.on('SIGTERM', () => void this.drainAndExit(this.settings.drainMs));
    // The primary is gone: nobody will push config or replace us, so finish and leave. Node's
    // cluster would exit the worker at once, cutting requests in flight; drain them instead.
    process.removeAllListeners('disconnect');
    process.on('disconnect', () => void this.drainAndExit(this.settings.drainMs));
    process.on('message', (msg: unknown) => {
      if (!isPrimaryMessage(msg)) return;
      if (msg.type === 'apply') {
        this.pending = msg.snapshot;
        void this.applyPending();
      } else if (msg.type === 'mesh-credentials') {
        // New connections to sidecars present these; connections open on the old ones finish.
        this.meshPools.setCredentials(msg.credentials);
      } else if (msg.type === 'metrics-request') {
        const id = msg.id;
        void metricsRegistry
          .getMetricsAsJSON()
          .then((metrics) => send({ type: 'metrics', id, metrics }));
      } else void this.drainAndExit(msg.timeoutMs);
    });
    send({ type: 'ready' });
  }

  private async applyPending(): Promise<void> {
    if (this.applying) return;
    this.applying = true;
    while (this.pending && !this.draining) {
      const snapshot = deepFreeze(this.pending);
      this.pending = undefined;
      try {
        const result = await this.server.apply(snapshot);
        const view = this.server.currentView;
        if (view) this.meshPools.retain(view.endpointSets.meshPeers());
        const bound = new Set(result.ports.map((p) => p.port));
        const wanted = [...(this.server.currentView?.ports.keys() ?? [])];
        send({
          type: 'applied',
          version: result.version,
          ports: result.ports,
          problems: result.problems,
          listening: wanted.every((p) => bound.has(p)),
          addresses: this.server.addresses(),
        });
      } catch (err) {
        send({ type: 'apply-failed', version: snapshot.version, error: (err as Error).message });
      }
    }
    this.applying = false;
  }

  private async drainAndExit(timeoutMs: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    send({ type: 'draining', inflight: this.server.inflightRequests });
    try {
      await this.server.drain(timeoutMs);
      await this.meshPools.close();
    } finally {
      await flushLogger(this.logger);
      process.exit(0);
    }
  }
}

/** Writes out buffered log lines; bounded, so a stuck destination cannot keep a process alive. */
async function flushLogger(logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise<void>((resolve) => logger.flush(() => resolve())),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, 1_000))),
  ]);
  clearTimeout(timer);
}

function send(message: WorkerMessage): void {
  // With a callback, a failed send (the primary just died: EPIPE) is not an 'error' event.
  if (process.connected && process.send) process.send(message, undefined, {}, () => {});
}

if (cluster.isWorker) {
  const raw = process.env[WORKER_SETTINGS_ENV];
  if (!raw)
    throw new Error(
      `${WORKER_SETTINGS_ENV} is not set: a gateway worker is started by the supervisor`,
    );
  const settings = JSON.parse(raw) as WorkerSettings;
  const logger = createLogger(settings.accessLog);
  // Imported here, so the primary (which imports this module for the protocol) stays light.
  const [{ GatewayServer }, { IpcLeaseChannel, isRateLimitGrant }, { meshPools }] =
    await Promise.all([
      import('./gateway-server.ts'),
      import('./ratelimit/ipc.ts'),
      import('./layers/forward-to-backend.ts'),
    ]);
  // Rate-limit leases come from the supervisor, so that the workers share one budget.
  const leases = new IpcLeaseChannel(send);
  process.on('message', (msg: unknown) => {
    if (isRateLimitGrant(msg)) leases.answer(msg);
  });
  const server = new GatewayServer({
    listenHost: settings.listenHost,
    portOffset: settings.portOffset,
    ...(settings.gateways ? { gateways: settings.gateways } : {}),
    logger,
    workers: settings.workers ?? 1,
    rateLimit: {
      holders: {
        local: leases.holder('local'),
        ...(settings.rateLimit?.global ? { global: leases.holder('global') } : {}),
      },
      failureMode: settings.rateLimit?.failureMode ?? 'open',
    },
  });
  new GatewayWorker(settings, server, logger, meshPools).start();
}
