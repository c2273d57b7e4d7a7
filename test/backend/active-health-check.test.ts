import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ActiveHealthChecker,
  type ActiveHealthCheckConfig,
  type HealthCheckDispatcher,
} from '../../shared/backend/active-health-check.ts';
import { backgroundTimers } from '../../shared/backend/clock.ts';
import { endpointOrigin, type Endpoint } from '../../shared/backend/endpoint-set.ts';
import { FakeTime, flushMicrotasks } from '../helpers/fake-time.ts';

type Answer = number | 'hang' | 'refused' | { status: number; body: string };

/** A dispatcher whose answers the test scripts, one per request, per endpoint. */
class ScriptedDispatcher {
  readonly requests: { path: string; method: string; headers: Record<string, string> }[] = [];
  readonly answers: Answer[] = [];
  closed = false;
  aborted = 0;

  request(opts: {
    path: string;
    method: string;
    headers: Record<string, string>;
    signal: AbortSignal;
  }): Promise<unknown> {
    this.requests.push({ path: opts.path, method: opts.method, headers: opts.headers });
    const a = this.answers.shift() ?? 200;
    if (a === 'refused')
      return Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    if (a === 'hang')
      return new Promise((_, reject) =>
        opts.signal.addEventListener('abort', () => {
          this.aborted++;
          reject(new Error('aborted'));
        }),
      );
    const status = typeof a === 'number' ? a : a.status;
    const text = typeof a === 'number' ? '' : a.body;
    const body = Object.assign(
      (async function* () {
        yield Buffer.from(text);
      })(),
      { dump: () => Promise.resolve(), destroy: () => undefined },
    );
    return Promise.resolve({ statusCode: status, body });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    address: '127.0.0.1',
    port: 9100 + i,
    origin: endpointOrigin('127.0.0.1', 9100 + i),
  }));
}

const CONFIG: ActiveHealthCheckConfig = {
  type: 'HTTP',
  intervalMs: 1_000,
  timeoutMs: 200,
  initialJitterMs: 0,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
  http: { path: '/healthz', method: 'GET', expectedStatuses: [200], retriableStatuses: [503] },
};

function setup(config: Partial<ActiveHealthCheckConfig> = {}, n = 1) {
  const time = new FakeTime();
  const dispatchers = new Map<string, ScriptedDispatcher>();
  const changes: string[] = [];
  const passes: number[] = [];
  const checker = new ActiveHealthChecker(
    { ...CONFIG, ...config },
    endpoints(n),
    {
      timers: time,
      random: () => 0.5,
      openDispatcher: (origin) => {
        const d = new ScriptedDispatcher();
        dispatchers.set(origin, d);
        return d as unknown as HealthCheckDispatcher;
      },
    },
    {
      onChange: (i, healthy) => changes.push(`${i}:${healthy ? 'healthy' : 'unhealthy'}`),
      onPass: (i) => passes.push(i),
    },
  );
  const d0 = () => {
    const d = dispatchers.get(endpoints(1)[0]!.origin);
    if (!d) throw new Error('no dispatcher yet');
    return d;
  };
  /** Scripts the answers of endpoint 0 before its dispatcher exists. */
  const script = (...answers: Answer[]) => {
    const origin = endpoints(1)[0]!.origin;
    const existing = dispatchers.get(origin);
    if (existing) existing.answers.push(...answers);
    else {
      const d = new ScriptedDispatcher();
      d.answers.push(...answers);
      dispatchers.set(origin, d);
      const open = (checker as unknown as { deps: { openDispatcher: (o: string) => unknown } })
        .deps;
      const original = open.openDispatcher;
      open.openDispatcher = (o: string) => (o === origin ? d : original(o));
    }
  };
  return { time, checker, changes, passes, d0, script };
}

/** Runs the checks due in `ms`, letting each answer settle. */
async function run(time: FakeTime, ms: number) {
  await time.advanceAsync(ms, 1);
}

describe('active HTTP health checks', () => {
  it('starts after the initial jitter and checks every interval after the previous check', async () => {
    const { time, checker, d0, script } = setup({ initialJitterMs: 1_000 });
    script(200, 200, 200);
    checker.start();
    await run(time, 450);
    expect(() => d0().requests.length).not.toThrow();
    expect(d0().requests).toHaveLength(0);
    await run(time, 100); // random 0.5 × 1000 ms
    expect(d0().requests).toHaveLength(1);
    expect(d0().requests[0]).toMatchObject({
      path: '/healthz',
      method: 'GET',
      headers: { host: '127.0.0.1:9100', 'user-agent': 'meshgate-health-check' },
    });
    await run(time, 1_000);
    expect(d0().requests).toHaveLength(2);
    await checker.stop();
  });

  it('the first result applies at once; later ones need the thresholds', async () => {
    const { time, checker, changes, script } = setup();
    script('refused', 200, 200, 'refused', 'refused');
    checker.start();
    await run(time, 10);
    expect(changes).toEqual(['0:unhealthy']); // first check: at once
    await run(time, 1_000);
    expect(checker.healthy(0)).toBe(false); // one pass of the two needed
    await run(time, 1_000);
    expect(changes).toEqual(['0:unhealthy', '0:healthy']);
    await run(time, 1_000);
    expect(checker.healthy(0)).toBe(true); // one failure of the two needed
    await run(time, 1_000);
    expect(changes).toEqual(['0:unhealthy', '0:healthy', '0:unhealthy']);
    await checker.stop();
  });

  it('an unexpected status fails at once; a retriable one counts towards the threshold', async () => {
    const { time, checker, changes, script } = setup();
    script(200, 503, 200, 503, 503, 200, 200, 500);
    checker.start();
    await run(time, 3_010);
    expect(changes).toEqual([]);
    await run(time, 1_000);
    expect(changes).toEqual(['0:unhealthy']); // second 503 in a row
    await run(time, 2_000);
    expect(changes).toEqual(['0:unhealthy', '0:healthy']);
    await run(time, 1_000);
    expect(changes).toEqual(['0:unhealthy', '0:healthy', '0:unhealthy']); // 500: at once
    await checker.stop();
  });

  it('a check that does not answer within the timeout fails, and is aborted', async () => {
    const { time, checker, changes, d0, script } = setup({ unhealthyThreshold: 1 });
    script(200, 'hang');
    checker.start();
    await run(time, 1_100);
    expect(changes).toEqual([]);
    await run(time, 200);
    expect(changes).toEqual(['0:unhealthy']);
    expect(d0().aborted).toBe(1);
    await checker.stop();
  });

  it('matches the expected body in the first bytes', async () => {
    const { time, checker, changes, script } = setup({
      http: { ...CONFIG.http!, expectedBody: Buffer.from('"status":"up"') },
    });
    script({ status: 200, body: '{"status":"up"}' }, { status: 200, body: '{"status":"down"}' });
    checker.start();
    await run(time, 1_100);
    expect(changes).toEqual(['0:unhealthy']);
    await checker.stop();
  });

  it('reports every pass (outlier detection un-ejects on it)', async () => {
    const { time, checker, passes, script } = setup();
    script(200, 200);
    checker.start();
    await run(time, 1_100);
    expect(passes).toEqual([0, 0]);
    await checker.stop();
  });

  it('stop leaves no timer and no check behind and closes its dispatchers', async () => {
    const { time, checker, d0, script } = setup({}, 3);
    script('hang');
    checker.start();
    await run(time, 10);
    expect(checker.pendingWork).toBeGreaterThan(0);
    await checker.stop();
    expect(checker.pendingWork).toBe(0);
    expect(time.timerCount).toBe(0);
    expect(d0().closed).toBe(true);
    expect(d0().aborted).toBe(1);
    await run(time, 5_000);
    expect(d0().requests).toHaveLength(1);
  });

  it('carries endpoint state over to a new checker (reload)', async () => {
    const first = setup();
    first.script('refused');
    first.checker.start();
    await run(first.time, 10);
    await first.checker.stop();
    const second = setup();
    second.checker.carryFrom(first.checker);
    expect(second.checker.healthy(0)).toBe(false);
    expect(second.changes).toEqual(['0:unhealthy']);
  });
});

describe('active health checks on real sockets', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  it('checks HTTP through an undici Pool, on the override port', async () => {
    let status = 200;
    const seen: string[] = [];
    const server = createHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.host}`);
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const changes: string[] = [];
    const checker = new ActiveHealthChecker(
      {
        ...CONFIG,
        intervalMs: 20,
        healthyThreshold: 1,
        unhealthyThreshold: 1,
        port,
        http: { ...CONFIG.http!, method: 'HEAD', host: 'svc.example' },
      },
      [{ address: '127.0.0.1', port: 1, origin: endpointOrigin('127.0.0.1', 1) }],
      {
        timers: backgroundTimers,
        random: Math.random,
        openDispatcher: (origin) => new Pool(origin, { connections: 1 }),
      },
      { onChange: (i, healthy) => changes.push(`${i}:${healthy}`) },
    );
    checker.start();
    await waitFor(() => seen.length >= 2);
    status = 500;
    await waitFor(() => changes.length === 1);
    await checker.stop();
    expect(seen[0]).toBe('HEAD /healthz svc.example');
    expect(changes).toEqual(['0:false']);
  });

  it('checks TCP: connect, send, expect a reply', async () => {
    let reply = 'PONG';
    const server: Server = createServer((socket) => {
      socket.on('data', () => socket.write(reply));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const changes: string[] = [];
    let checks = 0;
    const checker = new ActiveHealthChecker(
      {
        type: 'TCP',
        intervalMs: 20,
        timeoutMs: 200,
        initialJitterMs: 0,
        healthyThreshold: 1,
        unhealthyThreshold: 1,
        tcp: { send: Buffer.from('PING'), receive: Buffer.from('PONG') },
      },
      [{ address: '127.0.0.1', port, origin: endpointOrigin('127.0.0.1', port) }],
      {
        timers: backgroundTimers,
        random: Math.random,
        openDispatcher: () => {
          throw new Error('TCP checks open no dispatcher');
        },
      },
      {
        onChange: (i, healthy) => changes.push(`${i}:${healthy}`),
        onPass: () => checks++,
      },
    );
    checker.start();
    await waitFor(() => checks >= 2);
    reply = 'NOPE';
    await waitFor(() => changes.length === 1);
    await checker.stop();
    expect(changes).toEqual(['0:false']);
    await flushMicrotasks();
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
