// HTTPS listeners through real TLS: the certificate chosen by SNI, HTTP/2 by ALPN next to
// HTTP/1.1 on the same port, and 421 for a request whose Host belongs to another listener than
// the one the connection's SNI selected (Gateway API HTTPSListenerDetectMisdirectedRequests).

import { request as httpsRequest } from 'node:https';
import {
  connect as http2Connect,
  constants as h2,
  type ClientHttp2Session,
  type IncomingHttpHeaders as H2Headers,
} from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, type EchoedRequest, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { selfSignedCertificate, tlsSecretYaml } from '../../helpers/tls.ts';

const listener = (name: string, secret: string, hostname?: string) =>
  `    - name: ${name}
      port: 443
      protocol: HTTPS
${hostname ? `      hostname: "${hostname}"\n` : ''}      tls: { certificateRefs: [{ name: ${secret} }] }`;

const route = (name: string, section: string, backend: string, hostnames: string[] = []) =>
  `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: gw, sectionName: ${section} }]
  hostnames: ${JSON.stringify(hostnames)}
  rules:
    - backendRefs: [{ name: ${backend}, port: 80 }]`;

let a: EchoServer;
let b: EchoServer;
let w: EchoServer;
let x: EchoServer;
let gw: GatewayUnderTest;
const sessions: ClientHttp2Session[] = [];

beforeAll(async () => {
  a = await startEchoServer('a');
  b = await startEchoServer('b');
  w = await startEchoServer('w');
  x = await startEchoServer('x');
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      tlsSecretYaml('default', 'cert-default', selfSignedCertificate(['default.example'])),
      tlsSecretYaml('default', 'cert-a', selfSignedCertificate(['a.example'])),
      tlsSecretYaml('default', 'cert-wild', selfSignedCertificate(['*.wild.example'])),
      tlsSecretYaml('default', 'cert-x', selfSignedCertificate(['x.wild.example'])),
      gatewayYaml(
        'default',
        'gw',
        [
          listener('default', 'cert-default'),
          listener('a', 'cert-a', 'a.example'),
          listener('wild', 'cert-wild', '*.wild.example'),
          listener('x', 'cert-x', 'x.wild.example'),
        ].join('\n'),
      ),
      serviceYaml('default', 'a', a.port),
      serviceYaml('default', 'b', b.port),
      serviceYaml('default', 'w', w.port),
      serviceYaml('default', 'x', x.port),
      route('on-a', 'a', 'a'),
      route('on-default', 'default', 'b', ['b.example']),
      route('on-wild', 'wild', 'w'),
      route('on-x', 'x', 'x'),
    ),
  );
});

afterAll(async () => {
  for (const s of sessions) s.destroy();
  await gw?.close();
  await Promise.all([a, b, w, x].map((u) => u?.close()));
});

function servedCertificate(servername: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: '127.0.0.1', port: gw.port(443), servername, rejectUnauthorized: false },
      () => {
        const cert = socket.getPeerCertificate();
        socket.end();
        resolve(cert);
      },
    );
    socket.once('error', reject);
  });
}

interface Https1Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  alpn: string | false;
}

/** One HTTP/1.1 request over TLS with the given SNI and Host, on a fresh connection. */
function https1(servername: string, host: string, path = '/'): Promise<Https1Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: gw.port(443),
        path,
        servername,
        headers: { host },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            alpn: (res.socket as unknown as { alpnProtocol: string | false }).alpnProtocol,
          }),
        );
      },
    );
    req.once('error', reject);
    req.end();
  });
}

function h2Session(servername: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2Connect(`https://127.0.0.1:${gw.port(443)}`, {
      servername,
      rejectUnauthorized: false,
    });
    sessions.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function h2Request(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  body?: (Buffer | string)[],
): Promise<{ headers: H2Headers; body: string; trailers: H2Headers }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let responseHeaders: H2Headers = {};
    let trailers: H2Headers = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () =>
      resolve({ headers: responseHeaders, body: Buffer.concat(chunks).toString(), trailers }),
    );
    stream.once('error', reject);
    if (body) {
      for (const part of body) stream.write(part);
      stream.end();
    }
  });
}

describe('certificate selection by SNI', () => {
  it.each([
    ['a.example', 'DNS:a.example'],
    ['foo.wild.example', 'DNS:*.wild.example'],
    ['x.wild.example', 'DNS:x.wild.example'],
    ['unknown.example', 'DNS:default.example'],
  ])('SNI %s is served the certificate for %s', async (servername, san) => {
    expect((await servedCertificate(servername)).subjectaltname).toBe(san);
  });
});

describe('HTTP/2 and HTTP/1.1 on one port', () => {
  it('HTTP/2 via ALPN: status, response headers and body', async () => {
    const s = await h2Session('a.example');
    expect(s.alpnProtocol).toBe('h2');
    const res = await h2Request(s, {
      ':method': 'GET',
      ':path': '/h2/path?q=1',
      ':authority': 'a.example',
      'x-client': 'h2',
    });
    expect(res.headers[':status']).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-upstream']).toBe('a');
    expect(res.headers.connection).toBeUndefined();
    const echoed = JSON.parse(res.body) as EchoedRequest;
    expect(echoed).toMatchObject({ server: 'a', method: 'GET', path: '/h2/path?q=1' });
    expect(echoed.headers).toMatchObject({
      host: 'a.example',
      'x-client': 'h2',
      'x-forwarded-proto': 'https',
    });
  });

  // Regression: only Content-Length or Transfer-Encoding counted as "has a body", so an HTTP/2
  // request body sent without content-length (legal in HTTP/2) was dropped on the way upstream.
  it('HTTP/2 request body without content-length reaches the upstream', async () => {
    const s = await h2Session('a.example');
    const res = await h2Request(
      s,
      { ':method': 'POST', ':path': '/upload', ':authority': 'a.example' },
      ['hello ', 'over ', 'h2'],
    );
    expect(res.headers[':status']).toBe(200);
    expect((JSON.parse(res.body) as EchoedRequest).body).toBe('hello over h2');
  });

  it('HTTP/1.1 on the same port', async () => {
    const res = await https1('a.example', 'a.example', '/h1');
    expect(res.alpn).not.toBe('h2');
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as EchoedRequest).server).toBe('a');
  });
});

// Regression: 421 was decided only after a route had matched, so a Host that no route of the
// port serves (SNI a.example, Host unknown.example) got 404 instead of 421.
describe('misdirected requests', () => {
  it.each<[string, string, number, string?]>([
    ['a.example', 'a.example', 200, 'a'],
    ['a.example', 'a.example:443', 200, 'a'],
    ['a.example', 'b.example', 421],
    ['a.example', 'unknown.example', 421],
    ['b.example', 'b.example', 200, 'b'],
    ['b.example', 'a.example', 421],
    ['b.example', 'unknown.example', 404],
    ['foo.wild.example', 'bar.wild.example', 200, 'w'],
    ['foo.wild.example', 'x.wild.example', 421],
    ['x.wild.example', 'x.wild.example', 200, 'x'],
    ['x.wild.example', 'foo.wild.example', 421],
  ])('HTTP/1.1 SNI %s, Host %s → %i', async (servername, host, status, backend) => {
    const res = await https1(servername, host, '/m');
    expect(res.status).toBe(status);
    if (backend) expect((JSON.parse(res.body) as EchoedRequest).server).toBe(backend);
    if (status === 421)
      expect(JSON.parse(res.body)).toMatchObject({ status: 421, code: 'MG_ERR_MISDIRECTED' });
  });

  it('HTTP/2: a connection opened for one listener does not carry another listener’s host', async () => {
    const s = await h2Session('a.example');
    const ok = await h2Request(s, { ':path': '/m', ':authority': 'a.example' });
    expect(ok.headers[':status']).toBe(200);
    const coalesced = await h2Request(s, { ':path': '/m', ':authority': 'x.wild.example' });
    expect(coalesced.headers[':status']).toBe(421);
    expect(coalesced.headers['meshgate-response-flags']).toBe('DPE');
    expect(h2.HTTP_STATUS_MISDIRECTED_REQUEST).toBe(421);
  });
});
