// HTTP/1.1 Upgrade (WebSocket) requests, for every stack: the edge, the sidecar's outbound and its
// inbound. An Upgrade runs its stack's layers like any request, answering on a ServerResponse bound
// to the raw socket, so an error, a redirect, a 429 or an authorization denial goes out as a normal
// response and ends the connection. The last layer sends the Upgrade upstream: any answer but 101
// is relayed as it is; a 101 is written to the client and the two sockets are joined until either
// closes. Retries and timeouts do not apply to a tunnel: once the 101 is out, the connection
// belongs to its two peers for as long as they keep it (a refusal is not retried either).

import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { forward } from './forward.ts';
import type { HeaderMap } from './headers.ts';

/** What the server's 'upgrade' event handed over, and who to tell when the tunnel closes. */
export interface Tunnel {
  /** The client's socket. */
  client: Duplex;
  /** Bytes the client sent after the request head (the server already read them). */
  head: Buffer;
  /** Once, when a tunnel that opened closes (an answer without tunnel ends the response instead). */
  onClosed: () => void;
}

/** A response on the raw socket of an Upgrade request; an answer sent on it ends the connection. */
export function upgradeResponse(req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new ServerResponse(req);
  res.assignSocket(socket as Socket);
  res.shouldKeepAlive = false;
  res.once('finish', () => socket.end());
  return res;
}

export interface UpgradeRequest {
  dispatcher: Dispatcher;
  origin: string;
  method: string;
  path: string;
  /** Without hop-by-hop headers: undici sends `Connection: upgrade` and `Upgrade: <protocol>`. */
  headers: HeaderMap;
  /** The Upgrade header's value, e.g. "websocket". */
  protocol: string;
}

/**
 * Sends the Upgrade upstream. True: it switched protocols and the tunnel is open (`onClosed`
 * follows); false: another answer (401, 403, 426…) was relayed to the client and the response ended.
 * `responseHeaders` may change the headers of either, the 101 included.
 */
export async function forwardUpgrade(
  req: UpgradeRequest,
  res: ServerResponse,
  tunnel: Tunnel,
  responseHeaders?: (status: number, headers: HeaderMap) => void,
): Promise<boolean> {
  let upgraded = false;
  await forward(
    {
      dispatcher: req.dispatcher,
      origin: req.origin,
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: null,
      timeoutMs: 0,
      upgrade: req.protocol,
    },
    res,
    {
      ...(responseHeaders ? { responseHeaders } : {}),
      onUpgrade: (status, upstreamHeaders, upstream) => {
        upgraded = true;
        const h: HeaderMap = {};
        for (const [name, value] of Object.entries(upstreamHeaders))
          if (value !== undefined) h[name] = value;
        responseHeaders?.(status, h);
        joinSockets(res, tunnel, upstream, h);
      },
    },
  );
  return upgraded;
}

/** Writes the 101 to the client and pipes the two connections into each other until either closes. */
function joinSockets(
  res: ServerResponse,
  tunnel: Tunnel,
  upstream: Duplex,
  headers: HeaderMap,
): void {
  const { client, head } = tunnel;
  // Headers the layers set on the response (the RateLimit fields) go out with the 101 too.
  const all: Record<string, unknown> = { ...res.getHeaders(), ...headers };
  const lines = ['HTTP/1.1 101 Switching Protocols'];
  for (const [name, value] of Object.entries(all))
    if (value !== undefined)
      for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${String(v)}`);
  // The ServerResponse only served for answers without upgrade: take the socket back first.
  res.detachSocket(client as Socket);
  res.statusCode = 101;
  client.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  upstream.pipe(client).pipe(upstream);
  let closed = false;
  const close = () => {
    upstream.destroy();
    client.destroy();
    if (!closed) {
      closed = true;
      tunnel.onClosed();
    }
  };
  upstream.on('error', close);
  client.on('error', close);
  upstream.on('close', close);
  client.on('close', close);
}
