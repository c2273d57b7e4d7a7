// ClientTrafficPolicy settings a listener applies, through real sockets on 127.0.0.1: header names
// with underscores (Allow, RejectRequest, DropHeader), rate-limit headers turned off, the request
// received, idle and stream idle timeouts, the connection limit with its close delay, and the
// requests allowed per connection (HTTP/1 and HTTP/2). Each setting is on a listener of its own
// port; the "plain" listener has no policy and shows the defaults.

import {
  connect as http2Connect,
  type ClientHttp2Session,
  type ClientHttp2Stream,
} from 'node:http2';
import { connect, type Socket } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compileClientTraffic,
  connectionLimitPerWorker,
  DEFAULT_CLIENT_TRAFFIC,
} from '../../../gateway/client-traffic.ts';
import {
  compileConfig,
  startGateway,
  type GatewayUnderTest,
} from '../../helpers/gateway-under-test.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { send } from '../../helpers/http-request.ts';
import { parseAnswer, rawExchange } from '../../helpers/raw-http.ts';
import { selfSignedCertificate, tlsSecretYaml } from '../../helpers/tls.ts';

const PLAIN = 8001;
const REJECT = 8002;
const DROP = 8003;
const TIMEOUTS = 8004;
const LIMITED = 8005;
const DELAYED = 8006;
const STREAM_IDLE = 8007;
const PER_CONNECTION = 8008;
const SECURE = 8443;

const policy = (name: string, section: string, spec: string) =>
  `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: ${section} }]
${spec}`;

function config(policies: string[]): string {
  return docs(
    GATEWAY_CLASS,
    tlsSecretYaml('default', 'cert', selfSignedCertificate(['secure.example'])),
    gatewayYaml(
      'default',
      'gw',
      `    - { name: plain, port: ${PLAIN}, protocol: HTTP }
    - { name: reject, port: ${REJECT}, protocol: HTTP }
    - { name: drop, port: ${DROP}, protocol: HTTP }
    - { name: timeouts, port: ${TIMEOUTS}, protocol: HTTP }
    - { name: limited, port: ${LIMITED}, protocol: HTTP }
    - { name: delayed, port: ${DELAYED}, protocol: HTTP }
    - { name: stream-idle, port: ${STREAM_IDLE}, protocol: HTTP }
    - { name: per-connection, port: ${PER_CONNECTION}, protocol: HTTP }
    - name: secure
      port: ${SECURE}
      protocol: HTTPS
      tls: { certificateRefs: [{ name: cert }] }`,
    ),
    serviceYaml('default', 'echo', echo.port),
    serviceYaml('default', 'hang', hang.port),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { value: /hang } }]
      backendRefs: [{ name: hang, port: 80 }]
    - matches: [{ headers: [{ name: x_route, value: 'yes' }] }]
      backendRefs: [{ name: hang, port: 80 }]`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: limited, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { value: /quota } }]
      backendRefs: [{ name: echo, port: 80 }]`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: quota, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited }]
  rateLimit:
    local: { rules: [{ limit: { requests: 1, unit: Hour } }] }`,
    ...policies,
  );
}

const POLICIES = [
  policy(
    'reject',
    'reject',
    `  headers: { withUnderscoresAction: RejectRequest, disableRateLimitHeaders: true }`,
  ),
  policy('drop', 'drop', `  headers: { withUnderscoresAction: DropHeader }`),
  policy(
    'timeouts',
    'timeouts',
    `  timeout:
    http: { requestReceivedTimeout: 1s, idleTimeout: 500ms }`,
  ),
  policy('stream-idle', 'stream-idle', `  timeout: { http: { streamIdleTimeout: 700ms } }`),
  policy('limited', 'limited', `  connection: { connectionLimit: { value: 2 } }`),
  policy(
    'per-connection',
    'per-connection',
    `  connection: { connectionLimit: { value: 100, maxRequestsPerConnection: 2 } }`,
  ),
  policy(
    'delayed',
    'delayed',
    `  connection:
    connectionLimit: { value: 1, closeDelay: 400ms }`,
  ),
  policy(
    'secure',
    'secure',
    `  timeout:
    http: { requestReceivedTimeout: 1s, streamIdleTimeout: 1500ms }
  connection:
    connectionLimit: { value: 100, maxRequestsPerConnection: 2 }`,
  ),
];

let echo: EchoServer;
/** An upstream that never answers (stream idle timeouts), and how many of its requests were dropped. */
let hang: EchoServer;
let hangDropped = 0;
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 10_000 });
const sockets: Socket[] = [];
const sessions: ClientHttp2Session[] = [];

beforeAll(async () => {
  echo = await startEchoServer('echo');
  hang = await startEchoServer('hang', (req) => {
    req.socket.once('close', () => hangDropped++);
    return true;
  });
  gw = await startGateway(config(POLICIES));
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const s of sessions) s.destroy();
  await agent.close();
  await gw?.close();
  hang?.server.closeAllConnections();
  await Promise.all([echo?.close(), hang?.close()]);
});

const get = (port: number, path = '/', headers: Record<string, string> = {}) =>
  send(agent, gw.url(port, path), { host: 'app.example', headers });

/** A raw TCP connection to a listener port, and a promise of when the gateway closes it. */
async function open(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  const socket = connect(gw.port(port), '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  socket.on('data', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, closed };
}

/** Reads one HTTP/1 response head and body from a raw socket (Content-Length framed). */
function nextAnswer(socket: Socket): Promise<ReturnType<typeof parseAnswer>> {
  return new Promise((resolve) => {
    let raw = '';
    const onData = (c: Buffer) => {
      raw += c.toString('latin1');
      const end = raw.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(raw.slice(0, end))?.[1] ?? 0);
      if (raw.length < end + 4 + length) return;
      socket.off('data', onData);
      resolve(parseAnswer(raw, false));
    };
    socket.on('data', onData);
  });
}

const request = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive\r\n\r\n`;

const within = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('headers.withUnderscoresAction', () => {
  it('refuses header names with underscores where no policy says otherwise (Envoy Gateway default)', async () => {
    const before = echo.requests.length;
    const answer = await get(PLAIN, '/', { x_user: 'alice' });
    expect(answer.status).toBe(400);
    expect(answer.headers['content-type']).toBe('application/problem+json');
    expect(echo.requests.length).toBe(before);
  });

  it('RejectRequest answers 400 problem+json, closes the connection and forwards nothing', async () => {
    const before = echo.requests.length;
    const answer = await rawExchange(
      gw.port(REJECT),
      `GET /secret HTTP/1.1\r\nHost: app.example\r\nX_Auth_User: admin\r\n\r\n`,
    );
    expect(answer.status).toBe(400);
    expect(answer.closed).toBe(true);
    expect(answer.headers['content-type']).toBe('application/problem+json');
    expect(answer.headers['meshgate-response-flags']).toBe('DPE');
    expect(JSON.parse(answer.body)).toMatchObject({
      code: 'MG_ERR_HEADER_UNDERSCORE',
      status: 400,
      detail: 'the header X_Auth_User has an underscore in its name, which this listener refuses',
    });
    expect(echo.requests.length).toBe(before);
    // Dashes are fine.
    expect((await get(REJECT, '/', { 'x-auth-user': 'admin' })).status).toBe(200);
  });

  it('DropHeader removes the header before routing and forwarding', async () => {
    const answer = await get(DROP, '/', { x_user: 'alice', 'x-kept': 'yes' });
    expect(answer.status).toBe(200);
    expect(answer.echo().headers).toMatchObject({ 'x-kept': 'yes' });
    expect(answer.echo().headers.x_user).toBeUndefined();
    // A header match on a dropped header never matches: the catch-all rule answers.
    const routed = await get(DROP, '/', { x_route: 'yes' });
    expect(routed.status).toBe(200);
    expect(routed.echo().server).toBe('echo');
  });
});

describe('headers.disableRateLimitHeaders', () => {
  it('leaves out the RateLimit fields on admitted and refused answers, keeping Retry-After', async () => {
    const admitted = await get(REJECT, '/quota');
    expect(admitted.status).toBe(200);
    expect(Object.keys(admitted.headers).filter((h) => h.includes('ratelimit'))).toEqual([]);
    const refused = await get(REJECT, '/quota');
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toMatch(/^\d+$/);
    expect(Object.keys(refused.headers).filter((h) => h.includes('ratelimit'))).toEqual([]);
    // The same rule on a listener without the policy names itself (same bucket, now empty).
    const plain = await get(PLAIN, '/quota');
    expect(plain.status).toBe(429);
    expect(plain.headers['ratelimit-policy']).toBe('"default/quota/local/0";q=1;w=3600');
  });
});

describe('timeout.http', () => {
  it('requestReceivedTimeout answers 408 to an HTTP/1 request whose body stops coming', async () => {
    const started = Date.now();
    const answer = await rawExchange(
      gw.port(TIMEOUTS),
      `POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\npart`,
    );
    const took = Date.now() - started;
    expect(answer.status).toBe(408);
    expect(answer.closed).toBe(true);
    expect(JSON.parse(answer.body)).toMatchObject({
      type: 'https://meshgate.io/errors/MG_ERR_REQUEST_TIMEOUT',
      status: 408,
    });
    // 1 s, which Node checks every second (gateway-server.ts TIMEOUT_CHECK_INTERVAL_MS).
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(2_600);
  });

  it('idleTimeout closes a keep-alive connection with no request in flight', async () => {
    const timed = await open(TIMEOUTS);
    timed.socket.write(request('/'));
    expect((await nextAnswer(timed.socket)).status).toBe(200);
    const answered = Date.now();
    const plain = await open(PLAIN);
    plain.socket.write(request('/'));
    expect((await nextAnswer(plain.socket)).status).toBe(200);
    // 500 ms, plus the second Node waits beyond what it advertises (Keep-Alive: timeout=0.5).
    const idle = (await timed.closed) - answered;
    expect(idle).toBeGreaterThanOrEqual(450);
    expect(idle).toBeLessThan(2_500);
    // Without a policy, the default (60 s) keeps the other one open.
    expect(plain.socket.destroyed).toBe(false);
  });

  it('streamIdleTimeout answers 408 when neither side sends anything, and drops the upstream request', async () => {
    const dropped = hangDropped;
    const started = Date.now();
    const answer = await rawExchange(
      gw.port(STREAM_IDLE),
      `GET /hang HTTP/1.1\r\nHost: app.example\r\n\r\n`,
    );
    expect(answer.status).toBe(408);
    expect(answer.headers['meshgate-response-flags']).toBe('SI');
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'MG_ERR_STREAM_IDLE_TIMEOUT' });
    expect(answer.closed).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(650);
    // Regression: the upstream exchange went on after the gateway had answered for it.
    for (let i = 0; i < 40 && hangDropped === dropped; i++) await within(25);
    expect(hangDropped).toBe(dropped + 1);
  });
});

describe('connection.connectionLimit', () => {
  it('value: connections over the limit are closed unanswered until one closes', async () => {
    const first = await open(LIMITED);
    const second = await open(LIMITED);
    for (const c of [first, second]) {
      c.socket.write(request('/'));
      expect((await nextAnswer(c.socket)).status).toBe(200);
    }
    const third = await open(LIMITED);
    third.socket.write(request('/'));
    await third.closed;
    first.socket.destroy();
    await first.closed;
    // The gateway sees the close a moment after the client does.
    let fourth: Awaited<ReturnType<typeof open>> | undefined;
    for (let i = 0; i < 20 && !fourth; i++) {
      const candidate = await open(LIMITED);
      candidate.socket.write(request('/'));
      const outcome = await Promise.race([
        nextAnswer(candidate.socket),
        candidate.closed.then(() => undefined),
      ]);
      if (outcome?.status === 200) fourth = candidate;
      else await within(50);
    }
    expect(fourth).toBeDefined();
    second.socket.destroy();
    fourth?.socket.destroy();
  });

  it('closeDelay holds a refused connection open that long before closing it', async () => {
    const holder = await open(DELAYED);
    holder.socket.write(request('/'));
    expect((await nextAnswer(holder.socket)).status).toBe(200);
    const refused = await open(DELAYED);
    const at = Date.now();
    let answered = false;
    refused.socket.on('data', () => (answered = true));
    refused.socket.write(request('/'));
    expect((await refused.closed) - at).toBeGreaterThanOrEqual(350);
    expect(answered).toBe(false);
    holder.socket.destroy();
  });

  it('maxRequestsPerConnection: the last HTTP/1 answer says Connection: close', async () => {
    const c = await open(PER_CONNECTION);
    c.socket.write(request('/'));
    const one = await nextAnswer(c.socket);
    expect(one.headers.connection).toBe('keep-alive');
    c.socket.write(request('/'));
    const two = await nextAnswer(c.socket);
    expect(two.status).toBe(200);
    expect(two.headers.connection).toBe('close');
    await c.closed;
  });
});

describe('HTTP/2 listener', () => {
  function session(): Promise<ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      const s = http2Connect(`https://127.0.0.1:${gw.port(SECURE)}`, {
        servername: 'secure.example',
        rejectUnauthorized: false,
      });
      sessions.push(s);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  }

  function h2Get(s: ClientHttp2Session): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = s.request({ ':path': '/', ':authority': 'secure.example' });
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', () => {});
      stream.on('end', () => resolve(status));
      stream.on('error', reject);
    });
  }

  /** The status and body a stream got before it closed (reset or not). */
  function streamAnswer(stream: ClientHttp2Stream): Promise<{ status: number; body: string }> {
    return new Promise((resolve) => {
      let status = 0;
      let body = '';
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (c: Buffer) => (body += c.toString()));
      stream.on('close', () => resolve({ status, body }));
      stream.on('error', () => {});
    });
  }

  it('maxRequestsPerConnection: GOAWAY after the last stream allowed, which completes', async () => {
    const s = await session();
    const goaway = new Promise<void>((resolve) => s.once('goaway', () => resolve()));
    expect(await h2Get(s)).toBe(200);
    expect(await h2Get(s)).toBe(200);
    await goaway;
  });

  it('requestReceivedTimeout answers 408 to a stream whose body stops coming', async () => {
    const s = await session();
    const started = Date.now();
    const stream = s.request(
      { ':method': 'POST', ':path': '/', ':authority': 'secure.example' },
      { endStream: false },
    );
    stream.write('part');
    const answer = await streamAnswer(stream);
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'MG_ERR_REQUEST_TIMEOUT' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('streamIdleTimeout answers 408 on a stream with no traffic either way', async () => {
    const s = await session();
    const started = Date.now();
    const stream = s.request({ ':path': '/hang', ':authority': 'secure.example' });
    const answer = await streamAnswer(stream);
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({
      code: 'MG_ERR_STREAM_IDLE_TIMEOUT',
      response_flags: 'SI',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
  });
});

describe('a new snapshot', () => {
  it('applies changed settings to the servers already listening', async () => {
    const reject = policy('reject', 'reject', `  headers: { withUnderscoresAction: Allow }`);
    const changed = compileConfig(config([reject, ...POLICIES.slice(1)])).snapshot;
    await gw.server.apply(changed);
    const answer = await get(REJECT, '/', { x_user: 'alice' });
    expect(answer.status).toBe(200);
    expect(answer.echo().headers.x_user).toBe('alice');
  });
});

describe('compileClientTraffic', () => {
  it('keeps the gateway defaults without a policy, and reads durations as ms', () => {
    expect(compileClientTraffic(undefined)).toBe(DEFAULT_CLIENT_TRAFFIC);
    expect(DEFAULT_CLIENT_TRAFFIC.underscores).toBe('RejectRequest');
    expect(
      compileClientTraffic({
        headers: { disableRateLimitHeaders: true },
        timeout: { http: { requestReceivedTimeout: '1m30s', idleTimeout: '0s' } },
        connection: { connectionLimit: { value: 10, closeDelay: '250ms' } },
      }),
    ).toEqual({
      underscores: 'RejectRequest',
      rateLimitHeaders: false,
      requestReceivedMs: 90_000,
      idleMs: 0,
      streamIdleMs: 0,
      connectionLimit: 10,
      closeDelayMs: 250,
      maxRequestsPerConnection: 0,
    });
  });

  it('splits a connection limit among workers, rounding up', () => {
    expect(connectionLimitPerWorker(100, 1)).toBe(100);
    expect(connectionLimitPerWorker(100, 3)).toBe(34);
    expect(connectionLimitPerWorker(1, 4)).toBe(1);
    expect(connectionLimitPerWorker(0, 4)).toBe(0);
  });
});
