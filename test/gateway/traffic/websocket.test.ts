// WebSocket upgrades through the gateway, without a WebSocket library: the upstream answers the
// Upgrade with 101 (RFC 6455 §4.2.2 accept key) and echoes every byte it gets, so the test sees
// the handshake and the raw frames pass both ways untouched.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';

const API_KEY = 'ws-key-aaaaaaaaaaaaaaaaaaaaaaaa';
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = createHash('sha1')
  .update(KEY + WS_GUID)
  .digest('base64');

interface UpgradeSeen {
  url: string;
  headers: IncomingMessage['headers'];
}

/** An upstream that accepts every WebSocket upgrade and echoes raw bytes; /refuse answers 403. */
async function startWebSocketEcho(): Promise<{
  server: Server;
  port: number;
  seen: UpgradeSeen[];
  sockets: Set<Duplex>;
  close(): Promise<void>;
}> {
  const seen: UpgradeSeen[] = [];
  const sockets = new Set<Duplex>();
  const server = createServer((_req, res) => res.writeHead(426).end());
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (req.url?.startsWith('/ws/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1')
      .update(String(req.headers['sec-websocket-key']) + WS_GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    if (head.length > 0) socket.write(head);
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    seen,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A masked WebSocket text frame (clients must mask, RFC 6455 §5.3). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

let upstream: Awaited<ReturnType<typeof startWebSocketEcho>>;
let gw: GatewayUnderTest;
const clients = new Set<Socket>();

beforeAll(async () => {
  upstream = await startWebSocketEcho();
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'gw', '    - { name: http, port: 80, protocol: HTTP }'),
      serviceYaml('default', 'ws', upstream.port),
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ws, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /ws } }]
      backendRefs: [{ name: ws, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /rewritten } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /ws/inner } }
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Route, value: rewritten }] }
      backendRefs: [{ name: ws, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /moved } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /ws } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: secure, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /secure } }]
      backendRefs: [{ name: ws, port: 80 }]
---
apiVersion: v1
kind: Secret
metadata: { name: ws-keys, namespace: default }
type: Opaque
stringData: { client-a: ${API_KEY} }
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: secure, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: secure }]
  apiKeyAuth:
    credentialRefs: [{ name: ws-keys }]
    extractFrom: [{ headers: [x-api-key] }]
`,
    ),
  );
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await gw?.close();
  await upstream?.close();
});

/** Opens a raw connection to the gateway and sends an Upgrade request; resolves with the head of the answer. */
function upgrade(
  path: string,
  extraHeaders = '',
): Promise<{ socket: Socket; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect(gw.port(80), '127.0.0.1');
    clients.add(socket);
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.removeListener('data', onData);
      resolve({ socket, head: buf.subarray(0, end).toString(), rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
    );
  });
}

function readBytes(socket: Socket, n: number, already: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = already;
    if (buf.length >= n) return resolve(buf.subarray(0, n));
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < n) return;
      socket.removeListener('data', onData);
      resolve(buf.subarray(0, n));
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

describe('WebSocket upgrade', () => {
  // Regression (X-Forwarded-For): the upgrade path replaced the client's X-Forwarded-For.
  it('relays the 101 and passes frames both ways', async () => {
    const before = upstream.seen.length;
    const { socket, head, rest } = await upgrade(
      '/ws/chat?room=1',
      'X-Forwarded-For: 203.0.113.7\r\n',
    );
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    expect(head.toLowerCase()).toContain(`sec-websocket-accept: ${ACCEPT.toLowerCase()}`);
    const seen = upstream.seen[before] as UpgradeSeen;
    expect(seen.url).toBe('/ws/chat?room=1');
    expect(seen.headers).toMatchObject({
      host: 'ws.example',
      upgrade: 'websocket',
      'sec-websocket-key': KEY,
      'sec-websocket-version': '13',
      'x-forwarded-proto': 'http',
      'x-forwarded-for': '203.0.113.7, 127.0.0.1',
    });
    expect(String(seen.headers.connection).toLowerCase()).toContain('upgrade');
    for (const text of ['hello', 'second frame']) {
      const frame = textFrame(text);
      socket.write(frame);
      expect((await readBytes(socket, frame.length, rest)).equals(frame)).toBe(true);
    }
    socket.end();
  });

  // Regression: an Upgrade request skipped the rule's request filters.
  it('applies the rule’s URLRewrite and RequestHeaderModifier to the upgrade request', async () => {
    const before = upstream.seen.length;
    const { socket, head } = await upgrade('/rewritten/x');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    expect(upstream.seen[before]?.url).toBe('/ws/inner/x');
    expect(upstream.seen[before]?.headers['x-route']).toBe('rewritten');
    socket.end();
  });

  // Regression: the upgrade stack had no redirect layer; a redirect rule answered 500 (no backend).
  it('answers a RequestRedirect rule with the redirect instead of upgrading', async () => {
    const before = upstream.seen.length;
    const { socket, head } = await upgrade('/moved/a');
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 302 /);
    expect(head.toLowerCase()).toContain('location: http://ws.example/ws');
    expect(upstream.seen.length).toBe(before);
    socket.destroy();
  });

  // Regression: an answer to an Upgrade request (error or redirect) left the connection open.
  it('404 problem for an upgrade that matches no route, then the connection closes', async () => {
    const { socket, head } = await upgrade('/nowhere');
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 404 /);
    expect(head.toLowerCase()).toContain('content-type: application/problem+json');
    await new Promise<void>((resolve) => {
      if (socket.destroyed || socket.readableEnded) resolve();
      else socket.once('close', () => resolve());
      socket.resume();
    });
  });

  // Regression: undici's upgrade() turns any non-101 answer into a "bad upgrade" error (502).
  it('relays an upstream’s refusal of the upgrade as its own answer', async () => {
    const { socket, head } = await upgrade('/ws/refuse');
    expect(head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 403 /);
    socket.destroy();
  });

  it('closing the client closes the upstream connection', async () => {
    const before = new Set(upstream.sockets);
    const { socket } = await upgrade('/ws/close');
    const opened = [...upstream.sockets].filter((s) => !before.has(s));
    expect(opened).toHaveLength(1);
    socket.destroy();
    for (let i = 0; i < 200 && !opened[0]?.destroyed; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(opened[0]?.destroyed).toBe(true);
  });

  // Regression: the upgrade stack had no authentication layers, so a WebSocket handshake reached
  // a route protected by a SecurityPolicy without credentials.
  it('an Upgrade to a route with a SecurityPolicy is authenticated first', async () => {
    const before = upstream.seen.length;
    const denied = await upgrade('/secure/chat');
    expect(denied.head.split('\r\n')[0]).toMatch(/^HTTP\/1\.1 401 /);
    expect(upstream.seen.length).toBe(before);
    denied.socket.destroy();
    const allowed = await upgrade('/secure/chat', `x-api-key: ${API_KEY}\r\n`);
    expect(allowed.head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    allowed.socket.destroy();
  });
});
