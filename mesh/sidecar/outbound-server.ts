// The outbound listener (15001 on 127.0.0.1): the app sends plain HTTP to Services by name,
// through the sidecar as an HTTP proxy (HTTP_PROXY=http://127.0.0.1:15001) or to it directly
// with the Service in the Host header; the outbound stack takes it from there.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ProxyError } from '../../shared/proxy/errors.ts';
import type { ClientResponse } from '../../shared/proxy/forward.ts';
import { readClientHeaders, requestIdFor } from '../../shared/proxy/headers.ts';
import { runLayers, type StackLayer } from '../../shared/proxy/layers.ts';
import { sendProblem } from '../../shared/proxy/problem.ts';
import { logOutbound } from './access-log.ts';
import type { InflightRequests } from './inflight.ts';
import { OutboundRequest } from './request-context.ts';
import { rescue } from './rescue.ts';
import { requestDuration, requestsTotal } from './sidecar-metrics.ts';
import type { SidecarView } from './sidecar-view.ts';

export interface OutboundServerOptions {
  address: string;
  port: number;
  layers: readonly StackLayer<OutboundRequest>[];
  view(): SidecarView | undefined;
  logger: Logger;
  accessLog: Logger;
  inflight: InflightRequests;
  now(): number;
}

export class OutboundServer {
  private readonly server: Server;
  private draining = false;

  constructor(private readonly options: OutboundServerOptions) {
    this.server = createServer({
      headersTimeout: 10_000,
      requestTimeout: 300_000,
      keepAliveTimeout: 60_000,
      joinDuplicateHeaders: false,
    });
    this.server.on('request', (req: IncomingMessage, res) =>
      this.handle(req, res as unknown as ClientResponse),
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
      return;
    }
    if (this.draining) res.setHeader('connection', 'close');
    const r = new OutboundRequest(req, res, view, client, requestId, this.options.now());
    const end = this.options.inflight.begin();
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      end();
      const status = r.res.headersSent ? r.res.statusCode : 0;
      if (!r.res.writableFinished && r.flags === '-') r.flags = 'DC';
      const ms = this.options.now() - r.startedAt;
      requestsTotal.inc({ direction: 'outbound', status, flags: r.flags });
      requestDuration.observe({ direction: 'outbound' }, ms / 1000);
      logOutbound(this.options.accessLog, r, status, ms);
    };
    res.once('finish', finish);
    res.once('close', finish);
    try {
      const pending = runLayers(this.options.layers, r);
      if (pending) pending.catch((err: unknown) => rescue(r, err, this.options.logger));
    } catch (err) {
      rescue(r, err, this.options.logger);
    }
  }

  /** Stops accepting at once (see InboundServer.stopAccepting). */
  stopAccepting(): void {
    this.draining = true;
    this.server.close();
    this.server.closeIdleConnections();
  }

  destroyAll(): void {
    this.server.closeAllConnections();
  }
}
