// `meshgate sidecar`: one process per workload instance, no workers. It binds its listeners
// (inbound mTLS 15006 on --address, outbound 15001 and admin 15000 on 127.0.0.1, metrics 15090),
// then gets its identity and its view from the control plane (shared/discovery/client.ts):
// the first certificate with the join token, renewals at half-life, the view as a stream that
// it applies atomically, ACKs, or NACKs while keeping the last good one, reconnecting while
// the control plane is away. On SIGTERM it drains: it leaves the registry (so peers stop
// choosing it), stops accepting, lets requests in flight finish within the drain period, and
// exits 0.

import { createHash, X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { Pool } from 'undici';
import * as undici from '../../shared/proxy/undici-core.ts';
import { JwksCache } from '../../gateway/auth/jwks-cache.ts';
import type { InboundDecision } from '../../shared/authz/evaluate.ts';
import { DiscoveryClient, type ApplyResult } from '../../shared/discovery/client.ts';
import type { ProxyView } from '../../shared/discovery/protocol.ts';
import type { WorkloadCredentials } from '../../shared/identity/workload-identity.ts';
import { MeshPools } from '../../shared/proxy/mesh-pools.ts';
import { UpstreamPools } from '../../shared/proxy/upstream-pools.ts';
import {
  startAdminServer,
  startMetricsServer,
  type SidecarAdminSource,
  type SidecarReadiness,
} from './admin-server.ts';
import { DenialLog } from './denial-log.ts';
import { InboundServer } from './inbound-server.ts';
import { inboundStack, inboundUpgradeStack } from './inbound-stack.ts';
import { InflightRequests } from './inflight.ts';
import { OutboundServer } from './outbound-server.ts';
import { outboundStack, outboundUpgradeStack } from './outbound-stack.ts';
import {
  authzDenials,
  certificateExpiry,
  certificateRotations,
  mtlsHandshakes,
  viewsApplied,
} from './sidecar-metrics.ts';
import { SidecarView, type Workload } from './sidecar-view.ts';
import type { InboundRequest } from './request-context.ts';

export interface SidecarOptions {
  workload: Workload;
  /** Where peers reach the inbound listener (it binds there, and registers it). */
  address: string;
  inboundPort: number;
  outboundPort: number;
  adminPort: number;
  metricsPort: number;
  controlPlaneUrl: string;
  controlPlaneCaPem: string;
  tokenFile: string;
  drainMs: number;
  /** Process events (start, certificates, views, denials, drain). */
  logger: Logger;
  /** One line per request. */
  accessLog: Logger;
}

export interface SidecarPorts {
  inbound: number;
  outbound: number;
  admin: number;
  metrics: number;
}

export class Sidecar implements SidecarAdminSource {
  private view: SidecarView | undefined;
  private lastNack: { version: string; error: string; at: string } | undefined;
  private viewReceivedAt: string | undefined;
  private client: DiscoveryClient | undefined;
  private readonly inflight = new InflightRequests();
  private readonly denialLog = new DenialLog();
  private readonly meshPools: MeshPools;
  private readonly plainPools = new UpstreamPools();
  private readonly appPool: Pool;
  private readonly jwks: JwksCache;
  private readonly inbound: InboundServer;
  private readonly outbound: OutboundServer;
  private admin: Server | undefined;
  private metrics: Server | undefined;
  private draining = false;
  private readonly log: Logger;
  private readonly now = () => performance.now();

  constructor(private readonly options: SidecarOptions) {
    this.log = options.logger;
    const { workload } = options;
    this.meshPools = new MeshPools({
      onHandshake: (origin, err) => {
        mtlsHandshakes.inc({ direction: 'outbound', result: err ? 'failed' : 'ok' });
        if (err)
          this.log.warn(
            { upstream: origin, error: err.message },
            'outbound mTLS handshake refused',
          );
      },
    });
    const appOrigin = `http://127.0.0.1:${workload.appPort}`;
    this.appPool = new undici.Pool(appOrigin, {
      connections: 128,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 60_000,
    });
    this.jwks = new JwksCache({
      now: () => Date.now(),
      cooldownMs: 30_000,
      fetchTimeoutMs: 5_000,
      onError: (uri, err) =>
        this.log.warn(
          { uri, err: err.message },
          'JWKS fetch failed; serving the keys already known',
        ),
    });
    const inboundDeps = {
      appPort: workload.appPort,
      app: { origin: appOrigin, dispatcher: this.appPool },
      ownSpiffeId: () => this.client?.credentials?.spiffeId,
      onDenied: (r: InboundRequest, d: InboundDecision) => this.recordDenial(r, d),
    };
    this.inbound = new InboundServer({
      address: options.address,
      port: options.inboundPort,
      layers: inboundStack(inboundDeps),
      upgradeLayers: inboundUpgradeStack(inboundDeps),
      view: () => this.view,
      logger: this.log,
      accessLog: options.accessLog,
      inflight: this.inflight,
      now: this.now,
    });
    const outboundDeps = {
      meshPools: this.meshPools,
      plainPools: this.plainPools,
      random: Math.random,
      now: this.now,
    };
    this.outbound = new OutboundServer({
      address: '127.0.0.1',
      port: options.outboundPort,
      layers: outboundStack(outboundDeps),
      upgradeLayers: outboundUpgradeStack(outboundDeps),
      view: () => this.view,
      logger: this.log,
      accessLog: options.accessLog,
      inflight: this.inflight,
      now: this.now,
    });
  }

  /** Binds every listener and starts discovery; resolves once bound (not once ready). */
  async start(): Promise<SidecarPorts> {
    const { options } = this;
    const [inbound, outbound, admin, metrics] = await Promise.all([
      this.inbound.listen(),
      this.outbound.listen(),
      startAdminServer(this, '127.0.0.1', options.adminPort),
      startMetricsServer('127.0.0.1', options.metricsPort),
    ]);
    this.admin = admin.server;
    this.metrics = metrics.server;
    const ports = { inbound, outbound, admin: admin.port, metrics: metrics.port };
    const w = options.workload;
    this.log.info({ ...ports, address: options.address, appPort: w.appPort }, 'sidecar listening');
    this.log.info({ address: '127.0.0.1', port: admin.port }, 'admin API listening');

    const client = new DiscoveryClient({
      controlPlaneUrl: options.controlPlaneUrl,
      rootCaPem: options.controlPlaneCaPem,
      tokenFile: options.tokenFile,
      hello: {
        proxyId: `sidecar~${w.namespace}~${w.service}~${options.address}:${inbound}`,
        kind: 'sidecar',
        service: w.service,
        namespace: w.namespace,
        serviceAccount: w.serviceAccount,
        labels: { ...w.labels },
        address: options.address,
        inboundPort: inbound,
        appPort: w.appPort,
      },
      apply: (view) => this.apply(view),
      logger: this.log,
    });
    this.client = client;
    client.on('rotated', (current) => {
      certificateRotations.inc();
      this.useCredentials(current);
    });
    client.on('nack', (version, error) => {
      this.lastNack = { version, error, at: new Date().toISOString() };
    });
    void client.start().then(
      (credentials) => {
        this.useCredentials(credentials);
        this.log.info(
          { spiffeId: credentials.spiffeId, notAfter: credentials.notAfter.toISOString() },
          'workload certificate issued',
        );
      },
      (err: unknown) => {
        if (!this.draining) this.log.error({ err }, 'no workload certificate');
      },
    );
    return ports;
  }

  private useCredentials(credentials: WorkloadCredentials): void {
    this.inbound.setCredentials(credentials);
    this.meshPools.setCredentials(credentials);
    certificateExpiry.set(credentials.notAfter.getTime() / 1000);
  }

  /** Compiles the view; the swap is one assignment, requests in flight keep the old one. */
  private apply(proxyView: ProxyView): ApplyResult {
    let next: SidecarView;
    try {
      next = new SidecarView(
        proxyView,
        { workload: this.options.workload, jwks: this.jwks },
        this.view,
      );
    } catch (err) {
      viewsApplied.inc({ result: 'nack' });
      return { ok: false, error: (err as Error).message };
    }
    this.view = next;
    this.viewReceivedAt = new Date().toISOString();
    viewsApplied.inc({ result: 'ack' });
    this.meshPools.retain(next.meshPeers);
    this.plainPools.retain(next.plainOrigins);
    for (const problem of next.problems)
      this.log.warn(
        { version: next.version, problem },
        'part of the view is not served as written',
      );
    this.log.info(
      {
        version: next.version,
        snapshot: next.snapshotVersion,
        mtls: next.mtls,
        services: proxyView.services.length,
        authorizationPolicies:
          next.inbound.authorization.allow.length +
          next.inbound.authorization.deny.length +
          next.inbound.authorization.custom.length,
      },
      'view serving',
    );
    return { ok: true };
  }

  private recordDenial(r: InboundRequest, d: InboundDecision): void {
    const by = d.decidedBy;
    authzDenials.inc({ policy: by?.policy ?? '-', status: d.status });
    this.denialLog.record({
      at: new Date().toISOString(),
      requestId: r.requestId,
      peer: r.peer?.principal ?? null,
      sourceIp: r.clientAddress,
      method: r.method,
      path: r.req.url ?? '',
      ...(d.path !== undefined ? { normalizedPath: d.path } : {}),
      status: d.status,
      ...(by ? { policy: by.policy, action: by.action, rule: by.rule } : {}),
      reason: d.reason,
    });
    this.log.warn(
      {
        request_id: r.requestId,
        peer: r.peer?.principal ?? '-',
        method: r.method,
        path: r.req.url,
        status: d.status,
        ...(by ? { policy: by.policy, rule: by.rule, action: by.action } : {}),
        reason: d.reason,
      },
      'request denied',
    );
  }

  // --- admin ---

  readiness(): SidecarReadiness {
    const version = this.view?.version ?? null;
    if (this.draining) return { ready: false, version, reason: 'draining' };
    if (!this.client?.credentials)
      return { ready: false, version, reason: 'no workload certificate yet' };
    if (!this.view) return { ready: false, version, reason: 'no view from the control plane yet' };
    return { ready: true, version: this.view.version };
  }

  configDump(): unknown {
    const credentials = this.client?.credentials;
    const v = this.view;
    const az = v?.inbound.authorization;
    return {
      workload: this.options.workload,
      identity: credentials
        ? {
            spiffeId: credentials.spiffeId,
            serialNumber: credentials.serialNumber,
            notBefore: credentials.notBefore.toISOString(),
            notAfter: credentials.notAfter.toISOString(),
            renewAt: credentials.renewAt.toISOString(),
            // What peers see as XFCC `Hash=`: the SHA-256 of the certificate's DER.
            certificateSha256: createHash('sha256')
              .update(new X509Certificate(credentials.certificatePem).raw)
              .digest('hex'),
          }
        : null,
      controlPlane: {
        url: this.options.controlPlaneUrl,
        connected: this.client?.connected ?? false,
      },
      view: v
        ? {
            version: v.version,
            snapshotVersion: v.snapshotVersion,
            receivedAt: this.viewReceivedAt,
            trustDomain: v.view.trustDomain,
            rootNamespace: v.view.rootNamespace,
            problems: v.problems,
            inbound: {
              mtls: v.mtls,
              mtlsFrom: v.inbound.peerAuthentication.modeFrom,
              authorizationPolicies: {
                custom: az?.custom.map((p) => p.policy) ?? [],
                deny: az?.deny.map((p) => p.policy) ?? [],
                allow: az?.allow.map((p) => p.policy) ?? [],
                audit: az?.audit.map((p) => p.policy) ?? [],
              },
              requestAuthentications: v.inbound.requestAuthentication.policies.map((p) => p.policy),
            },
            destinations: [...v.destinations.values()].map((d) => ({
              service: d.key,
              routes: [...d.rules.entries()].map(([route, rules]) => ({
                route,
                rules: rules.map((r) => r.id),
              })),
              endpoints: d.service.ports
                .find((p) => p.port === d.port)
                ?.endpoints.map((e) => `${e.address}:${e.port}`),
              mesh: (v.meshEndpoints[d.key] ?? []).map((m) => ({
                endpoint: `${m.address}:${m.port}`,
                spiffeId: m.spiffeId,
              })),
            })),
          }
        : null,
      lastNack: this.lastNack ?? null,
    };
  }

  denials(): unknown {
    return { total: this.denialLog.total, recent: this.denialLog.recent() };
  }

  // --- shutdown ---

  /**
   * Leaves the mesh (the stream's end deregisters the endpoint), stops accepting, lets requests
   * in flight finish within the drain period, then closes everything.
   */
  async drain(): Promise<{ inflightLeft: number }> {
    if (this.draining) return { inflightLeft: this.inflight.count };
    this.draining = true;
    this.log.info({ inflight: this.inflight.count, drainMs: this.options.drainMs }, 'draining');
    await this.client?.stop();
    this.log.info({}, 'left the mesh: discovery stream closed');
    this.inbound.stopAccepting();
    this.outbound.stopAccepting();
    const idle = await this.inflight.idle(this.options.drainMs);
    const inflightLeft = this.inflight.count;
    if (!idle) this.log.warn({ inflight: inflightLeft }, 'drain period over: closing what is left');
    this.inbound.destroyAll();
    this.outbound.destroyAll();
    await Promise.all([
      this.view?.close(),
      this.meshPools.close(),
      this.plainPools.close(),
      this.appPool.close().catch(() => undefined),
      closeServer(this.admin),
      closeServer(this.metrics),
    ]);
    return { inflightLeft };
  }
}

function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
