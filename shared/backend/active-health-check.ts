// Active health checking (Envoy's HTTP and TCP health checkers, as Envoy Gateway's
// `healthCheck.active` configures them) against every endpoint of one backend.
//
// - Each endpoint is checked every `interval` after its previous check ended; the first check
//   starts after a random delay in [0, initialJitter).
// - HTTP: a request (method default GET, Host the configured hostname, else the route's) on a
//   dispatcher the checker opens per endpoint through the factory it is given (an undici Pool,
//   so checks do not queue behind traffic) and closes when stopped. A status in expectedStatuses
//   (default 200) passes; one in retriableStatuses counts as a failure towards the threshold;
//   any other marks the endpoint unhealthy at once (Envoy: "this threshold is ignored"). With an
//   expected response, the first 1024 body bytes must contain it.
// - TCP: a connection (and, with `send`, a payload whose answer must contain `receive`).
// - Timeouts and connection failures count towards unhealthyThreshold; passes towards
//   healthyThreshold. The first check's result applies at once, either way (Envoy's first_check).
// - Endpoints start healthy, so a new view does not refuse traffic while its first checks run
//   (Envoy holds a new cluster back until they are done instead); state carries over reloads.

import { connect as netConnect, type Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import type { TimerHandle, Timers } from './clock.ts';
import type { Endpoint } from './endpoint-set.ts';

export interface ActiveHealthCheckConfig {
  type: 'HTTP' | 'TCP';
  intervalMs: number;
  timeoutMs: number;
  initialJitterMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** Check this port instead of the endpoint's (overrides.port). */
  port?: number;
  http?: {
    path: string;
    method: string;
    /** Host header; undefined: the endpoint's address. */
    host?: string;
    expectedStatuses: readonly number[];
    retriableStatuses: readonly number[];
    /** Must occur in the first 1024 bytes of the body. */
    expectedBody?: Buffer;
  };
  tcp?: { send?: Buffer; receive?: Buffer };
}

/** What a check needs of a dispatcher: undici's Pool has it. */
export type HealthCheckDispatcher = Pick<Dispatcher, 'request' | 'close'>;

export interface HealthCheckDeps {
  timers: Timers;
  random: () => number;
  /** Opens the dispatcher for one endpoint's HTTP checks (the checker closes it when stopped). */
  openDispatcher(origin: string): HealthCheckDispatcher;
  /** Opens a TCP connection (TCP checks); node:net by default. */
  connect?(host: string, port: number): Socket;
}

export type CheckOutcome = 'pass' | 'fail' | 'fail-now';

interface Session {
  healthy: boolean;
  first: boolean;
  passes: number;
  failures: number;
  /** The next check. */
  timer: TimerHandle | undefined;
  /** The running check's deadline, and how to cancel the check. */
  timeout: TimerHandle | undefined;
  abort: (() => void) | undefined;
  dispatcher: HealthCheckDispatcher | undefined;
}

const BODY_LIMIT = 1024;

export class ActiveHealthChecker {
  private readonly sessions: Session[];
  private running = false;

  constructor(
    readonly config: ActiveHealthCheckConfig,
    private readonly endpoints: readonly Endpoint[],
    private readonly deps: HealthCheckDeps,
    /** Called when an endpoint changes state, and with `passed` after every passing check. */
    private readonly listener: {
      onChange(index: number, healthy: boolean): void;
      onPass?(index: number): void;
    },
  ) {
    this.sessions = endpoints.map(() => ({
      healthy: true,
      first: true,
      passes: 0,
      failures: 0,
      timer: undefined,
      timeout: undefined,
      abort: undefined,
      dispatcher: undefined,
    }));
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Timers and checks in progress (0 once stopped). */
  get pendingWork(): number {
    let n = 0;
    for (const s of this.sessions) n += (s.timer ? 1 : 0) + (s.timeout ? 1 : 0);
    return n;
  }

  healthy(i: number): boolean {
    return this.sessions[i]?.healthy ?? false;
  }

  /** Takes over the state of endpoints that a previous checker also checked (reload). */
  carryFrom(previous: ActiveHealthChecker): void {
    const byOrigin = new Map(previous.endpoints.map((e, i) => [e.origin, i]));
    this.endpoints.forEach((e, i) => {
      const j = byOrigin.get(e.origin);
      const from = j === undefined ? undefined : previous.sessions[j];
      const s = this.sessions[i] as Session;
      if (!from) return;
      s.healthy = from.healthy;
      s.first = from.first;
      s.passes = from.passes;
      s.failures = from.failures;
      if (!s.healthy) this.listener.onChange(i, false);
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.sessions.forEach((s, i) => {
      const delay =
        this.config.initialJitterMs > 0
          ? Math.floor(this.deps.random() * this.config.initialJitterMs)
          : 0;
      s.timer = this.deps.timers.setTimeout(() => this.check(i), delay);
    });
  }

  /** Stops every timer and check in progress and closes the dispatchers it opened. */
  stop(): Promise<void> {
    this.running = false;
    const closing: Promise<void>[] = [];
    for (const s of this.sessions) {
      if (s.timer) this.deps.timers.clearTimeout(s.timer);
      if (s.timeout) this.deps.timers.clearTimeout(s.timeout);
      s.timer = undefined;
      s.timeout = undefined;
      const abort = s.abort;
      s.abort = undefined;
      abort?.();
      if (s.dispatcher) closing.push(s.dispatcher.close().catch(() => undefined));
      s.dispatcher = undefined;
    }
    return Promise.all(closing).then(() => undefined);
  }

  /** Applies one check's outcome to an endpoint (exposed for tests of the threshold rules). */
  record(i: number, outcome: CheckOutcome): void {
    const s = this.sessions[i];
    if (!s) return;
    const c = this.config;
    if (outcome === 'pass') {
      s.failures = 0;
      if (!s.healthy && (s.first || ++s.passes >= c.healthyThreshold)) {
        s.healthy = true;
        s.passes = 0;
        this.listener.onChange(i, true);
      }
      this.listener.onPass?.(i);
    } else {
      s.passes = 0;
      if (
        s.healthy &&
        (outcome === 'fail-now' || s.first || ++s.failures >= c.unhealthyThreshold)
      ) {
        s.healthy = false;
        s.failures = 0;
        this.listener.onChange(i, false);
      }
    }
    s.first = false;
  }

  private check(i: number): void {
    const s = this.sessions[i] as Session;
    s.timer = undefined;
    if (!this.running) return;
    let settled = false;
    const done = (outcome: CheckOutcome) => {
      if (settled) return;
      settled = true;
      if (s.timeout) this.deps.timers.clearTimeout(s.timeout);
      s.timeout = undefined;
      s.abort = undefined;
      if (!this.running) return;
      this.record(i, outcome);
      s.timer = this.deps.timers.setTimeout(() => this.check(i), this.config.intervalMs);
    };
    s.timeout = this.deps.timers.setTimeout(() => {
      s.abort?.();
      done('fail');
    }, this.config.timeoutMs);
    s.abort = this.config.type === 'HTTP' ? this.checkHttp(i, s, done) : this.checkTcp(i, done);
  }

  private checkHttp(i: number, s: Session, done: (o: CheckOutcome) => void): () => void {
    const http = this.config.http as NonNullable<ActiveHealthCheckConfig['http']>;
    const e = this.endpoints[i] as Endpoint;
    const origin = this.config.port === undefined ? e.origin : originWithPort(e, this.config.port);
    s.dispatcher ??= this.deps.openDispatcher(origin);
    const controller = new AbortController();
    s.dispatcher
      .request({
        origin,
        path: http.path,
        method: http.method as Dispatcher.HttpMethod,
        headers: {
          host: http.host ?? new URL(origin).host,
          'user-agent': 'meshgate-health-check',
        },
        signal: controller.signal,
        headersTimeout: 0,
        bodyTimeout: 0,
      })
      .then(async (res) => {
        const status = res.statusCode;
        let body: Buffer | undefined;
        if (http.expectedBody) body = await readPrefix(res.body, BODY_LIMIT);
        else res.body.dump().catch(() => undefined);
        if (http.expectedStatuses.includes(status)) {
          if (http.expectedBody && !(body as Buffer).includes(http.expectedBody)) done('fail-now');
          else done('pass');
        } else done(http.retriableStatuses.includes(status) ? 'fail' : 'fail-now');
      })
      .catch(() => done('fail'));
    return () => controller.abort();
  }

  private checkTcp(i: number, done: (o: CheckOutcome) => void): () => void {
    const e = this.endpoints[i] as Endpoint;
    const tcp = this.config.tcp ?? {};
    const port = this.config.port ?? e.port;
    const socket = this.deps.connect
      ? this.deps.connect(e.address, port)
      : netConnect({ host: e.address, port });
    let received = Buffer.alloc(0);
    const finish = (outcome: CheckOutcome) => {
      socket.destroy();
      done(outcome);
    };
    socket.once('connect', () => {
      if (tcp.send) socket.write(tcp.send);
      if (!tcp.receive) finish('pass');
    });
    socket.on('data', (chunk: Buffer) => {
      if (!tcp.receive) return;
      received = Buffer.concat([received, chunk]).subarray(-BODY_LIMIT);
      if (received.includes(tcp.receive)) finish('pass');
    });
    socket.once('error', () => finish('fail'));
    socket.once('close', () => finish('fail'));
    return () => socket.destroy();
  }
}

function originWithPort(e: Endpoint, port: number): string {
  return `http://${e.address.includes(':') ? `[${e.address}]` : e.address}:${port}`;
}

async function readPrefix(body: AsyncIterable<Buffer> & { destroy(): unknown }, limit: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= limit) break;
  }
  body.destroy();
  return Buffer.concat(chunks).subarray(0, limit);
}
