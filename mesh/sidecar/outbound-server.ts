// The outbound listener (15001 on 127.0.0.1): the app sends plain HTTP to Services by name,
// through the sidecar as an HTTP proxy (HTTP_PROXY=http://127.0.0.1:15001) or to it directly
// with the Service in the Host header; the outbound stack takes it from there, and its upgrade
// variant takes WebSockets (HTTP/1.1 Upgrade) to a tunnel over mTLS to the peer.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ProxyError } from '../../shared/proxy/errors.ts';
import type { ClientResponse } from '../../shared/proxy/forward.ts';
import { readClientHeaders, requestIdFor } from '../../shared/proxy/headers.ts';
import type { StackLayer } from '../../shared/proxy/layers.ts';
import { sendProblem } from '../../shared/proxy/problem.ts';
import { upgradeResponse } from '../../shared/proxy/upgrade.ts';
import { logOutbound } from './access-log.ts';
import type { InflightRequests } from './inflight.ts';
import { OutboundRequest } from './request-context.ts';
import { runStack } from './rescue.ts';
import type { SidecarView } from './sidecar-view.ts';
import { trackRequest, type TrackDeps } from './track-request.ts';

export interface OutboundServerOptions {
  address: string;
  port: number;
  layers: readonly StackLayer<OutboundRequest>[];
  /** For HTTP/1.1 Upgrade requests; the last one joins the sockets (shared/proxy/upgrade.ts). */
  upgradeLayers: readonly StackLayer<OutboundRequest>[];
  view(): SidecarView | undefined;
  logger: Logger;
  accessLog: Logger;
  inflight: InflightRequests;
  now(): number;
}

export class OutboundServer {
  private readonly server: Server;
  /** Client sockets of open tunnels: the HTTP server no longer tracks them. */
  private readonly tunnels = new Set<Duplex>();
  private draining = false;
  private readonly tracking: TrackDeps<OutboundRequest>;

  constructor(private readonly options: OutboundServerOptions) {
    this.tracking = {
      direction: 'outbound',
      inflight: options.inflight,
      now: () => options.now(),
      log: (r, status, ms) => logOutbound(options.accessLog, r, status, ms),
    };
    this.server = createServer({
      headersTimeout: 10_000,
      requestTimeout: 300_000,
      keepAliveTimeout: 60_000,
      joinDuplicateHeaders: false,
    });
    this.server.on('request', (req: IncomingMessage, res) =>
      this.handle(req, res as unknown as ClientResponse),
    );
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.handleUpgrade(req, socket, head),
    );
    // HTTPS_PROXY tunnels (CONNECT) would carry TLS the sidecar cannot see into: the app is to
    // send plain HTTP and let the sidecar add mTLS.
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      const body = 'CONNECT is not supported: send plain http:// requests; the sidecar adds mTLS\n';
      socket.end(
        `HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    this.server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.address, () => {
        this.server.removeListener('error', reject);
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? a.port : this.options.port);
      });
    });
  }

  private handle(req: IncomingMessage, res: ClientResponse): void {
    const r = this.open(req, res);
    if (!r) return;
    if (this.draining) res.setHeader('connection', 'close');
    trackRequest(r, this.tracking);
    runStack(this.options.layers, r, this.options.logger);
  }

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const r = this.open(req, upgradeResponse(req, socket));
    if (!r) return;
    this.tunnels.add(socket);
    socket.once('close', () => this.tunnels.delete(socket));
    r.tunnel = { client: socket, head, onClosed: trackRequest(r, this.tracking) };
    runStack(this.options.upgradeLayers, r, this.options.logger);
  }

  /** The request, or undefined when there is no view to serve it with yet (answered here). */
  private open(req: IncomingMessage, res: ClientResponse): OutboundRequest | undefined {
    const client = readClientHeaders(req.rawHeaders);
    const requestId = requestIdFor(client.requestId);
    const view = this.options.view();
    if (!view) {
      sendProblem(
        res,
        new ProxyError(
          'MG_ERR_NO_ROUTE',
          'the sidecar has no configuration from the control plane yet',
        ),
        requestId,
      );
      return undefined;
    }
    return new OutboundRequest(req, res, view, client, requestId, this.options.now());
  }

  /** Stops accepting at once (see InboundServer.stopAccepting). */
  stopAccepting(): void {
    this.draining = true;
    this.server.close();
    this.server.closeIdleConnections();
  }

  destroyAll(): void {
    this.server.closeAllConnections();
    for (const s of this.tunnels) s.destroy();
    this.tunnels.clear();
  }
}
