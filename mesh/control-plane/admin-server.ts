// The control plane's admin API (openapi/control-plane.yaml), on 127.0.0.1:15014: readiness, every
// connected proxy's sync state (what `meshgate status` prints), the compiled config without
// secrets, the view a proxy was sent, join tokens for `meshgate token create --control-plane`,
// Prometheus metrics, and a one-page UI. It reads the control plane through
// ControlPlaneAdminSource, so it is tested in-process with inject().

import Fastify, { type FastifyInstance, type FastifyReply, type RouteOptions } from 'fastify';
import type { ResourceStatus } from '../../shared/config/compile/conditions.ts';
import type {
  ProxyStatus,
  ProxyView,
  RegisteredEndpoint,
} from '../../shared/discovery/protocol.ts';
import { METRICS_CONTENT_TYPE, metricsText } from '../../shared/telemetry/metrics.ts';
import { IdentityError } from '../../shared/identity/errors.ts';
import { ControlPlaneError, problemOf } from './errors.ts';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page.ts';

export type Readiness =
  { ready: true; version: string } | { ready: false; version: string | null; reason: string };

/** The last reload that did not parse, while it is newer than the snapshot being served. */
export interface RejectedConfig {
  at: string;
  errors: { location: string; path: string; message: string }[];
}

/** GET /status: the config being served and every connected proxy. */
export interface ControlPlaneStatus {
  /** The latest good snapshot's version (what views are cut from). */
  version: string | null;
  loadedAt: string | null;
  rejected: RejectedConfig | null;
  proxies: ProxyStatus[];
}

export interface ConfigDump {
  version: string;
  loadedAt: string;
  rejected: RejectedConfig | null;
  trustDomain: string;
  rootNamespace: string;
  statuses: ResourceStatus[];
  registeredEndpoints: RegisteredEndpoint[];
  /** The snapshot with TLS keys left out and Secret values redacted. */
  snapshot: Record<string, unknown>;
}

export interface TokenGrant {
  token: string;
  expiresAt: string;
}

/** What the admin API reads; the control plane implements it. */
export interface ControlPlaneAdminSource {
  readiness(): Readiness;
  status(): ControlPlaneStatus;
  configDump(): ConfigDump | undefined;
  /** The view last sent to a proxy (redacted), or undefined for an unknown proxy. */
  proxyView(proxyId: string): ProxyView | undefined;
  createToken(request: {
    namespace: string;
    serviceAccount: string;
    ttlSeconds: number;
  }): Promise<TokenGrant>;
}

export interface ControlPlaneAdminOptions {
  /** Called for every route registered (the OpenAPI sync test). */
  onRoute?: (route: RouteOptions) => void;
}

/** A token lives at most a year; a longer one is more likely a typo than a plan. */
const MAX_TOKEN_TTL_SECONDS = 365 * 24 * 3600;

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

function sendProblem(reply: FastifyReply, err: unknown, instance: string): FastifyReply {
  const problem = problemOf(err, instance);
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

export function buildControlPlaneAdmin(
  source: ControlPlaneAdminSource,
  options: ControlPlaneAdminOptions = {},
): FastifyInstance {
  // HEAD routes would be routes the OpenAPI document does not list.
  const app = Fastify({ logger: false, exposeHeadRoutes: false, bodyLimit: 16 * 1024 });
  if (options.onRoute) app.addHook('onRoute', options.onRoute);
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof ControlPlaneError || err instanceof IdentityError)
      return sendProblem(reply, err, req.url);
    // fastify's own 4xx (a body that is not JSON, too large, the wrong type) as problem+json.
    const status = err.statusCode ?? 500;
    const code =
      status === 413
        ? 'MG_ERR_CP_BODY_TOO_LARGE'
        : status >= 400 && status < 500
          ? 'MG_ERR_CP_BAD_REQUEST'
          : undefined;
    return sendProblem(reply, code ? new ControlPlaneError(code, err.message) : err, req.url);
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(
      reply,
      new ControlPlaneError('MG_ERR_CP_NOT_FOUND', `no route ${req.method} ${req.url}`),
      req.url,
    ),
  );

  app.get('/', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', STATUS_PAGE_CSP)
      .header('cache-control', 'no-store')
      .send(STATUS_PAGE_HTML),
  );
  app.get('/ready', async (_req, reply) => {
    const r = source.readiness();
    return reply
      .code(r.ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(r);
  });
  app.get('/status', async (_req, reply) =>
    reply.header('cache-control', 'no-store').send(source.status()),
  );
  app.get('/config_dump', async (req, reply) => {
    const dump = source.configDump();
    if (!dump)
      return sendProblem(
        reply,
        new ControlPlaneError('MG_ERR_CP_NOT_READY', 'no config has been loaded'),
        req.url,
      );
    return dump;
  });
  app.get<{ Params: { id: string } }>('/proxies/:id/view', async (req, reply) => {
    const view = source.proxyView(req.params.id);
    if (!view)
      return sendProblem(
        reply,
        new ControlPlaneError('MG_ERR_CP_NOT_FOUND', `no connected proxy ${req.params.id}`),
        req.url,
      );
    return view;
  });
  app.post('/tokens', async (req, reply) => {
    // A join token is a certificate for the asking: only a caller on this machine gets one.
    if (!isLoopback(req.socket.remoteAddress))
      return sendProblem(
        reply,
        new ControlPlaneError(
          'MG_ERR_CP_FORBIDDEN',
          'join tokens are created only for loopback callers',
        ),
        req.url,
      );
    const body = req.body as Record<string, unknown> | undefined;
    const { namespace, serviceAccount, ttlSeconds } = body ?? {};
    if (
      typeof namespace !== 'string' ||
      typeof serviceAccount !== 'string' ||
      typeof ttlSeconds !== 'number' ||
      !Number.isInteger(ttlSeconds) ||
      ttlSeconds < 1 ||
      ttlSeconds > MAX_TOKEN_TTL_SECONDS
    )
      return sendProblem(
        reply,
        new ControlPlaneError(
          'MG_ERR_CP_BAD_REQUEST',
          `expected {"namespace": string, "serviceAccount": string, "ttlSeconds": 1…${MAX_TOKEN_TTL_SECONDS}}`,
        ),
        req.url,
      );
    const grant = await source.createToken({ namespace, serviceAccount, ttlSeconds });
    return reply.code(201).header('cache-control', 'no-store').send(grant);
  });
  app.get('/metrics', async (_req, reply) =>
    reply.type(METRICS_CONTENT_TYPE).send(await metricsText()),
  );
  return app;
}

/** Listens on host:port (0: any free port) and returns the bound port. */
export async function startControlPlaneAdmin(
  source: ControlPlaneAdminSource,
  host: string,
  port: number,
): Promise<{ app: FastifyInstance; port: number }> {
  const app = buildControlPlaneAdmin(source);
  await app.listen({ host, port });
  const addr = app.server.address();
  return { app, port: typeof addr === 'object' && addr ? addr.port : port };
}
