// What the gateway answers when it cannot forward (RFC 9457 problems with response flags), and
// what it does to headers when it can: request id, X-Forwarded-*, Host, hop-by-hop removal in
// both directions (RFC 9110 §7.6.1), trailers end to end.

import type { IncomingMessage, ServerResponse } from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { freePort } from '../../helpers/ports.ts';
import { rawExchange } from '../../helpers/raw-http.ts';

const rule = (path: string, backend: string, extra = '') =>
  `    - matches: [{ path: { type: PathPrefix, value: ${path} } }]
${extra}      backendRefs: [{ name: ${backend}, port: 80 }]`;

let echo: EchoServer;
let special: EchoServer;
let slow: EchoServer;
const held = new Set<ServerResponse>();
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1_000 });
/** The gateway's access log, one parsed JSON line per request. */
const accessLog: Record<string, unknown>[] = [];
const logger = pino(
  { level: 'info' },
  { write: (line: string) => accessLog.push(JSON.parse(line)) },
);

/** Upstream answers that the echo server does not give: hop-by-hop response headers, trailers. */
function specialHandler(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.url?.startsWith('/hop-response')) {
    req.resume();
    res.writeHead(200, {
      connection: 'X-Resp-Hop',
      'x-resp-hop': 'must-not-pass',
      'keep-alive': 'timeout=5, max=7',
      'proxy-connection': 'keep-alive',
      'x-end-to-end': 'passes',
      'content-length': '2',
    });
    res.end('ok');
    return true;
  }
  if (req.url?.startsWith('/early-answer')) {
    // Answers before reading the request body, as an upstream refusing an upload does.
    res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' });
    res.end('too large');
    req.resume();
    return true;
  }
  if (req.url?.startsWith('/trailers')) {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('part one, ');
    res.write('part two');
    res.addTrailers({ 'x-checksum': 'abc123' });
    res.end();
    return true;
  }
  return false;
}

beforeAll(async () => {
  echo = await startEchoServer('echo');
  special = await startEchoServer('special', specialHandler);
  slow = await startEchoServer('slow', (req, res) => {
    // Never answers; the test's timeouts must cut it off. Closed in afterAll.
    req.resume();
    held.add(res);
    return true;
  });
  const deadPort = await freePort();
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'gw', '    - { name: http, port: 80, protocol: HTTP }'),
      serviceYaml('default', 'echo', echo.port),
      serviceYaml('default', 'special', special.port),
      serviceYaml('default', 'slow', slow.port),
      serviceYaml('default', 'dead', deadPort),
      `apiVersion: v1
kind: Service
metadata: { name: empty, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }`,
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: errors, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
${rule('/echo', 'echo')}
${rule('/early-answer', 'special')}
${rule('/hop-response', 'special')}
${rule('/trailers', 'special')}
${rule('/unresolved', 'missing')}
${rule('/no-endpoints', 'empty')}
${rule('/refused', 'dead')}
${rule('/slow-request', 'slow', '      timeouts: { request: 250ms }\n')}
${rule('/slow-backend', 'slow', '      timeouts: { backendRequest: 250ms }\n')}
${rule(
  '/extension',
  'echo',
  `      filters:
        - type: ExtensionRef
          extensionRef: { group: example.io, kind: Custom, name: custom }
`,
)}
`,
    ),
    { logger },
  );
});

afterAll(async () => {
  await agent.close();
  await gw?.close();
  for (const res of held) res.destroy();
  await Promise.all([echo, special, slow].map((u) => u?.close()));
});

describe('problem responses', () => {
  async function problem(path: string, headers: Record<string, string> = {}) {
    const a = await send(agent, gw.url(80, path), { headers });
    expect(a.headers['content-type']).toBe('application/problem+json');
    const body = a.json<Record<string, unknown>>();
    expect(a.headers['meshgate-response-flags']).toBe(body.response_flags);
    expect(a.headers['x-request-id']).toBe(body.request_id);
    return { status: a.status, body };
  }

  it('404 NR when no route matches, with every RFC 9457 field', async () => {
    const { status, body } = await problem('/nope/x', { 'x-request-id': 'req-404' });
    expect(status).toBe(404);
    expect(body).toMatchObject({
      type: 'https://meshgate.io/errors/MG_ERR_NO_ROUTE',
      title: expect.any(String),
      status: 404,
      detail: expect.stringContaining('/nope/x'),
      instance: '/nope/x',
      code: 'MG_ERR_NO_ROUTE',
      request_id: 'req-404',
      response_flags: 'NR',
    });
  });

  it.each([
    ['/unresolved', 500, 'NC', 'MG_ERR_INVALID_BACKEND'],
    ['/no-endpoints', 503, 'UH', 'MG_ERR_NO_HEALTHY_UPSTREAM'],
    ['/refused', 503, 'UF', 'MG_ERR_UPSTREAM_CONNECT'],
    ['/slow-request', 504, 'UT', 'MG_ERR_UPSTREAM_TIMEOUT'],
    ['/slow-backend', 504, 'UT', 'MG_ERR_UPSTREAM_TIMEOUT'],
    ['/extension', 500, 'IC', 'MG_ERR_INVALID_CONFIG'],
  ])('%s → %i %s', async (path, status, flag, code) => {
    const before = echo.requests.length;
    const got = await problem(path);
    expect(got.status).toBe(status);
    expect(got.body).toMatchObject({ status, response_flags: flag, code });
    expect(echo.requests.length).toBe(before);
  });

  it('the request timeout held the upstream request open until it fired', () => {
    expect(held.size).toBeGreaterThanOrEqual(2);
  });
});

describe('request id', () => {
  it('keeps a valid X-Request-Id', async () => {
    const seen = (
      await send(agent, gw.url(80, '/echo'), { headers: { 'x-request-id': 'abc-123' } })
    ).echo();
    expect(seen.headers['x-request-id']).toBe('abc-123');
  });

  it.each([['has space'], ['x'.repeat(200)]])('replaces an invalid one (%#)', async (given) => {
    const seen = (
      await send(agent, gw.url(80, '/echo'), { headers: { 'x-request-id': given } })
    ).echo();
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('creates one when there is none', async () => {
    const seen = (await send(agent, gw.url(80, '/echo'))).echo();
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('forwarding headers and Host', () => {
  it('sets X-Forwarded-For/-Proto/-Host and passes Host as the client sent it', async () => {
    const seen = (await send(agent, gw.url(80, '/echo'), { host: 'Shop.Example:8080' })).echo();
    expect(seen.headers).toMatchObject({
      host: 'Shop.Example:8080',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'Shop.Example:8080',
    });
  });

  it('appends the client address to an existing X-Forwarded-For', async () => {
    const seen = (
      await send(agent, gw.url(80, '/echo'), { headers: { 'x-forwarded-for': '198.51.100.1' } })
    ).echo();
    expect(seen.headers['x-forwarded-for']).toBe('198.51.100.1, 127.0.0.1');
  });
});

describe('hop-by-hop headers', () => {
  it('are not forwarded upstream (Connection, Keep-Alive, TE except trailers, Upgrade, and what Connection names)', async () => {
    const a = await rawExchange(
      gw.port(80),
      [
        'GET /echo/hop HTTP/1.1',
        'Host: hop.example',
        'Connection: close, X-Custom-Hop',
        'X-Custom-Hop: secret',
        'Keep-Alive: timeout=5',
        'TE: trailers, deflate',
        'Upgrade: something/1.0',
        'Proxy-Connection: keep-alive',
        'X-End-To-End: kept',
        '',
        '',
      ].join('\r\n'),
    );
    expect(a.status).toBe(200);
    const seen = JSON.parse(a.body) as { headers: Record<string, string> };
    expect(seen.headers['x-end-to-end']).toBe('kept');
    expect(seen.headers['x-custom-hop']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
    expect(seen.headers.upgrade).toBeUndefined();
    expect(seen.headers['proxy-connection']).toBeUndefined();
    expect(seen.headers.te).toBe('trailers');
    expect(String(seen.headers.connection ?? '')).not.toMatch(/x-custom-hop/i);
  });

  it('are not passed back to the client', async () => {
    const a = await send(agent, gw.url(80, '/hop-response'));
    expect(a.status).toBe(200);
    expect(a.body).toBe('ok');
    expect(a.headers['x-end-to-end']).toBe('passes');
    expect(a.headers['x-resp-hop']).toBeUndefined();
    expect(a.headers['proxy-connection']).toBeUndefined();
    expect(a.headers['keep-alive']).not.toBe('timeout=5, max=7');
    expect(String(a.headers.connection ?? '')).not.toMatch(/x-resp-hop/i);
  });
});

describe('trailers', () => {
  it('pass end to end to a client that sent TE: trailers', async () => {
    const res = await request(gw.url(80, '/trailers'), {
      dispatcher: agent,
      headers: { te: 'trailers' },
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('part one, part two');
    expect(res.trailers).toMatchObject({ 'x-checksum': 'abc123' });
  });

  it('reach a raw HTTP/1.1 client as a chunked trailer section', async () => {
    const a = await rawExchange(
      gw.port(80),
      'GET /trailers HTTP/1.1\r\nHost: t.example\r\nTE: trailers\r\nConnection: close\r\n\r\n',
    );
    expect(a.headers['transfer-encoding']).toMatch(/chunked/);
    expect(a.body).toBe('part one, part two');
    expect(a.raw).toMatch(/\r\n0\r\nx-checksum: abc123\r\n\r\n$/i);
  });
});

describe('access log', () => {
  const logged = async (requestId: string) => {
    for (let i = 0; i < 100 && !accessLog.some((l) => l.request_id === requestId); i++)
      await new Promise((r) => setTimeout(r, 5));
    return accessLog.find((l) => l.request_id === requestId);
  };

  // Regression: undici sets `req.socket = null` on an IncomingMessage body it has sent, and the
  // access log read the client address from it when the response finished: every request with a
  // body threw an uncaught TypeError in the gateway.
  it('logs a request whose body was streamed upstream (req.socket nulled by undici)', async () => {
    const a = await send(agent, gw.url(80, '/echo/upload'), {
      method: 'POST',
      headers: { 'x-request-id': 'post-body-logged' },
      body: 'x'.repeat(100_000),
    });
    expect(a.echo().body.length).toBe(100_000);
    expect(await logged('post-body-logged')).toMatchObject({
      status: 200,
      client: '127.0.0.1',
      route: 'httproute/default/errors/rule/0',
      flags: '-',
    });
  });

  it('logs a request whose upstream answered before reading the body', async () => {
    const a = await send(agent, gw.url(80, '/early-answer'), {
      method: 'PUT',
      headers: { 'x-request-id': 'early-answer-logged' },
      body: 'y'.repeat(10_000),
    });
    expect(a.status).toBe(413);
    expect(await logged('early-answer-logged')).toMatchObject({ status: 413, client: '127.0.0.1' });
  });

  it('logs problems with their response flag', async () => {
    await send(agent, gw.url(80, '/no-endpoints'), { headers: { 'x-request-id': 'uh-logged' } });
    expect(await logged('uh-logged')).toMatchObject({ status: 503, flags: 'UH' });
  });
});
