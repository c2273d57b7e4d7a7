// The admin API of `meshgate gateway` (openapi/admin.yaml), served by the supervisor on
// 127.0.0.1: readiness, what is served (config_dump, routes), the statuses a controller would
// write, the workers, and Prometheus metrics summed over the workers. It reads the supervisor's state through AdminSource, so it is tested
// in-process with inject().

import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import {
  allConditions,
  isProblem,
  type ResourceStatus,
} from '../shared/config/compile/conditions.ts';
import type {
  BackendIR,
  GatewayIR,
  RouteAttachmentIR,
  Snapshot,
} from '../shared/config/snapshot.ts';
import type { RouteCandidate } from '../shared/routing/route-candidate.ts';
import { METRICS_CONTENT_TYPE } from '../shared/telemetry/metrics.ts';
import {
  gatewayRouteTables,
  type ListenerAttachment,
} from '../shared/routing/snapshot-route-tables.ts';
import type { BoundPort } from './gateway-server.ts';
import type { GatewayAddresses } from './worker.ts';

export type Readiness =
  { ready: true; version: string } | { ready: false; version: string | null; reason: string };

export type WorkerPhase = 'starting' | 'applying' | 'serving' | 'failed' | 'draining';

export interface WorkerInfo {
  /** cluster worker id (1, 2, …; a replacement gets a new one). */
  id: number;
  pid: number | null;
  phase: WorkerPhase;
  startedAt: string;
  appliedVersion: string | null;
  listening: boolean;
  ports: BoundPort[];
  problems: string[];
  error?: string;
}

export interface ServedConfig {
  snapshot: Snapshot;
  statuses: ResourceStatus[];
  loadedAt: string;
}

export interface ServeSettings {
  listenHost: string;
  portOffset: number;
  /** "namespace/name" of the Gateways this process serves; all of meshgate's when absent. */
  gateways?: readonly string[];
}

/** What the admin API reads; the supervisor implements it. */
export interface AdminSource {
  readonly settings: ServeSettings;
  readiness(): Readiness;
  /** The latest good config (the one workers are told to serve). */
  config(): ServedConfig | undefined;
  workers(): { desired: number; workers: WorkerInfo[] };
  /** GatewayServer.addresses() as reported by a worker serving the latest version. */
  addresses(): GatewayAddresses;
  /** Prometheus text of the supervisor and all its workers. */
  metrics(): Promise<string>;
}

export interface AdminServerOptions {
  /** Called for every route registered, before it is (the OpenAPI sync test). */
  onRoute?: (route: RouteOptions) => void;
}

export function buildAdminApp(
  source: AdminSource,
  options: AdminServerOptions = {},
): FastifyInstance {
  // HEAD routes would be routes the OpenAPI document does not list.
  const app = Fastify({ logger: false, exposeHeadRoutes: false });
  if (options.onRoute) app.addHook('onRoute', options.onRoute);
  const noConfig = { error: 'no config has been loaded' };

  app.get('/ready', async (_req, reply) => {
    const r = source.readiness();
    return reply
      .code(r.ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(r);
  });
  app.get('/config_dump', async (_req, reply) => {
    const config = source.config();
    return config ? configDump(config, source.settings) : reply.code(503).send(noConfig);
  });
  app.get('/routes', async (_req, reply) => {
    const config = source.config();
    return config ? routeListing(config.snapshot, source.settings) : reply.code(503).send(noConfig);
  });
  app.get('/status', async (_req, reply) => {
    const config = source.config();
    return config
      ? servedStatuses(config, source.settings, source.addresses())
      : reply.code(503).send(noConfig);
  });
  app.get('/workers', async () => {
    const config = source.config();
    return { version: config?.snapshot.version ?? null, ...source.workers() };
  });
  app.get('/metrics', async (_req, reply) =>
    reply.type(METRICS_CONTENT_TYPE).send(await source.metrics()),
  );
  return app;
}

/** Listens on host:port (0: any free port) and returns the bound port. */
export async function startAdminServer(
  source: AdminSource,
  host: string,
  port: number,
): Promise<{ app: FastifyInstance; port: number }> {
  const app = buildAdminApp(source);
  await app.listen({ host, port });
  const addr = app.server.address();
  return { app, port: typeof addr === 'object' && addr ? addr.port : port };
}

/** The Gateways of the snapshot this process serves (EdgeView's filter). */
export function servedGateways(snapshot: Snapshot, settings: ServeSettings): GatewayIR[] {
  const wanted = settings.gateways ? new Set(settings.gateways) : undefined;
  return snapshot.gateways.filter((g) => !wanted || wanted.has(`${g.namespace}/${g.name}`));
}

/**
 * The snapshot without secrets: TLS private keys are left out, and the values of policy Secrets
 * (OIDC client credentials, API key digests) are replaced, their names kept.
 */
export function redactSnapshot(snapshot: Snapshot): unknown {
  return {
    ...snapshot,
    tlsCertificates: snapshot.tlsCertificates.map(({ keyPem: _key, ...rest }) => rest),
    policySecrets: Object.fromEntries(
      Object.entries(snapshot.policySecrets ?? {}).map(([name, data]) => [
        name,
        Object.fromEntries(Object.keys(data).map((k) => [k, REDACTED])),
      ]),
    ),
  };
}

const REDACTED = '[redacted]';

export function configDump(config: ServedConfig, settings: ServeSettings) {
  const { snapshot } = config;
  return {
    version: snapshot.version,
    loadedAt: config.loadedAt,
    view: {
      listenHost: settings.listenHost,
      portOffset: settings.portOffset,
      gatewayFilter: settings.gateways ?? null,
      gateways: servedGateways(snapshot, settings).map((g) => ({
        namespace: g.namespace,
        name: g.name,
        className: g.className,
        listeners: g.listeners.map((l) => ({
          name: l.name,
          port: l.port,
          boundPort: l.port + settings.portOffset,
          protocol: l.protocol,
          hostname: l.hostname ?? null,
          certificates: l.tls?.certificates ?? [],
          routes: l.routes.map((a: RouteAttachmentIR) => ({
            route: a.route,
            hostnames: a.hostnames,
            rules: a.rules,
          })),
        })),
      })),
    },
    snapshot: redactSnapshot(snapshot),
  };
}

/** Each served Gateway's route tables, one per port, every match in the order requests try them. */
export function routeListing(snapshot: Snapshot, settings: ServeSettings) {
  return {
    version: snapshot.version,
    gateways: servedGateways(snapshot, settings).map((g) => ({
      gateway: `${g.namespace}/${g.name}`,
      ports: gatewayRouteTables(snapshot, g).map((t) => ({
        port: t.port,
        boundPort: t.port + settings.portOffset,
        protocol: t.protocol,
        listeners: t.listeners.map((l) => l.name),
        hostGroups: t.table.groups.map((group) => ({
          hostname: group.hostname,
          matches: group.sorted.map((c) => describeCandidate(snapshot, c)),
        })),
        invalid: t.table.invalid,
      })),
    })),
  };
}

function describeCandidate(snapshot: Snapshot, c: RouteCandidate) {
  const { listener } = c.entry.attachment as ListenerAttachment;
  const total = c.rule.backends.reduce((n, b) => n + b.weight, 0);
  return {
    route: c.routeKey,
    rule: c.rule.index,
    ruleName: c.rule.name ?? null,
    match: c.matchIndex,
    listener: listener.name,
    path: c.match.path,
    method: c.match.method ?? null,
    headers: c.match.headers,
    queryParams: c.match.queryParams,
    filters: c.rule.filters.map((f) => f.type),
    backends: c.rule.backends.map((b) => describeBackend(snapshot, b, total)),
    ...(c.invalid !== undefined ? { invalid: c.invalid } : {}),
  };
}

function describeBackend(snapshot: Snapshot, b: BackendIR, total: number) {
  const svc = snapshot.services.find((s) => s.namespace === b.namespace && s.name === b.name);
  const endpoints = svc?.ports.find((p) => p.port === b.port)?.endpoints ?? [];
  return {
    namespace: b.namespace,
    name: b.name,
    port: b.port,
    weight: b.weight,
    percent: total > 0 ? Math.round((b.weight / total) * 1000) / 10 : 0,
    endpoints: endpoints.map((e) => ({ address: e.address, port: e.port })),
    ...(b.invalid ? { invalid: `${b.invalid.reason}: ${b.invalid.message}` } : {}),
  };
}

interface ParentStatus {
  parentRef: { kind?: string; namespace?: string; name: string };
}

/**
 * The statuses a controller would write for what this process serves: its Gateways, with
 * status.addresses where they listen, and their HTTPRoutes, with the parents that are its Gateways.
 */
export function servedStatuses(
  config: ServedConfig,
  settings: ServeSettings,
  addresses: GatewayAddresses,
) {
  const key = (s: ResourceStatus) => `${s.metadata.namespace ?? ''}/${s.metadata.name}`;
  const gatewayStatuses = config.statuses.filter((s) => s.kind === 'Gateway');
  // Only meshgate's Gateways get a status from the compiler.
  const served = new Set(settings.gateways ?? gatewayStatuses.map(key));
  const addressesOf = new Map(addresses.map((a) => [a.gateway, a.addresses]));
  const resources: ResourceStatus[] = [];
  for (const s of gatewayStatuses)
    if (served.has(key(s)))
      resources.push({ ...s, status: { ...s.status, addresses: addressesOf.get(key(s)) ?? [] } });
  for (const s of config.statuses) {
    if (s.kind !== 'HTTPRoute') continue;
    const parents = ((s.status.parents ?? []) as ParentStatus[]).filter(
      (p) =>
        (p.parentRef.kind ?? 'Gateway') === 'Gateway' &&
        served.has(`${p.parentRef.namespace ?? s.metadata.namespace ?? ''}/${p.parentRef.name}`),
    );
    if (parents.length > 0) resources.push({ ...s, status: { ...s.status, parents } });
  }
  return {
    version: config.snapshot.version,
    problems: resources.filter((r) => allConditions(r.status).some(isProblem)).length,
    resources,
  };
}
