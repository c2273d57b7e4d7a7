// `meshgate control-plane`: config sources → compiled snapshot → per-proxy views → push; the mesh
// CA and its join tokens; the registry of connected proxies; the admin API and UI.
//
// One way through, as DESIGN draws it: the watched folder is compiled into the last good snapshot
// (a reload that does not parse is logged and never pushed); each proxy's view is cut from that
// snapshot and the sidecars registered right now; a snapshot or registry change is debounced into
// one push round (Istio pilot's debounce), and a proxy is pushed only when its own view's version
// changed. For RESTART_WARM_UP_MS after start, a reconnecting proxy's view also keeps the sidecars
// it already knew until they register again (protocol.ts, "Restart warm-up"). Clocks and timers
// are injectable, so heartbeat lapses, debounces and the warm-up are tested in paused time.

import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import type { Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import {
  allConditions,
  isProblem,
  type ResourceStatus,
} from '../../shared/config/compile/conditions.ts';
import { DEFAULT_ROOT_NAMESPACE } from '../../shared/config/compile/context.ts';
import type { ConfigError } from '../../shared/config/errors.ts';
import { formatLocation } from '../../shared/config/resource.ts';
import type { Snapshot } from '../../shared/config/snapshot.ts';
import { FolderSource, type FolderUpdate } from '../../shared/config/sources/folder-source.ts';
import {
  DEFAULT_CONTROL_PLANE_ADMIN_PORT,
  DEFAULT_DISCOVERY_PORT,
  HEARTBEAT_LAPSE_MS,
  PING_INTERVAL_MS,
  RESTART_WARM_UP_MS,
  type CertificateRequest,
  type CertificateResponse,
  type ProxyAck,
  type ProxyHello,
  type ProxyStatus,
  type ProxyView,
  type RegisteredEndpoint,
} from '../../shared/discovery/protocol.ts';
import { IdentityError } from '../../shared/identity/errors.ts';
import { JoinTokenStore } from '../../shared/identity/join-tokens.ts';
import { MeshCa, type IssuedKeyAndCertificate } from '../../shared/identity/mesh-ca.ts';
import { secureContextOptions } from '../../shared/identity/peer-verification.ts';
import { DEFAULT_TRUST_DOMAIN } from '../../shared/identity/spiffe.ts';
import {
  realTimers,
  renewAt,
  type RenewalTimers,
} from '../../shared/identity/workload-identity.ts';
import {
  startControlPlaneAdmin,
  type ConfigDump,
  type ControlPlaneAdminSource,
  type ControlPlaneStatus,
  type Readiness,
  type TokenGrant,
} from './admin-server.ts';
import {
  createDiscoveryServer,
  type ClientCertificate,
  type DiscoveryBackend,
} from './discovery-server.ts';
import { mergeRegisteredEndpoints } from './endpoints.ts';
import { ControlPlaneError } from './errors.ts';
import {
  certificatesIssued,
  configRejections,
  connectedProxies,
  registeredEndpoints,
  viewNacks,
  viewPushes,
} from './metrics.ts';
import { ProxySession } from './proxy-session.ts';
import { redactView, redactSnapshot } from './redact.ts';
import { cutView, type ViewContext } from './views.ts';

/** The clock and timers of the control plane; tests pass manual ones. */
export type ControlPlaneTimers = RenewalTimers;

export interface ControlPlaneOptions {
  configDir: string;
  dataDir: string;
  /** Where the discovery server listens (and an address in its certificate). */
  listenHost?: string;
  /** 0 picks a free port (logged, and returned by start()). */
  discoveryPort?: number;
  adminHost?: string;
  adminPort?: number;
  rootNamespace?: string;
  trustDomain?: string;
  /** An existing root (or intermediate with its chain) instead of the one in the data folder. */
  caRoot?: { certPath: string; keyPath: string };
  workloadCertTtlMs?: number;
  logger: Logger;
  timers?: ControlPlaneTimers;
  /** Quiet time after a snapshot or registry change before a push round; 100 ms by default. */
  pushDebounceMs?: number;
  /** What a goaway tells proxies to wait before reconnecting; 1 s by default. */
  goawayRetryAfterMs?: number;
  /** The config folder's own debounce (shared/config/sources/folder-source.ts). */
  configDebounceMs?: number;
  /** How long reconnecting proxies keep the sidecars they knew; RESTART_WARM_UP_MS by default. */
  restartWarmUpMs?: number;
}

export interface ControlPlanePorts {
  discoveryPort: number;
  adminPort: number;
}

/** The config folder did not parse at start: there is nothing to serve. */
export class ConfigRejectedAtStartError extends Error {}

interface ServedConfig {
  snapshot: Snapshot;
  statuses: ResourceStatus[];
  loadedAt: Date;
}

const MAX_TIMER_MS = 2_147_483_647;

export class ControlPlane implements DiscoveryBackend, ControlPlaneAdminSource {
  readonly trustDomain: string;
  readonly rootNamespace: string;
  private readonly log: Logger;
  private readonly timers: ControlPlaneTimers;
  private readonly source: FolderSource;
  private readonly tokens: JoinTokenStore;
  private readonly pushDebounceMs: number;
  private readonly goawayRetryAfterMs: number;
  private ca: MeshCa | undefined;
  private current: ServedConfig | undefined;
  private rejected: { at: Date; errors: ConfigError[] } | undefined;
  private readonly sessions = new Map<string, ProxySession>();
  /** Cut-view inputs for the current snapshot and registry; dropped when either changes. */
  private context: ViewContext | undefined;
  private discovery: Server | undefined;
  private admin: FastifyInstance | undefined;
  private ports: ControlPlanePorts | undefined;
  private pushTimer: unknown;
  private burstStartedAt: number | undefined;
  private pingTimer: unknown;
  private serverCertTimer: unknown;
  /** Until it fires, hello.knownMeshEndpoints are kept in their proxy's views. */
  private warmUpTimer: unknown;
  private warmingUp = true;
  private stopping = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ControlPlaneOptions) {
    this.log = options.logger;
    this.timers = options.timers ?? realTimers;
    this.trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    this.rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
    this.pushDebounceMs = options.pushDebounceMs ?? 100;
    this.goawayRetryAfterMs = options.goawayRetryAfterMs ?? 1000;
    this.tokens = new JoinTokenStore(options.dataDir);
    this.source = new FolderSource({
      dir: options.configDir,
      compile: { rootNamespace: this.rootNamespace },
      ...(options.configDebounceMs !== undefined ? { debounceMs: options.configDebounceMs } : {}),
      onUpdate: (u) => this.handleUpdate(u),
    });
  }

  get rootPem(): string {
    if (!this.ca) throw new Error('the control plane has not started');
    return this.ca.rootPem;
  }

  /** Loads the config, opens the CA, and listens; rejects (and cleans up) when any of it fails. */
  async start(): Promise<ControlPlanePorts> {
    const first = await this.source.start();
    if (first.kind !== 'loaded') {
      if (first.kind === 'rejected') this.logErrors(first.errors);
      this.source.close();
      throw new ConfigRejectedAtStartError(
        `config folder ${this.options.configDir} does not parse: nothing to serve; fix the errors and start again`,
      );
    }
    this.accept(first);
    try {
      this.ca = await MeshCa.open({
        dataDir: this.options.dataDir,
        trustDomain: this.trustDomain,
        ...(this.options.caRoot ? { root: this.options.caRoot } : {}),
        ...(this.options.workloadCertTtlMs !== undefined
          ? { workloadTtlMs: this.options.workloadCertTtlMs }
          : {}),
      });
      this.log.info(
        {
          source: this.ca.source,
          fingerprint256: this.ca.rootFingerprint256,
          notAfter: this.ca.rootNotAfter.toISOString(),
          trustDomain: this.trustDomain,
        },
        'mesh CA ready',
      );
      const host = this.options.listenHost ?? '127.0.0.1';
      const serverCert = await this.issueServerCertificate();
      this.discovery = createDiscoveryServer(this, serverCert, this.log);
      const discoveryPort = await listen(
        this.discovery,
        host,
        this.options.discoveryPort ?? DEFAULT_DISCOVERY_PORT,
      );
      this.scheduleServerCertRenewal(serverCert);
      this.log.info({ address: host, port: discoveryPort }, 'discovery listening');

      const adminHost = this.options.adminHost ?? '127.0.0.1';
      const admin = await startControlPlaneAdmin(
        this,
        adminHost,
        this.options.adminPort ?? DEFAULT_CONTROL_PLANE_ADMIN_PORT,
      );
      this.admin = admin.app;
      this.log.info({ address: adminHost, port: admin.port }, 'admin API listening');
      this.ports = { discoveryPort, adminPort: admin.port };
    } catch (err) {
      await this.close();
      throw err;
    }
    this.schedulePing();
    this.warmUpTimer = this.timers.setTimeout(
      () => this.endWarmUp(),
      this.options.restartWarmUpMs ?? RESTART_WARM_UP_MS,
    );
    return this.ports;
  }

  /** For the CLI: starts, then runs until SIGTERM or SIGINT; resolves with the exit code. */
  async run(): Promise<number> {
    try {
      await this.start();
    } catch (err) {
      if (err instanceof ConfigRejectedAtStartError) this.log.error({}, err.message);
      else this.log.error({ err }, 'the control plane cannot start');
      return 1;
    }
    return new Promise((resolve) => {
      const onSignal = (signal: NodeJS.Signals) => {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
        this.log.info(
          { signal, proxies: this.sessions.size },
          'shutting down: goaway to every proxy',
        );
        this.close().then(
          () => {
            this.log.info({}, 'stopped');
            resolve(0);
          },
          (err: unknown) => {
            this.log.error({ err }, 'did not stop cleanly');
            resolve(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  }

  /** Tells every proxy to go away (and come back later), then closes both servers. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.source.close();
    for (const t of [this.pushTimer, this.pingTimer, this.serverCertTimer, this.warmUpTimer])
      if (t !== undefined) this.timers.clearTimeout(t);
    this.pushTimer = this.pingTimer = this.serverCertTimer = this.warmUpTimer = undefined;
    const goaway = {
      reason: 'the control plane is shutting down',
      retryAfterMs: this.goawayRetryAfterMs,
    };
    for (const s of [...this.sessions.values()]) {
      this.forget(s);
      s.close(goaway);
    }
    this.updateGauges();
    await Promise.all([
      this.discovery ? closeServer(this.discovery) : undefined,
      this.admin?.close(),
    ]);
  }

  // --- config ---

  private handleUpdate(update: FolderUpdate): void {
    if (this.stopping) return;
    switch (update.kind) {
      case 'loaded':
        this.rejected = undefined;
        if (!update.changed && this.current) {
          this.log.info({ version: update.snapshot.version }, 'config reloaded, unchanged');
          return;
        }
        this.accept(update);
        this.context = undefined;
        this.schedulePush();
        break;
      case 'rejected':
        this.rejected = { at: new Date(this.timers.now()), errors: update.errors };
        configRejections.inc();
        this.logErrors(update.errors);
        this.log.error(
          { errors: update.errors.length, serving: this.current?.snapshot.version },
          'config rejected: nothing is pushed; proxies keep the last good view',
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
    const { snapshot, statuses } = update;
    this.current = { snapshot, statuses, loadedAt: new Date(this.timers.now()) };
    const problems = statuses.filter((s) => allConditions(s.status).some(isProblem));
    this.log.info(
      {
        version: snapshot.version,
        gateways: snapshot.gateways.length,
        routes: snapshot.routes.length,
        services: snapshot.services.length,
        problemResources: problems.length,
      },
      'config loaded',
    );
    for (const s of problems)
      this.log.warn(
        {
          resource: `${s.kind} ${s.metadata.namespace ? `${s.metadata.namespace}/` : ''}${s.metadata.name}`,
          problems: allConditions(s.status)
            .filter(isProblem)
            .map((c) => `${c.type}=${c.status} (${c.reason}): ${c.message}`),
        },
        'resource has problem conditions; served as compiled',
      );
  }

  private logErrors(errors: readonly ConfigError[]): void {
    for (const e of errors)
      this.log.error(
        {
          file: e.location.file,
          line: e.location.line,
          column: e.location.col,
          field: e.path,
          ...(e.resource ? { resource: e.resource } : {}),
          error: e.message,
        },
        `config error: ${formatLocation(e.location)} ${e.path ? `${e.path}: ` : ''}${e.message}`,
      );
  }

  // --- views and pushes ---

  private registered(): RegisteredEndpoint[] {
    return [...this.sessions.values()].flatMap((s) => (s.endpoint ? [s.endpoint] : []));
  }

  private viewContext(): ViewContext {
    if (!this.current) throw new ControlPlaneError('MG_ERR_CP_NOT_READY', 'no config loaded');
    this.context ??= {
      snapshot: this.current.snapshot,
      merged: mergeRegisteredEndpoints(
        this.current.snapshot.services,
        this.registered(),
        this.trustDomain,
      ),
      trustDomain: this.trustDomain,
    };
    return this.context;
  }

  /**
   * One proxy's view. During the restart warm-up, a proxy that reported the sidecar endpoints it
   * knew keeps those not registered again yet; that merge is its own, the shared one is not touched.
   */
  private viewOf(hello: ProxyHello): ProxyView {
    const ctx = this.viewContext();
    const known = this.warmingUp ? hello.knownMeshEndpoints : undefined;
    if (!known) return cutView(ctx, hello);
    const merged = mergeRegisteredEndpoints(
      ctx.snapshot.services,
      this.registered(),
      this.trustDomain,
      known,
    );
    return cutView({ ...ctx, merged }, hello);
  }

  /** The warm-up is over: a sidecar that has not come back by now is gone. */
  private endWarmUp(): void {
    this.warmUpTimer = undefined;
    this.warmingUp = false;
    let keeping = 0;
    for (const s of this.sessions.values()) if (s.hello.knownMeshEndpoints) keeping += 1;
    this.log.info(
      { proxiesKeepingEndpoints: keeping, endpoints: this.registered().length },
      'restart warm-up over: views list registered sidecars only',
    );
    if (keeping > 0) this.schedulePush();
  }

  /** Trailing debounce with a cap, so a steady trickle of changes still pushes. */
  private schedulePush(): void {
    if (this.stopping) return;
    const now = this.timers.now();
    this.burstStartedAt ??= now;
    if (this.pushTimer !== undefined) this.timers.clearTimeout(this.pushTimer);
    const wait = Math.max(
      0,
      Math.min(this.pushDebounceMs, this.burstStartedAt + 10 * this.pushDebounceMs - now),
    );
    this.pushTimer = this.timers.setTimeout(() => {
      this.pushTimer = undefined;
      this.burstStartedAt = undefined;
      this.pushAll();
    }, wait);
  }

  private pushAll(): void {
    if (this.stopping || !this.current) return;
    const ctx = this.viewContext();
    let pushed = 0;
    for (const s of this.sessions.values())
      if (s.push(this.viewOf(s.hello))) {
        pushed += 1;
        viewPushes.inc({ kind: s.hello.kind });
      }
    // A registry change that touched nobody's view is not worth an info line.
    this.log[pushed > 0 ? 'info' : 'debug'](
      {
        snapshot: ctx.snapshot.version,
        pushed,
        unchanged: this.sessions.size - pushed,
        endpoints: this.registered().length,
      },
      'push round',
    );
  }

  private schedulePing(): void {
    if (this.stopping) return;
    this.pingTimer = this.timers.setTimeout(() => {
      const at = new Date(this.timers.now()).toISOString();
      for (const s of this.sessions.values()) s.send({ type: 'ping', at });
      this.schedulePing();
    }, PING_INTERVAL_MS);
  }

  // --- DiscoveryBackend ---

  async issueCertificate(
    request: CertificateRequest,
    auth: { client?: ClientCertificate; bearer?: string; clientProblem?: string },
  ): Promise<CertificateResponse> {
    if (!this.ca || this.stopping)
      throw new ControlPlaneError('MG_ERR_CP_SHUTTING_DOWN', 'the control plane is stopping');
    let identity: { namespace: string; serviceAccount: string };
    let how: 'certificate' | 'token';
    if (auth.client) {
      identity = auth.client.identity;
      how = 'certificate';
    } else if (auth.bearer) {
      const redeemed = await this.tokens.redeem(auth.bearer);
      if (!redeemed)
        throw new IdentityError(
          'MG_ERR_JOIN_TOKEN_INVALID',
          'the join token is unknown or has expired; create one with `meshgate token create`',
        );
      identity = redeemed;
      how = 'token';
    } else {
      throw new ControlPlaneError(
        'MG_ERR_CP_UNAUTHENTICATED',
        `${auth.clientProblem ?? 'no client certificate'}, and no join token (Authorization: Bearer <token>)`,
      );
    }
    const issued = await this.ca.issueWorkloadCertificate(request.csr, identity);
    certificatesIssued.inc({ auth: how });
    this.log.info(
      {
        spiffeId: issued.spiffeId,
        serialNumber: issued.serialNumber,
        notAfter: issued.notAfter.toISOString(),
        auth: how,
      },
      'certificate issued',
    );
    return {
      certificatePem: issued.certificatePem,
      chainPem: issued.chainPem,
      rootPem: issued.rootPem,
    };
  }

  openStream(hello: ProxyHello, client: ClientCertificate, res: ServerResponse): void {
    if (this.stopping)
      throw new ControlPlaneError('MG_ERR_CP_SHUTTING_DOWN', 'the control plane is stopping');
    const id = client.identity;
    if (hello.namespace !== id.namespace || hello.serviceAccount !== id.serviceAccount)
      throw new ControlPlaneError(
        'MG_ERR_CP_IDENTITY_MISMATCH',
        `the hello says namespace ${hello.namespace}, service account ${hello.serviceAccount}; the certificate is ${id.spiffeId}`,
      );
    this.checkGatewayAccess(hello, client);
    const existing = this.sessions.get(hello.proxyId);
    if (existing && existing.identity.spiffeId !== id.spiffeId)
      throw new ControlPlaneError(
        'MG_ERR_CP_PROXY_ID_TAKEN',
        `proxy id ${hello.proxyId} is connected as ${existing.identity.spiffeId}`,
      );
    if (existing) {
      // The same proxy reconnected before its old stream was seen to end.
      this.forget(existing);
      existing.close({ reason: 'replaced by a newer stream of this proxy', retryAfterMs: 0 });
    }
    const session = new ProxySession(hello, id, new Date(this.timers.now()), res);
    session.certificateExpiry = client.notAfter;
    this.sessions.set(hello.proxyId, session);
    if (session.endpoint || existing?.endpoint) {
      this.context = undefined;
      this.schedulePush();
    }
    res.writeHead(200, {
      'content-type': 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    const view = this.viewOf(hello);
    let sent = false;
    if (hello.currentVersion === view.version) {
      session.adopt(view);
      // Headers go out with the first chunk: the proxy learns the stream is up.
      session.send({ type: 'ping', at: new Date(this.timers.now()).toISOString() });
    } else {
      sent = session.push(view);
      if (sent) viewPushes.inc({ kind: hello.kind });
    }
    this.armLapse(session);
    res.on('close', () => this.endSession(session, 'stream closed'));
    this.updateGauges();
    this.log.info(
      {
        proxyId: hello.proxyId,
        kind: hello.kind,
        identity: id.spiffeId,
        version: view.version,
        sent,
        ...(session.endpoint
          ? { endpoint: `${session.endpoint.address}:${session.endpoint.port}` }
          : {}),
      },
      'proxy connected',
    );
  }

  /**
   * A gateway's view holds TLS private keys and policy Secrets, so not every workload may ask for
   * one: a gateway in the root namespace may serve any Gateway; any other only Gateways of its
   * own namespace, named in hello.gateways.
   */
  private checkGatewayAccess(hello: ProxyHello, client: ClientCertificate): void {
    if (hello.kind !== 'gateway' || client.identity.namespace === this.rootNamespace) return;
    const ns = client.identity.namespace;
    const foreign = hello.gateways
      ? hello.gateways.filter((g) => !g.startsWith(`${ns}/`))
      : ['(all Gateways)'];
    if (foreign.length > 0)
      throw new ControlPlaneError(
        'MG_ERR_CP_FORBIDDEN',
        `${client.identity.spiffeId} may serve only Gateways of namespace ${ns} (name them in hello.gateways), not ${foreign.join(', ')}; gateways in ${this.rootNamespace} may serve any`,
      );
  }

  private session(proxyId: string, client: ClientCertificate): ProxySession {
    const s = this.sessions.get(proxyId);
    if (!s)
      throw new ControlPlaneError('MG_ERR_CP_UNKNOWN_PROXY', `no open stream for proxy ${proxyId}`);
    if (s.identity.spiffeId !== client.identity.spiffeId)
      throw new ControlPlaneError(
        'MG_ERR_CP_FORBIDDEN',
        `proxy ${proxyId} is ${s.identity.spiffeId}, not ${client.identity.spiffeId}`,
      );
    // A renewed certificate shows up here first: the proxy's calls use its newest one.
    s.certificateExpiry = client.notAfter;
    return s;
  }

  ack(ack: ProxyAck, client: ClientCertificate): void {
    const s = this.session(ack.proxyId, client);
    s.acknowledge(ack.version, ack.ok, ack.error);
    if (ack.ok) {
      this.log.debug({ proxyId: ack.proxyId, version: ack.version }, 'ack');
      return;
    }
    viewNacks.inc({ kind: s.hello.kind });
    this.log.warn(
      { proxyId: ack.proxyId, version: ack.version, error: ack.error },
      'proxy refused a view (NACK); it keeps its previous one',
    );
  }

  heartbeat(proxyId: string, client: ClientCertificate): void {
    this.armLapse(this.session(proxyId, client));
  }

  private armLapse(session: ProxySession): void {
    if (session.lapseTimer !== undefined) this.timers.clearTimeout(session.lapseTimer);
    session.lapseTimer = this.timers.setTimeout(() => {
      session.lapseTimer = undefined;
      this.log.warn(
        { proxyId: session.proxyId, lapseMs: HEARTBEAT_LAPSE_MS },
        'proxy heartbeat lapsed; dropping its stream and registration',
      );
      this.endSession(session, 'heartbeat lapsed');
      session.destroy();
    }, HEARTBEAT_LAPSE_MS);
  }

  /** Removes a session from the registry (its stream ended, lapsed, or was replaced). */
  private forget(session: ProxySession): boolean {
    if (session.lapseTimer !== undefined) this.timers.clearTimeout(session.lapseTimer);
    session.lapseTimer = undefined;
    if (this.sessions.get(session.proxyId) !== session) return false;
    this.sessions.delete(session.proxyId);
    return true;
  }

  private endSession(session: ProxySession, reason: string): void {
    if (!this.forget(session)) return;
    if (session.endpoint) {
      this.context = undefined;
      this.schedulePush();
    }
    this.updateGauges();
    this.log.info(
      { proxyId: session.proxyId, kind: session.hello.kind, reason },
      'proxy disconnected',
    );
  }

  private updateGauges(): void {
    let sidecars = 0;
    for (const s of this.sessions.values()) if (s.hello.kind === 'sidecar') sidecars += 1;
    connectedProxies.set({ kind: 'sidecar' }, sidecars);
    connectedProxies.set({ kind: 'gateway' }, this.sessions.size - sidecars);
    registeredEndpoints.set(this.registered().length);
  }

  // --- the discovery server's own certificate ---

  private async issueServerCertificate(): Promise<IssuedKeyAndCertificate> {
    const host = this.options.listenHost ?? '127.0.0.1';
    const dnsNames = ['localhost'];
    const ips = new Set(['127.0.0.1', '::1']);
    if (isIP(host) === 0) dnsNames.push(host);
    else if (host === '0.0.0.0' || host === '::') {
      // Listening everywhere: proxies may dial any local address.
      for (const addrs of Object.values(networkInterfaces()))
        for (const a of addrs ?? []) ips.add(a.address.split('%')[0] as string);
    } else ips.add(host);
    return (this.ca as MeshCa).issueServerCertificate({
      dnsNames: [...new Set(dnsNames)],
      ipAddresses: [...ips],
    });
  }

  private scheduleServerCertRenewal(
    cert: IssuedKeyAndCertificate,
    at = renewAt(cert, this.timers.now()).getTime(),
  ): void {
    if (this.stopping) return;
    this.serverCertTimer = this.timers.setTimeout(
      () => {
        this.serverCertTimer = undefined;
        if (this.timers.now() < at) return this.scheduleServerCertRenewal(cert, at);
        this.issueServerCertificate().then(
          (next) => {
            if (this.stopping) return;
            // New handshakes get the new certificate; open streams keep theirs.
            this.discovery?.setSecureContext(secureContextOptions(next));
            this.log.info(
              { notAfter: next.notAfter.toISOString() },
              'discovery server certificate renewed',
            );
            this.scheduleServerCertRenewal(next);
          },
          (err: unknown) => {
            this.log.error({ err }, 'cannot renew the discovery server certificate; retrying');
            this.serverCertTimer = this.timers.setTimeout(
              () => this.scheduleServerCertRenewal(cert, at),
              10_000,
            );
          },
        );
      },
      Math.min(MAX_TIMER_MS, Math.max(0, at - this.timers.now())),
    );
  }

  // --- ControlPlaneAdminSource ---

  readiness(): Readiness {
    const version = this.current?.snapshot.version ?? null;
    if (this.stopping) return { ready: false, version, reason: 'shutting down' };
    if (!this.ports) return { ready: false, version, reason: 'starting' };
    return { ready: true, version: version as string };
  }

  proxies(): ProxyStatus[] {
    return [...this.sessions.values()]
      .map((s) => s.status())
      .sort((a, b) => (a.proxyId < b.proxyId ? -1 : a.proxyId > b.proxyId ? 1 : 0));
  }

  status(): ControlPlaneStatus {
    return {
      version: this.current?.snapshot.version ?? null,
      loadedAt: this.current?.loadedAt.toISOString() ?? null,
      rejected: this.rejectedSummary(),
      proxies: this.proxies(),
    };
  }

  private rejectedSummary(): ControlPlaneStatus['rejected'] {
    if (!this.rejected) return null;
    return {
      at: this.rejected.at.toISOString(),
      errors: this.rejected.errors.map((e) => ({
        location: formatLocation(e.location),
        path: e.path,
        message: e.message,
      })),
    };
  }

  configDump(): ConfigDump | undefined {
    if (!this.current) return undefined;
    return {
      version: this.current.snapshot.version,
      loadedAt: this.current.loadedAt.toISOString(),
      rejected: this.rejectedSummary(),
      trustDomain: this.trustDomain,
      rootNamespace: this.rootNamespace,
      statuses: this.current.statuses,
      registeredEndpoints: [...this.registered()].sort((a, b) => (a.proxyId < b.proxyId ? -1 : 1)),
      snapshot: redactSnapshot(this.current.snapshot),
    };
  }

  proxyView(proxyId: string): ProxyView | undefined {
    const view = this.sessions.get(proxyId)?.latest;
    return view ? redactView(view) : undefined;
  }

  async createToken(request: {
    namespace: string;
    serviceAccount: string;
    ttlSeconds: number;
  }): Promise<TokenGrant> {
    const created = await this.tokens.create({
      namespace: request.namespace,
      serviceAccount: request.serviceAccount,
      ttlMs: request.ttlSeconds * 1000,
    });
    this.log.info(
      {
        namespace: created.namespace,
        serviceAccount: created.serviceAccount,
        expiresAt: created.expiresAt.toISOString(),
      },
      'join token created',
    );
    return { token: created.token, expiresAt: created.expiresAt.toISOString() };
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

/** Stops listening; connections whose streams were just ended close once their last bytes go. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const force = setTimeout(() => server.closeAllConnections(), 2_000);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    setImmediate(() => server.closeIdleConnections());
  });
}
