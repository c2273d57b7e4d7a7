// The proxies' side of the discovery protocol (protocol.ts), for sidecars, gateways and tests.
//
//   const client = new DiscoveryClient({
//     controlPlaneUrl: 'https://127.0.0.1:15010',  // the discovery port
//     rootCaPem,                                   // the mesh root to pin (GET /v1/root, or a file)
//     tokenFile,                                   // the join token, read for the first certificate
//     hello,                                       // ProxyHello without currentVersion
//     apply: async (view) => { … },                // throw, or return {ok: false, error}: NACK
//     logger,                                      // optional, pino-like
//     timers,                                      // optional {now, setTimeout, clearTimeout}
//     // also optional: random, trustDomain (default: the root's), reconnectBackoff, renewalBackoff
//   });
//   const credentials = await client.start();      // the first certificate (retried until it
//                                                  // comes; rejects only if stop() comes first)
//   const view = await client.firstView;           // resolves when the first view is applied
//   client.credentials                             // current key + chain (WorkloadCredentials)
//   client.on('rotated', (current, previous) => …) // a renewed certificate (half-life)
//   client.currentView                             // the last view apply() accepted
//   client.connected                               // whether the stream is open now
//   await client.stop();                           // idempotent
//
// Events: 'rotated', 'view' (applied), 'nack' (version, error), 'connected', 'disconnected'
// (reason, retryInMs), 'heartbeat' (one was accepted).
//
// What it does: the first certificate with the join token (Authorization: Bearer), renewals at
// half-life with the current certificate as TLS client certificate (WorkloadCertificateRenewer;
// the token again if the control plane refuses the certificate); the stream (POST /v1/stream,
// NDJSON), reopened with exponential backoff and jitter whenever it ends, after a goaway's
// retryAfterMs, or when no message came for three ping intervals; each view passed to apply()
// one at a time (a newer view supersedes one not yet applied) and acknowledged (POST /v1/ack);
// heartbeats every HEARTBEAT_INTERVAL_MS while the stream is open. The last applied view stays
// in place while the control plane is away, and its version goes in the next hello
// (currentVersion), so an unchanged view is not sent again after a reconnect, with its sidecar
// endpoints (knownMeshEndpoints), which a restarted control plane keeps while they come back.

import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import pino, { type Logger } from 'pino';
import type { Agent } from 'undici';
import * as undici from '../proxy/undici-core.ts';
import type { CertificateGrant } from '../identity/mesh-ca.ts';
import { secureContextOptions, uriSubjectAltNames } from '../identity/peer-verification.ts';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId } from '../identity/spiffe.ts';
import {
  realTimers,
  WorkloadCertificateRenewer,
  type RenewalBackoff,
  type RenewalTimers,
  type WorkloadCredentials,
} from '../identity/workload-identity.ts';
import {
  HEARTBEAT_INTERVAL_MS,
  PING_INTERVAL_MS,
  type ProxyAck,
  type ProxyHello,
  type ProxyView,
  type ServerMessage,
} from './protocol.ts';

/** The clock and timers of the client (reconnects, heartbeats, the ping watchdog, renewals). */
export type DiscoveryTimers = RenewalTimers;

export type ApplyResult = { ok: true } | { ok: false; error: string };

export type DiscoveryLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface DiscoveryClientOptions {
  /** The control plane's discovery URL, e.g. https://127.0.0.1:15010. */
  controlPlaneUrl: string;
  /** The mesh root: the control plane's certificate must chain to it. */
  rootCaPem: string;
  /** A file holding the join token (read at each bootstrap, so it may be replaced). */
  tokenFile: string;
  hello: Omit<ProxyHello, 'currentVersion' | 'knownMeshEndpoints'>;
  /** Installs a view; resolve (or return {ok: true}) to ACK it, throw or return {ok: false} to NACK. */
  apply: (view: ProxyView) => ApplyResult | void | Promise<ApplyResult | void>;
  logger?: DiscoveryLogger;
  timers?: DiscoveryTimers;
  /** Random numbers in [0, 1) for jitter. */
  random?: () => number;
  /** Default: the trust domain in the root's URI SAN, else cluster.local. */
  trustDomain?: string;
  /** Reconnect delays: 500 ms doubling to 30 s, up to half taken off at random. */
  reconnectBackoff?: RenewalBackoff;
  /** Retries of a failed certificate request (WorkloadCertificateRenewer's defaults). */
  renewalBackoff?: RenewalBackoff;
}

interface DiscoveryClientEvents {
  rotated: [current: WorkloadCredentials, previous: WorkloadCredentials];
  view: [view: ProxyView];
  nack: [version: string, error: string];
  connected: [];
  disconnected: [reason: string, retryInMs: number];
  heartbeat: [];
}

/** The control plane answered with an error status (its problem+json detail in the message). */
export class DiscoveryHttpError extends Error {
  override name = 'DiscoveryHttpError';
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    detail: string,
  ) {
    super(`${status}${code ? ` ${code}` : ''}: ${detail}`);
  }
}

/** No message (view or ping) for this long means the stream is dead even if its socket is not. */
const WATCHDOG_MS = 3 * PING_INTERVAL_MS;
const REQUEST_TIMEOUT_MS = 15_000;
const MAX_LINE_BYTES = 64 * 1024 * 1024;

/** The trust domain a root names in its URI SAN (SPIFFE: spiffe://<td>), if it names one. */
export function trustDomainOfRoot(rootPem: string): string | undefined {
  try {
    for (const uri of uriSubjectAltNames(new X509Certificate(rootPem).subjectAltName))
      return parseSpiffeId(uri).trustDomain;
  } catch {
    return undefined;
  }
  return undefined;
}

export class DiscoveryClient extends EventEmitter<DiscoveryClientEvents> {
  /** Resolves with the first view apply() accepted. */
  readonly firstView: Promise<ProxyView>;
  private readonly options: DiscoveryClientOptions;
  private readonly log: DiscoveryLogger;
  private readonly timers: DiscoveryTimers;
  private readonly random: () => number;
  private readonly backoff: Required<RenewalBackoff>;
  private readonly base: URL;
  private readonly renewer: WorkloadCertificateRenewer;
  /** No client certificate: for the first certificate request, with the join token. */
  private readonly bootstrapAgent: Agent;
  /** mTLS with the current credentials; replaced on rotation. */
  private agent: { agent: Agent; credentials: WorkloadCredentials } | undefined;
  private readonly retiredAgents = new Set<Agent>();
  private view: ProxyView | undefined;
  private pending: ProxyView | undefined;
  private applying = false;
  private resolveFirstView: ((view: ProxyView) => void) | undefined;
  private stream: { abort: AbortController; generation: number } | undefined;
  private streamDone: Promise<void> | undefined;
  private generation = 0;
  private attempts = 0;
  private reconnectTimer: { handle: unknown } | undefined;
  private heartbeatTimer: { handle: unknown } | undefined;
  private watchdogTimer: { handle: unknown } | undefined;
  private streamOpen = false;
  private started = false;
  private stopped = false;
  private stopping: Promise<void> | undefined;

  constructor(options: DiscoveryClientOptions) {
    super();
    this.options = options;
    this.log = options.logger ?? pino({ enabled: false });
    this.timers = options.timers ?? realTimers;
    this.random = options.random ?? Math.random;
    this.backoff = {
      initialMs: options.reconnectBackoff?.initialMs ?? 500,
      maxMs: options.reconnectBackoff?.maxMs ?? 30_000,
      factor: options.reconnectBackoff?.factor ?? 2,
      jitter: options.reconnectBackoff?.jitter ?? 0.5,
    };
    this.base = new URL(options.controlPlaneUrl);
    if (this.base.protocol !== 'https:')
      throw new RangeError(`controlPlaneUrl ${options.controlPlaneUrl}: expected https://`);
    this.firstView = new Promise((resolve) => (this.resolveFirstView = resolve));
    this.bootstrapAgent = new undici.Agent({ connect: { ca: options.rootCaPem } });
    const trustDomain =
      options.trustDomain ?? trustDomainOfRoot(options.rootCaPem) ?? DEFAULT_TRUST_DOMAIN;
    this.renewer = new WorkloadCertificateRenewer({
      identity: {
        namespace: options.hello.namespace,
        serviceAccount: options.hello.serviceAccount,
        trustDomain,
      },
      requestCertificate: (csr) => this.requestCertificate(csr),
      timers: this.timers,
      random: this.random,
      ...(options.renewalBackoff ? { backoff: options.renewalBackoff } : {}),
    });
    this.renewer.on('rotated', (current, previous) => {
      this.retireAgent();
      this.log.info(
        { spiffeId: current.spiffeId, notAfter: current.notAfter.toISOString() },
        'workload certificate renewed',
      );
      this.emit('rotated', current, previous);
    });
    this.renewer.on('renewalFailed', (err, failure) =>
      this.log.warn(
        { err: err.message, attempt: failure.attempt, retryInMs: failure.retryInMs },
        'certificate request failed; retrying',
      ),
    );
  }

  /** The current key and certificate chain, for the proxy's own mTLS listeners and clients. */
  get credentials(): WorkloadCredentials | undefined {
    return this.renewer.current;
  }

  /** The last view apply() accepted; kept while the control plane is away. */
  get currentView(): ProxyView | undefined {
    return this.view;
  }

  /** Whether the stream is open now. */
  get connected(): boolean {
    return this.streamOpen;
  }

  /**
   * Gets the first certificate (retrying with backoff while the control plane is unreachable or
   * refuses the token), then opens the stream in the background. Resolves with the credentials.
   */
  async start(): Promise<WorkloadCredentials> {
    if (this.started) throw new Error('DiscoveryClient.start() was called twice');
    this.started = true;
    const credentials = await this.renewer.start();
    if (!this.stopped) this.openStream();
    return credentials;
  }

  /** Closes the stream, cancels every timer and renewal, and closes the connections. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.stopped = true;
    this.renewer.stop();
    for (const t of [this.reconnectTimer, this.heartbeatTimer, this.watchdogTimer])
      if (t) this.timers.clearTimeout(t.handle);
    this.reconnectTimer = this.heartbeatTimer = this.watchdogTimer = undefined;
    this.stream?.abort.abort();
    await this.streamDone;
    await Promise.all([
      this.bootstrapAgent.destroy(),
      this.agent?.agent.destroy(),
      ...[...this.retiredAgents].map((a) => a.destroy()),
    ]);
    this.agent = undefined;
    this.retiredAgents.clear();
  }

  // --- HTTP ---

  private url(path: string): URL {
    return new URL(`${this.base.pathname.replace(/\/+$/, '')}${path}`, this.base);
  }

  private mtlsAgent(): Agent {
    const credentials = this.renewer.current;
    if (!credentials) throw new Error('no workload certificate yet');
    if (this.agent?.credentials !== credentials) {
      this.retireAgent();
      const tls = secureContextOptions(credentials);
      this.agent = {
        credentials,
        agent: new undici.Agent({ connect: { ...tls, ca: this.options.rootCaPem } }),
      };
    }
    return this.agent.agent;
  }

  /** Connections made with the old certificate finish what they carry (the stream), then close. */
  private retireAgent(): void {
    const old = this.agent?.agent;
    this.agent = undefined;
    if (!old) return;
    this.retiredAgents.add(old);
    void old
      .close()
      .catch(() => undefined)
      .finally(() => this.retiredAgents.delete(old));
  }

  private async post(
    path: string,
    body: unknown,
    agent: Agent,
    headers: Record<string, string> = {},
  ): Promise<unknown> {
    const res = await undici.request(this.url(path), {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify(body),
      headersTimeout: REQUEST_TIMEOUT_MS,
      bodyTimeout: REQUEST_TIMEOUT_MS,
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw httpError(res.statusCode, text);
    return text ? (JSON.parse(text) as unknown) : undefined;
  }

  private async requestCertificate(csrPem: string): Promise<CertificateGrant> {
    const current = this.renewer.current;
    if (current && current.notAfter.getTime() > this.timers.now()) {
      try {
        return (await this.post(
          '/v1/certificates',
          { csr: csrPem },
          this.mtlsAgent(),
        )) as CertificateGrant;
      } catch (err) {
        // The control plane no longer accepts our certificate (a new root?): the token may still do.
        if (!(err instanceof DiscoveryHttpError && err.status === 401)) throw err;
        this.log.warn(
          { err: err.message },
          'renewal with the current certificate refused; using the join token',
        );
      }
    }
    const token = (await readFile(this.options.tokenFile, 'utf8')).trim();
    return (await this.post('/v1/certificates', { csr: csrPem }, this.bootstrapAgent, {
      authorization: `Bearer ${token}`,
    })) as CertificateGrant;
  }

  // --- the stream ---

  private openStream(): void {
    if (this.stopped || this.stream) return;
    const generation = ++this.generation;
    const abort = new AbortController();
    this.stream = { abort, generation };
    this.streamDone = this.runStream(abort, generation);
  }

  private async runStream(abort: AbortController, generation: number): Promise<void> {
    let reason = 'the stream ended';
    let retryAfterMs: number | undefined;
    try {
      const hello: ProxyHello = {
        ...this.options.hello,
        // A control plane that just restarted keeps these peers in our view until they are back.
        ...(this.view
          ? { currentVersion: this.view.version, knownMeshEndpoints: this.view.meshEndpoints }
          : {}),
      };
      const res = await undici.request(this.url('/v1/stream'), {
        method: 'POST',
        dispatcher: this.mtlsAgent(),
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify(hello),
        signal: abort.signal,
        headersTimeout: REQUEST_TIMEOUT_MS,
        // The watchdog decides when a quiet stream is dead (it runs on the injectable clock).
        bodyTimeout: 0,
      });
      if (res.statusCode !== 200) {
        const err = httpError(res.statusCode, await res.body.text());
        // Our certificate is not accepted: a fresh one (from the token, if need be) may be.
        if (err.status === 401) void this.renewer.renewNow();
        throw err;
      }
      this.attempts = 0;
      this.streamOpen = true;
      this.log.info({ url: this.base.origin }, 'discovery stream open');
      this.emit('connected');
      this.armWatchdog(generation);
      this.scheduleHeartbeat(generation);
      const decoder = new StringDecoder('utf8');
      let buffered = '';
      read: for await (const chunk of res.body) {
        buffered += decoder.write(chunk as Buffer);
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          const goaway = this.handleLine(line, generation);
          if (goaway) {
            reason = `goaway: ${goaway.reason}`;
            retryAfterMs = goaway.retryAfterMs;
            break read;
          }
        }
        if (buffered.length > MAX_LINE_BYTES) throw new Error('a stream line is too long');
      }
    } catch (err) {
      if (!abort.signal.aborted) reason = (err as Error).message;
      else if (typeof abort.signal.reason === 'string') reason = abort.signal.reason;
    } finally {
      abort.abort();
      this.stream = undefined;
      this.streamOpen = false;
      for (const t of [this.heartbeatTimer, this.watchdogTimer])
        if (t) this.timers.clearTimeout(t.handle);
      this.heartbeatTimer = this.watchdogTimer = undefined;
      if (!this.stopped) this.scheduleReconnect(reason, retryAfterMs);
    }
  }

  private scheduleReconnect(reason: string, retryAfterMs: number | undefined): void {
    let delay: number;
    if (retryAfterMs !== undefined) {
      // The control plane asked for this; spread the herd over the next half of it.
      this.attempts = 0;
      delay = Math.round(retryAfterMs * (1 + this.backoff.jitter * this.random()));
    } else {
      this.attempts += 1;
      const base = Math.min(
        this.backoff.maxMs,
        this.backoff.initialMs * this.backoff.factor ** (this.attempts - 1),
      );
      delay = Math.round(base * (1 - this.backoff.jitter * this.random()));
    }
    this.log.warn(
      { reason, retryInMs: delay, attempt: this.attempts, version: this.view?.version },
      'discovery stream closed; keeping the last good view and reconnecting',
    );
    this.emit('disconnected', reason, delay);
    const timer = {
      handle: this.timers.setTimeout(() => {
        if (this.reconnectTimer === timer) this.reconnectTimer = undefined;
        this.openStream();
      }, delay),
    };
    this.reconnectTimer = timer;
  }

  private armWatchdog(generation: number): void {
    if (this.watchdogTimer) this.timers.clearTimeout(this.watchdogTimer.handle);
    const timer = {
      handle: this.timers.setTimeout(() => {
        if (this.watchdogTimer === timer) this.watchdogTimer = undefined;
        if (this.stream?.generation === generation)
          this.stream.abort.abort(`no message from the control plane in ${WATCHDOG_MS} ms`);
      }, WATCHDOG_MS),
    };
    this.watchdogTimer = timer;
  }

  private scheduleHeartbeat(generation: number): void {
    const timer = {
      handle: this.timers.setTimeout(() => {
        if (this.heartbeatTimer === timer) this.heartbeatTimer = undefined;
        void this.heartbeat(generation);
      }, HEARTBEAT_INTERVAL_MS),
    };
    this.heartbeatTimer = timer;
  }

  private async heartbeat(generation: number): Promise<void> {
    if (this.stream?.generation !== generation) return;
    try {
      await this.post('/v1/heartbeat', { proxyId: this.options.hello.proxyId }, this.mtlsAgent());
      this.emit('heartbeat');
    } catch (err) {
      if (err instanceof DiscoveryHttpError && err.status === 404) {
        // The control plane does not know this proxy (it restarted, or dropped us): reconnect.
        this.stream?.abort.abort(`heartbeat refused: ${err.message}`);
        return;
      }
      this.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    }
    if (this.stream?.generation === generation && !this.stopped) this.scheduleHeartbeat(generation);
  }

  /** Handles one NDJSON line; returns the goaway when the control plane sends one. */
  private handleLine(
    line: string,
    generation: number,
  ): Extract<ServerMessage, { type: 'goaway' }> | undefined {
    if (line.trim() === '') return undefined;
    this.armWatchdog(generation);
    let message: ServerMessage;
    try {
      message = JSON.parse(line) as ServerMessage;
    } catch {
      this.log.warn({ line: line.slice(0, 200) }, 'discovery stream: a line that is not JSON');
      return undefined;
    }
    switch (message.type) {
      case 'view':
        this.pending = message.view;
        if (!this.applying) void this.applyPending();
        return undefined;
      case 'goaway':
        return message;
      case 'ping':
        return undefined;
      default:
        this.log.debug({ type: (message as { type?: unknown }).type }, 'unknown message ignored');
        return undefined;
    }
  }

  // --- views ---

  private async applyPending(): Promise<void> {
    this.applying = true;
    try {
      while (this.pending && !this.stopped) {
        const view = this.pending;
        this.pending = undefined;
        if (this.view?.version === view.version) {
          void this.ack({ proxyId: this.options.hello.proxyId, version: view.version, ok: true });
          continue;
        }
        let result: ApplyResult;
        try {
          result = (await this.options.apply(view)) ?? { ok: true };
        } catch (err) {
          result = { ok: false, error: err instanceof Error ? err.message : String(err) };
        }
        if (this.stopped) return;
        if (result.ok) {
          this.view = view;
          this.log.info({ version: view.version, snapshot: view.snapshotVersion }, 'view applied');
          this.resolveFirstView?.(view);
          this.resolveFirstView = undefined;
          this.emit('view', view);
        } else {
          this.log.warn(
            { version: view.version, error: result.error, serving: this.view?.version },
            'view refused (NACK); the previous one stays',
          );
          this.emit('nack', view.version, result.error);
        }
        void this.ack({
          proxyId: this.options.hello.proxyId,
          version: view.version,
          ok: result.ok,
          ...(result.ok ? {} : { error: result.error }),
        });
      }
    } finally {
      this.applying = false;
    }
  }

  private async ack(ack: ProxyAck): Promise<void> {
    try {
      await this.post('/v1/ack', ack, this.mtlsAgent());
    } catch (err) {
      // The next hello says which version we serve; the control plane learns it then.
      this.log.warn({ err: (err as Error).message, version: ack.version }, 'ack not delivered');
    }
  }
}

function httpError(status: number, text: string): DiscoveryHttpError {
  try {
    const problem = JSON.parse(text) as { code?: string; detail?: string; title?: string };
    return new DiscoveryHttpError(status, problem.code, problem.detail ?? problem.title ?? text);
  } catch {
    return new DiscoveryHttpError(status, undefined, text.slice(0, 500) || 'no body');
  }
}
