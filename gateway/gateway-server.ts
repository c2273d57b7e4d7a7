// The edge gateway in one process: binds a server per listener port, swaps views atomically on
// every snapshot, and runs each request down the edge stack. A worker of the supervisor runs
// one of these; tests run it in-process.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  constants as http2Constants,
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Snapshot } from '../shared/config/snapshot.ts';
import { PROXY_ERRORS, ProxyError } from '../shared/proxy/errors.ts';
import type { ClientResponse } from '../shared/proxy/forward.ts';
import { readClientHeaders, requestIdFor } from '../shared/proxy/headers.ts';
import { sendProblem, toProxyError } from '../shared/proxy/problem.ts';
import { upgradeResponse } from '../shared/proxy/upgrade.ts';
import {
  DEFAULT_UPSTREAM_POOL_OPTIONS,
  UpstreamPools,
  type UpstreamPoolOptions,
} from '../shared/proxy/upstream-pools.ts';
import { logRequest } from './access-log.ts';
import { connectionLimitPerWorker, type ClientTrafficSettings } from './client-traffic.ts';
import { connectionsOf, type PortConnections } from './gateway-metrics.ts';
import { JwksCache } from './auth/jwks-cache.ts';
import type { JwtPrincipal } from './auth/jwt-authenticator.ts';
import type { AuthRuntime } from './auth/security-policy.ts';
import { TokenCache } from './auth/token-cache.ts';
import { EdgeView } from './edge-view.ts';
import { edgeStack, runStack, type Layer } from './edge-stack.ts';
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from './layers/enforce-request-limits.ts';
import type { ForwardDeps } from './layers/forward-to-backend.ts';
import { RateLimitRuntime, type RateLimitSettings } from './ratelimit/runtime.ts';
import { proxyUpgrade, upgradeStack } from './upgrade.ts';
import { EdgeRequest, type ClientRequest } from './request-context.ts';

export interface ClientTimeouts {
  /** Time for a client to send the request headers (slowloris guard). */
  headersMs: number;
  /** Time for a client to send the whole request. */
  requestMs: number;
  /** Idle keep-alive connections are closed after this long. */
  keepAliveMs: number;
}

export const DEFAULT_CLIENT_TIMEOUTS: ClientTimeouts = {
  headersMs: 10_000,
  requestMs: 300_000,
  keepAliveMs: 60_000,
};

/**
 * How often Node checks the header and request timeouts of HTTP/1 connections (its default is
 * 30 s): a timeout fires up to this much late.
 */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

export interface GatewayServerOptions {
  listenHost: string;
  portOffset: number;
  /** "namespace/name" of the Gateways to serve; all of meshgate's when absent. */
  gateways?: readonly string[];
  logger: Logger;
  limits?: RequestLimits;
  /** Request header bytes accepted (Node's parser answers 431 beyond). */
  maxHeaderBytes?: number;
  timeouts?: ClientTimeouts;
  pools?: UpstreamPoolOptions;
  random?: () => number;
  /** Monotonic ms, for durations. */
  now?: () => number;
  /** ms since epoch, for token expiry and rate-limit windows. */
  wallClock?: () => number;
  /** Rate-limit holders (a worker's IPC channel) or in-process settings (Redis URL, failure mode). */
  rateLimit?: RateLimitSettings;
  /**
   * Processes serving the same listener ports (the supervisor's workers): a ClientTrafficPolicy
   * connection limit is split among them (client-traffic.ts). Default 1.
   */
  workers?: number;
}

export interface BoundPort {
  port: number;
  boundPort: number;
  address: string;
  protocol: 'HTTP' | 'HTTPS';
}

export interface ApplyResult {
  version: string;
  ports: BoundPort[];
  problems: string[];
}

type AnyServer = Server | Http2SecureServer;

interface PortServer {
  protocol: 'HTTP' | 'HTTPS';
  server: AnyServer;
  bound: BoundPort;
  sessions: Set<Http2Session>;
  /** The port's ClientTrafficPolicy settings, replaced on every snapshot (configure()). */
  settings: ClientTrafficSettings;
  /** Connections this server admits at once (its share of the policy's limit); 0: any number. */
  limit: number;
  /** Connections open on this server. */
  active: number;
  /** Refused connections held for the policy's closeDelay before they are closed. */
  held: Set<Socket>;
  /** The server's header timeout without a policy (Node's own for HTTPS, which had it so far). */
  headersMs: number;
  connections: PortConnections;
}

/** The timeout fields Node reads from an HTTP/1 server (also on an HTTP/2 server that allows HTTP/1). */
interface Http1Timeouts {
  requestTimeout: number;
  headersTimeout: number;
  keepAliveTimeout: number;
  maxRequestsPerSocket: number | null;
  connectionsCheckingInterval: number;
}

export class GatewayServer {
  private view: EdgeView | undefined;
  private readonly servers = new Map<number, PortServer>();
  private readonly pools: UpstreamPools;
  private readonly layers: Layer[];
  private readonly upgradeLayers: Layer[];
  private readonly forwardDeps: ForwardDeps;
  private readonly now: () => number;
  private readonly auth: AuthRuntime;
  private readonly rateLimits: RateLimitRuntime;
  private inflight = 0;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: GatewayServerOptions) {
    this.pools = new UpstreamPools(options.pools ?? DEFAULT_UPSTREAM_POOL_OPTIONS);
    this.now = options.now ?? (() => performance.now());
    const wallClock = options.wallClock ?? (() => Date.now());
    this.auth = {
      wallClock,
      logger: options.logger,
      tokens: new TokenCache<JwtPrincipal>(10_000, wallClock),
      jwks: new JwksCache({
        now: wallClock,
        cooldownMs: 30_000,
        fetchTimeoutMs: 5_000,
        onError: (uri, err) =>
          options.logger.warn(
            { uri, err: err.message },
            'JWKS fetch failed; serving the keys already known',
          ),
      }),
    };
    this.rateLimits = new RateLimitRuntime(options.rateLimit ?? {}, wallClock, options.logger);
    const deps = {
      pools: this.pools,
      random: options.random ?? Math.random,
      now: this.now,
      limits: options.limits ?? DEFAULT_REQUEST_LIMITS,
    };
    this.layers = edgeStack(deps);
    this.upgradeLayers = upgradeStack(deps);
    this.forwardDeps = deps;
  }

  get currentView(): EdgeView | undefined {
    return this.view;
  }

  get inflightRequests(): number {
    return this.inflight;
  }

  /** Serves a new snapshot: binds new ports, rebinds changed ones, closes dropped ones, swaps the view. */
  async apply(snapshot: Snapshot): Promise<ApplyResult> {
    const view = new EdgeView(
      snapshot,
      {
        auth: this.auth,
        rateLimit: this.rateLimits,
        ...(this.options.gateways ? { gateways: this.options.gateways } : {}),
      },
      this.view,
    );
    const problems = [...view.problems];
    this.view = view;
    for (const [port, s] of this.servers) {
      const next = view.ports.get(port);
      if (!next || next.protocol !== s.protocol) {
        this.servers.delete(port);
        void this.closeServer(s);
      }
    }
    for (const [port, edgePort] of view.ports) {
      const existing = this.servers.get(port);
      if (existing) {
        if (edgePort.tls)
          (existing.server as Http2SecureServer).setSecureContext(edgePort.tls.fallbackOptions);
        this.configure(existing, edgePort.clientTraffic);
        continue;
      }
      try {
        this.servers.set(
          port,
          await this.listen(
            port,
            edgePort.protocol,
            edgePort.tls?.fallbackOptions,
            edgePort.clientTraffic,
          ),
        );
      } catch (err) {
        problems.push(
          `port ${port} (bound as ${port + this.options.portOffset} on ${this.options.listenHost}): ${(err as Error).message}`,
        );
      }
    }
    // Requests in flight keep the previous view; pools for endpoints that left close once idle.
    this.pools.retain(view.endpointSets.origins());
    return {
      version: view.version,
      ports: [...this.servers.values()].map((s) => s.bound),
      problems,
    };
  }

  /** Addresses each served Gateway listens on, for its status.addresses. */
  addresses(): { gateway: string; addresses: { type: 'IPAddress'; value: string }[] }[] {
    return (this.view?.gateways ?? []).map((g) => ({
      gateway: `${g.namespace}/${g.name}`,
      addresses: [{ type: 'IPAddress', value: this.options.listenHost }],
    }));
  }

  private listen(
    port: number,
    protocol: 'HTTP' | 'HTTPS',
    tlsOptions: { cert: string; key: string } | undefined,
    settings: ClientTrafficSettings,
  ): Promise<PortServer> {
    const t = this.options.timeouts ?? DEFAULT_CLIENT_TIMEOUTS;
    const limits = this.options.limits ?? DEFAULT_REQUEST_LIMITS;
    const sessions = new Set<Http2Session>();
    let server: AnyServer;
    let headersMs = t.headersMs;
    if (protocol === 'HTTP') {
      const s = createServer({
        maxHeaderSize: this.options.maxHeaderBytes ?? 65_536,
        headersTimeout: t.headersMs,
        requestTimeout: t.requestMs,
        keepAliveTimeout: t.keepAliveMs,
        connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
        requireHostHeader: true,
        joinDuplicateHeaders: false,
      });
      // One more than the limit, so the limit layer can see a request went over it.
      s.maxHeadersCount = limits.maxHeaders + 1;
      s.on('request', (req, res) => this.handle(port, 'http', req, res));
      s.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.handleUpgrade(port, 'http', req, socket, head),
      );
      server = s;
    } else {
      const s = createSecureServer({
        allowHTTP1: true,
        ...(tlsOptions ?? {}),
        SNICallback: (servername, cb) => cb(null, this.view?.secureContextFor(port, servername)),
        maxHeaderListPairs: limits.maxHeaders + 1,
        settings: { maxHeaderListSize: this.options.maxHeaderBytes ?? 65_536 },
      });
      s.on(
        'request',
        (req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse) =>
          this.handle(port, 'https', req, res as ClientResponse),
      );
      s.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.handleUpgrade(port, 'https', req, socket, head),
      );
      s.on('session', (session: Http2Session) => {
        sessions.add(session);
        session.once('close', () => sessions.delete(session));
        if (this.draining) session.close();
        // connectionLimit.maxRequestsPerConnection: after the last stream allowed, GOAWAY; the
        // streams already open finish. (HTTP/1 connections: the server's maxRequestsPerSocket.)
        let streams = 0;
        session.on('stream', () => {
          const max = ps.settings.maxRequestsPerConnection;
          if (max > 0 && ++streams >= max) session.close();
        });
      });
      const http1 = s as unknown as Http1Timeouts;
      http1.connectionsCheckingInterval = TIMEOUT_CHECK_INTERVAL_MS;
      headersMs = http1.headersTimeout;
      server = s;
    }
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) =>
      rejectMalformed(err, socket),
    );
    const ps: PortServer = {
      protocol,
      server,
      sessions,
      bound: {
        port,
        boundPort: port + this.options.portOffset,
        address: this.options.listenHost,
        protocol,
      },
      settings,
      limit: 0,
      active: 0,
      held: new Set(),
      headersMs,
      connections: connectionsOf(port),
    };
    this.configure(ps, settings);
    this.gateConnections(ps);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port + this.options.portOffset, this.options.listenHost, () => {
        server.removeListener('error', reject);
        const addr = server.address();
        if (typeof addr === 'object' && addr) ps.bound.boundPort = addr.port;
        resolve(ps);
      });
    });
  }

  /**
   * Applies the port's ClientTrafficPolicy to its server: timeouts and requests per connection
   * for every request from now on (HTTP/2 sessions and TLS sockets take the idle timeout when
   * they open), and the connection limit for the next connection.
   */
  private configure(ps: PortServer, settings: ClientTrafficSettings): void {
    const t = this.options.timeouts ?? DEFAULT_CLIENT_TIMEOUTS;
    ps.settings = settings;
    ps.limit = connectionLimitPerWorker(settings.connectionLimit, this.options.workers ?? 1);
    const requestMs = settings.requestReceivedMs ?? t.requestMs;
    const idleMs = settings.idleMs ?? t.keepAliveMs;
    const http1 = ps.server as unknown as Http1Timeouts;
    http1.requestTimeout = requestMs;
    // The header timeout is part of the request timeout (Node refuses one longer than the other).
    http1.headersTimeout = requestMs > 0 ? Math.min(ps.headersMs, requestMs) : ps.headersMs;
    http1.keepAliveTimeout = idleMs;
    http1.maxRequestsPerSocket = settings.maxRequestsPerConnection;
    // HTTP/2 sessions and HTTP/1 sockets over TLS close after this long without traffic.
    if (ps.protocol === 'HTTPS') (ps.server as Http2SecureServer).setTimeout(idleMs);
  }

  /**
   * Counts the connections of a port and refuses those over its connection limit before the
   * HTTP (or TLS) server sees them: the server's own 'connection' listeners run only for the
   * admitted ones. (Node's server.maxConnections cannot be used: in a cluster worker, a
   * connection it refuses goes back to the primary, which hands it to the next worker, and
   * round and round while every worker is full.)
   */
  private gateConnections(ps: PortServer): void {
    const server = ps.server;
    const serve = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (ps.limit > 0 && ps.active >= ps.limit) {
        this.refuse(ps, socket);
        return;
      }
      ps.active++;
      ps.connections.active++;
      ps.connections.accepted++;
      socket.once('close', () => {
        ps.active--;
        ps.connections.active--;
      });
      for (const listener of serve) listener.call(server, socket);
    });
  }

  /** A connection over the limit: closed, after the policy's closeDelay (unread meanwhile). */
  private refuse(ps: PortServer, socket: Socket): void {
    ps.connections.refused++;
    const delayMs = ps.settings.closeDelayMs;
    if (delayMs <= 0 || this.draining) {
      socket.destroy();
      return;
    }
    socket.pause();
    socket.on('error', () => {});
    ps.held.add(socket);
    const timer = setTimeout(() => socket.destroy(), delayMs);
    socket.once('close', () => {
      clearTimeout(timer);
      ps.held.delete(socket);
    });
  }

  private handle(
    port: number,
    scheme: 'http' | 'https',
    req: ClientRequest,
    res: ClientResponse,
  ): void {
    const view = this.view;
    const edgePort = view?.ports.get(port);
    const client = readClientHeaders(req.rawHeaders);
    const requestId = requestIdFor(client.requestId);
    if (!view || !edgePort) {
      sendProblem(
        res,
        new ProxyError('MG_ERR_NO_ROUTE', `port ${port} is no longer served`),
        requestId,
      );
      return;
    }
    const c = edgePort.clientTraffic;
    if (
      'shouldKeepAlive' in res &&
      (this.draining || lastOnConnection(req.socket, c.maxRequestsPerConnection))
    )
      res.setHeader('connection', 'close');
    const r = new EdgeRequest(req, res, view, edgePort, scheme, client, requestId, this.now());
    this.track(r);
    if (c.streamIdleMs > 0 || (c.requestReceivedMs ?? 0) > 0) this.armRequestTimers(r, c);
    try {
      const pending = runStack(this.layers, r);
      if (pending) pending.catch((err: unknown) => this.rescue(r, err));
    } catch (err) {
      this.rescue(r, err);
    }
  }

  private handleUpgrade(
    port: number,
    scheme: 'http' | 'https',
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ): void {
    const view = this.view;
    const edgePort = view?.ports.get(port);
    const client = readClientHeaders(req.rawHeaders);
    const requestId = requestIdFor(client.requestId);
    // Errors, redirects and refusals before the upgrade go out as normal responses on the socket.
    const res = upgradeResponse(req, socket);
    if (!view || !edgePort) {
      sendProblem(
        res,
        new ProxyError('MG_ERR_NO_ROUTE', `port ${port} is no longer served`),
        requestId,
      );
      return;
    }
    const r = new EdgeRequest(req, res, view, edgePort, scheme, client, requestId, this.now());
    const finish = this.track(r);
    const run = async () => {
      await runStack(this.upgradeLayers, r);
      if (!r.done)
        await proxyUpgrade(r, this.forwardDeps, { client: socket, head, onClosed: finish });
    };
    run().catch((err: unknown) => this.rescue(r, err));
  }

  /**
   * The per-request timeouts of the port's ClientTrafficPolicy, armed only when it sets them:
   * streamIdleTimeout on the response (the socket of an HTTP/1 request, the stream of an
   * HTTP/2 one: any traffic either way restarts it), and requestReceivedTimeout for an HTTP/2
   * stream with a body (HTTP/1 requests are timed by the server, configure()).
   */
  private armRequestTimers(r: EdgeRequest, c: ClientTrafficSettings): void {
    // A request's response is a ServerResponse or an Http2ServerResponse (ClientResponse is
    // the narrower view the forwarding code takes).
    if (c.streamIdleMs > 0)
      (r.res as ServerResponse | Http2ServerResponse).setTimeout(c.streamIdleMs, () =>
        this.streamIdle(r, c.streamIdleMs),
      );
    const receiveMs = c.requestReceivedMs ?? 0;
    if (receiveMs <= 0 || 'shouldKeepAlive' in r.res) return;
    const stream = (r.req as Http2ServerRequest).stream;
    if (stream.endAfterHeaders) return;
    const timer = setTimeout(() => this.requestNotReceived(r, receiveMs), receiveMs);
    const clear = () => clearTimeout(timer);
    // 'end' once the body is read to its end: sent upstream, or read by a layer that needed it.
    r.req.once('end', clear);
    r.res.once('close', clear);
  }

  /** requestReceivedTimeout of an HTTP/2 stream: 408 unless the response has begun, then reset. */
  private requestNotReceived(r: EdgeRequest, ms: number): void {
    if (r.res.headersSent) return;
    this.endEarly(
      r,
      new ProxyError('MG_ERR_REQUEST_TIMEOUT', `the request was not received within ${ms} ms`),
    );
  }

  /** streamIdleTimeout: 408 if the response has not begun, else the stream (or HTTP/1 socket) is reset. */
  private streamIdle(r: EdgeRequest, ms: number): void {
    if (r.res.headersSent) {
      r.flags = 'SI';
      r.res.destroy();
      return;
    }
    this.endEarly(
      r,
      new ProxyError('MG_ERR_STREAM_IDLE_TIMEOUT', `no traffic on the request for ${ms} ms`),
    );
  }

  /**
   * Answers a request the stack is still working on, and closes what carries it: the HTTP/1
   * connection after the answer, or the HTTP/2 stream (RST_STREAM once the answer is out), so a
   * client still sending stops. The stack's own answer, if it comes, finds the response ended.
   */
  private endEarly(r: EdgeRequest, err: ProxyError): void {
    r.flags = err.definition.flag;
    r.done = true;
    const http1 = 'shouldKeepAlive' in r.res;
    sendProblem(r.res, err, r.requestId, http1 ? { headers: { connection: 'close' } } : {});
    if (!http1) (r.req as Http2ServerRequest).stream.close(http2Constants.NGHTTP2_NO_ERROR);
  }

  /** Counts the request in flight until it ends; returns the function that ends it (logged once). */
  private track(r: EdgeRequest): () => void {
    this.inflight++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.inflight--;
      const status = r.res.statusCode === 101 ? 101 : r.res.headersSent ? r.res.statusCode : 0;
      if (status !== 101 && !r.res.writableFinished && r.flags === '-') r.flags = 'DC';
      const ms = this.now() - r.startedAt;
      (r.rule?.metrics ?? r.port.unrouted).record(status, r.flags, ms / 1000);
      logRequest(this.options.logger, r, status, ms);
      if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    // 'close' follows 'finish' on a completed response and also comes alone on a broken one.
    r.res.once('close', finish);
    return finish;
  }

  private rescue(r: EdgeRequest, err: unknown): void {
    const e = toProxyError(err);
    r.flags = e.definition.flag;
    r.done = true;
    if (e.code === 'MG_ERR_INTERNAL')
      this.options.logger.error({ err, request_id: r.requestId }, 'internal error');
    sendProblem(r.res, e, r.requestId, r.path ? { instance: r.path } : {});
  }

  /**
   * Graceful stop: no new connections, keep-alive connections told to close, in-flight requests
   * given `timeoutMs` to finish; then everything is closed.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const closing = [...this.servers.values()].map((s) => this.closeServer(s));
    if (this.inflight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    for (const s of this.servers.values()) forceClose(s);
    this.servers.clear();
    await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, 100))]);
    // Health checks and policy-owned pools belong to the view.
    await this.view?.close();
    await this.pools.close();
    this.rateLimits.close();
  }

  async close(): Promise<void> {
    await this.drain(0);
  }

  private closeServer(s: PortServer): Promise<void> {
    return new Promise((resolve) => {
      s.server.close(() => resolve());
      if ('closeIdleConnections' in s.server) s.server.closeIdleConnections();
      for (const session of s.sessions) session.close();
      for (const socket of s.held) socket.destroy();
    });
  }
}

const REQUESTS_ON_CONNECTION = Symbol('requestsOnConnection');

/**
 * connectionLimit.maxRequestsPerConnection on HTTP/1: counts the connection's requests and says
 * whether this one is the last. Node's maxRequestsPerSocket (also set, for pipelined requests
 * beyond it: 503) only marks the last answer `Connection: close`; this one also closes the
 * connection after it, as Envoy does.
 */
function lastOnConnection(socket: Socket | null, max: number): boolean {
  if (max <= 0 || !socket) return false;
  const counted = socket as Socket & { [REQUESTS_ON_CONNECTION]?: number };
  const n = (counted[REQUESTS_ON_CONNECTION] ?? 0) + 1;
  counted[REQUESTS_ON_CONNECTION] = n;
  return n >= max;
}

function forceClose(s: PortServer): void {
  if ('closeAllConnections' in s.server) s.server.closeAllConnections();
  for (const session of s.sessions) session.destroy();
  for (const socket of s.held) socket.destroy();
}

/** Malformed HTTP (smuggling attempts, oversized headers): a short answer, then the connection is closed. */
function rejectMalformed(err: Error & { code?: string }, socket: Duplex): void {
  // Node's own handler checks the same: a response already under way cannot take another one.
  const current = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || current?.headersSent) {
    socket.destroy();
    return;
  }
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : timeout ? 408 : 400;
  const reason =
    status === 431
      ? 'Request Header Fields Too Large'
      : status === 408
        ? 'Request Timeout'
        : 'Bad Request';
  // Header or request timeout (requestReceivedTimeout of the port's ClientTrafficPolicy).
  const body = JSON.stringify({
    type: `https://meshgate.io/errors/${timeout ? 'MG_ERR_REQUEST_TIMEOUT' : 'MG_ERR_BAD_REQUEST'}`,
    title: timeout ? PROXY_ERRORS.MG_ERR_REQUEST_TIMEOUT.title : 'Malformed HTTP request',
    status,
    detail: err.code ?? err.message,
    response_flags: 'DPE',
  });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
