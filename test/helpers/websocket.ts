// WebSocket without a WebSocket library: an upstream that answers the Upgrade with 101 (RFC 6455
// §4.2.2 accept key) and echoes every byte it gets, a raw-socket client that sends the Upgrade and
// reads the answer's head, and masked text frames; so a test sees the handshake and the raw frames
// pass both ways untouched.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** The Sec-WebSocket-Key every client here sends, and the accept key it expects back. */
export const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const ACCEPT = createHash('sha1')
  .update(KEY + WS_GUID)
  .digest('base64');

export interface UpgradeSeen {
  url: string;
  headers: IncomingMessage['headers'];
}

export interface WebSocketEcho {
  server: Server;
  port: number;
  /** Every Upgrade request it got, in order. */
  seen: UpgradeSeen[];
  /** Its open sockets. */
  sockets: Set<Duplex>;
  close(): Promise<void>;
}

/** An upstream that accepts every WebSocket upgrade and echoes raw bytes; /ws/refuse answers 403. */
export async function startWebSocketEcho(): Promise<WebSocketEcho> {
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
export function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/**
 * Opens a raw connection to 127.0.0.1:`port` and sends a WebSocket Upgrade for `path` with `host`;
 * resolves with the head of the answer and the bytes after it.
 */
export function sendUpgrade(
  port: number,
  path: string,
  host: string,
  extraHeaders = '',
): Promise<{ socket: Socket; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
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
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
    );
  });
}

/** The next `n` bytes from `socket` (counting `already`, what came with the answer's head). */
export function readBytes(
  socket: Socket,
  n: number,
  already: Buffer = Buffer.alloc(0),
): Promise<Buffer> {
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
