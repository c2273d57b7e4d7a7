// Request smuggling and parser hardening on a raw socket (RFC 9112 §6.1, §6.3: a message with
// both Content-Length and Transfer-Encoding, or conflicting lengths, is an error), header and URL
// limits, and path normalization before routing. None of the rejected requests may reach the
// upstream.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { rawExchange } from '../../helpers/raw-http.ts';

const LIMITS = { maxUrlLength: 2048, maxHeaders: 50 };
const MAX_HEADER_BYTES = 16_384;

let echo: EchoServer;
let admin: EchoServer;
let gw: GatewayUnderTest;

beforeAll(async () => {
  echo = await startEchoServer('echo');
  admin = await startEchoServer('admin');
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'gw', '    - { name: http, port: 80, protocol: HTTP }'),
      serviceYaml('default', 'echo', echo.port),
      serviceYaml('default', 'admin', admin.port),
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /admin } }]
      backendRefs: [{ name: admin, port: 80 }]`,
    ),
    { limits: LIMITS, maxHeaderBytes: MAX_HEADER_BYTES },
  );
});

afterAll(async () => {
  await gw?.close();
  await echo?.close();
  await admin?.close();
});

const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

describe('malformed and smuggling requests', () => {
  it.each<[string, number, string]>([
    [
      'Content-Length with Transfer-Encoding',
      400,
      head([
        'POST /smuggle HTTP/1.1',
        'Host: a.example',
        'Content-Length: 6',
        'Transfer-Encoding: chunked',
      ]) + '0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a.example\r\n\r\n',
    ],
    [
      'Transfer-Encoding with Content-Length (reversed order)',
      400,
      head([
        'POST /smuggle HTTP/1.1',
        'Host: a.example',
        'Transfer-Encoding: chunked',
        'Content-Length: 3',
      ]) + '0\r\n\r\n',
    ],
    [
      'two different Content-Length values',
      400,
      head([
        'POST /smuggle HTTP/1.1',
        'Host: a.example',
        'Content-Length: 3',
        'Content-Length: 4',
      ]) + 'abcd',
    ],
    [
      'a Content-Length list with different values',
      400,
      head(['POST /smuggle HTTP/1.1', 'Host: a.example', 'Content-Length: 3, 4']) + 'abcd',
    ],
    [
      'an obfuscated Transfer-Encoding',
      400,
      head(['POST /smuggle HTTP/1.1', 'Host: a.example', 'Transfer-Encoding: xchunked']) +
        '0\r\n\r\n',
    ],
    [
      'obs-fold (a header line continued on the next line)',
      400,
      head(['GET /fold HTTP/1.1', 'Host: a.example', 'X-Folded: first', ' second']),
    ],
    [
      'a bad chunk size',
      400,
      head(['POST /chunks HTTP/1.1', 'Host: a.example', 'Transfer-Encoding: chunked']) +
        'zz\r\nhello\r\n0\r\n\r\n',
    ],
    ['no Host header', 400, head(['GET /nohost HTTP/1.1'])],
    [
      'a header block over the byte limit',
      431,
      head(['GET /big HTTP/1.1', 'Host: a.example', `X-Big: ${'b'.repeat(MAX_HEADER_BYTES + 10)}`]),
    ],
    [
      'more header fields than the limit',
      431,
      head([
        'GET /many HTTP/1.1',
        'Host: a.example',
        ...Array.from({ length: LIMITS.maxHeaders + 5 }, (_, i) => `X-H${i}: ${i}`),
      ]),
    ],
    [
      'a URL over the length limit',
      414,
      head([`GET /${'u'.repeat(LIMITS.maxUrlLength + 10)} HTTP/1.1`, 'Host: a.example']),
    ],
  ])('%s → %i, connection closed, nothing reaches the upstream', async (_name, status, req) => {
    const before = echo.requests.length + admin.requests.length;
    const a = await rawExchange(gw.port(80), req);
    expect(a.status).toBe(status);
    expect(a.closed).toBe(true);
    // Exactly one answer: a smuggled second request must not be answered too.
    expect(a.raw.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
    if (a.headers['content-type'] === 'application/problem+json')
      expect(JSON.parse(a.body)).toMatchObject({ status });
    // Give a request that slipped through time to arrive before checking that none did.
    const probe = await rawExchange(
      gw.port(80),
      head(['GET /probe HTTP/1.1', 'Host: a.example', 'Connection: close']),
    );
    expect(probe.status).toBe(200);
    expect(echo.requests.length + admin.requests.length).toBe(before + 1);
    expect(echo.requests.at(-1)?.path).toBe('/probe');
  });
});

describe('path normalization before routing', () => {
  const get = (target: string) =>
    rawExchange(
      gw.port(80),
      head([`GET ${target} HTTP/1.1`, 'Host: a.example', 'Connection: close']),
    );

  it.each([
    ['/a/../admin', '/admin'],
    ['/a/./../admin/x', '/admin/x'],
    ['/%2e%2e/admin', '/admin'],
    ['/a/%2E%2E/admin?q=1', '/admin?q=1'],
    ['//admin//x', '/admin/x'],
    ['/a/..\\admin', '/admin'],
  ])('%s is routed and forwarded as %s', async (target, want) => {
    const a = await get(target);
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toMatchObject({ server: 'admin', path: want });
  });

  it('an escaped slash (%2F) answers 301 to the unescaped path (UnescapeAndRedirect)', async () => {
    const before = admin.requests.length + echo.requests.length;
    const a = await get('/admin%2Fx?y=1');
    expect(a.status).toBe(301);
    expect(a.headers.location).toBe('/admin/x?y=1');
    expect(admin.requests.length + echo.requests.length).toBe(before);
  });

  it('an invalid escape is refused with 400', async () => {
    const a = await get('/bad%zzescape');
    expect(a.status).toBe(400);
    expect(JSON.parse(a.body)).toMatchObject({ code: 'MG_ERR_BAD_PATH' });
  });
});
