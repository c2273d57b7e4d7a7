// The inbound listener: peers connect here (15006 by default) and the PeerAuthentication mode of
// the app port decides, per connection, what is accepted before any HTTP is read:
//   STRICT      TLS with a client certificate that chains to the mesh root, nothing else;
//   PERMISSIVE  the first bytes are sniffed: a TLS ClientHello goes to mTLS (still with a verified
//               client certificate), anything else is read as plaintext HTTP;
//   DISABLE     plaintext HTTP only.
// Accepted connections, TLS or not, are served by one HTTP server running the inbound stack (its
// upgrade variant for WebSockets: authorized the same way, then a tunnel to the app). On
// certificate rotation the TLS server swaps its secure context (setSecureContext): connections
// already open keep the one they were made with, new ones get the new certificate.

import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
} from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import {
  isTlsClientHello,
  mtlsServerOptions,
  peerIdentityOfSocket,
  secureContextOptions,
  type MtlsCredentials,
} from '../../shared/identity/peer-verification.ts';
import { ProxyError } from '../../shared/proxy/errors.ts';
import type { ClientResponse } from '../../shared/proxy/forward.ts';
import { readClientHeaders, requestIdFor } from '../../shared/proxy/headers.ts';
import type { StackLayer } from '../../shared/proxy/layers.ts';
import { sendProblem } from '../../shared/proxy/problem.ts';
import { upgradeResponse } from '../../shared/proxy/upgrade.ts';
import { logInbound } from './access-log.ts';
import type { InflightRequests } from './inflight.ts';
import { InboundRequest, type InboundConnection } from './request-context.ts';
import { runStack } from './rescue.ts';
import { mtlsHandshakes, plaintextConnections } from './sidecar-metrics.ts';
import type { SidecarView } from './sidecar-view.ts';
import { trackRequest, type TrackDeps } from './track-request.ts';

/** A client that sends nothing (or not a whole TLS handshake) is cut off after this long. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface InboundServerOptions {
  address: string;
  port: number;
  layers: readonly StackLayer<InboundRequest>[];
  /** For HTTP/1.1 Upgrade requests; the last one joins the sockets (shared/proxy/upgrade.ts). */
  upgradeLayers: readonly StackLayer<InboundRequest>[];
  view(): SidecarView | undefined;
  logger: Logger;
  accessLog: Logger;
  inflight: InflightRequests;
  /** Monotonic ms. */
  now(): number;
}

export class InboundServer {
  private readonly listener: NetServer;
  private tls: TlsServer | undefined;
  private readonly http: Server;
  private readonly sockets = new Set<Socket>();
  private readonly connections = new WeakMap<Socket, InboundConnection>();
  private draining = false;
  private readonly tracking: TrackDeps<InboundRequest>;

  constructor(private readonly options: InboundServerOptions) {
    this.tracking = {
      direction: 'inbound',
      inflight: options.inflight,
      now: () => options.now(),
      log: (r, status, ms) => logInbound(options.accessLog, r, status, ms),
    };
    this.listener = createNetServer((socket) => this.accept(socket));
    this.http = createHttpServer({
      headersTimeout: 10_000,
      requestTimeout: 300_000,
      keepAliveTimeout: 60_000,
      joinDuplicateHeaders: false,
    });
    this.http.on('request', (req: IncomingMessage, res) =>
      this.handle(req, res as unknown as ClientResponse),
    );
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.handleUpgrade(req, socket, head),
    );
    this.http.on('clientError', (_err, socket: Socket) => socket.destroy());
  }

  /** The first credentials create the TLS server; later ones replace its secure context. */
  setCredentials(credentials: MtlsCredentials): void {
    if (this.tls) {
      this.tls.setSecureContext(secureContextOptions(credentials));
      return;
    }
    const tls = createTlsServer({
      ...mtlsServerOptions(credentials),
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    tls.on('secureConnection', (socket: TLSSocket) => {
      mtlsHandshakes.inc({ direction: 'inbound', result: 'ok' });
      // Read now: Node may stop reporting the peer certificate later (peerIdentityOfSocket).
      peerIdentityOfSocket(socket);
      const view = this.options.view();
      this.connections.set(socket, { mtls: view?.mtls ?? 'STRICT', tls: socket });
      this.http.emit('connection', socket);
    });
    tls.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      mtlsHandshakes.inc({ direction: 'inbound', result: 'failed' });
      this.options.logger.debug(
        { error: err.code ?? err.message, client: socket.remoteAddress },
        'inbound mTLS handshake refused',
      );
      socket.destroy();
    });
    this.tls = tls;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(this.options.port, this.options.address, () => {
        this.listener.removeListener('error', reject);
        const a = this.listener.address();
        resolve(typeof a === 'object' && a ? a.port : this.options.port);
      });
    });
  }

  private accept(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    const view = this.options.view();
    if (this.draining || !view) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    switch (view.mtls) {
      case 'DISABLE':
        this.acceptPlaintext(socket, 'DISABLE');
        return;
      case 'STRICT':
        this.acceptTls(socket);
        return;
      case 'PERMISSIVE':
        void sniff(socket).then((kind) => {
          if (kind === 'tls') this.acceptTls(socket);
          else if (kind === 'plaintext') this.acceptPlaintext(socket, 'PERMISSIVE');
          else socket.destroy();
        });
    }
  }

  private acceptTls(socket: Socket): void {
    if (!this.tls) {
      socket.destroy(); // no workload certificate yet
      return;
    }
    this.tls.emit('connection', socket);
  }

  private acceptPlaintext(socket: Socket, mode: 'PERMISSIVE' | 'DISABLE'): void {
    plaintextConnections.inc();
    this.connections.set(socket, { mtls: mode, tls: undefined });
    this.http.emit('connection', socket);
    // The sniffed bytes were put back into the socket's buffer: let the HTTP parser have them.
    socket.resume();
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
    r.tunnel = { client: socket, head, onClosed: trackRequest(r, this.tracking) };
    runStack(this.options.upgradeLayers, r, this.options.logger);
  }

  /** The request, or undefined when there is nothing to serve it with (answered here). */
  private open(req: IncomingMessage, res: ClientResponse): InboundRequest | undefined {
    const client = readClientHeaders(req.rawHeaders);
    const requestId = requestIdFor(client.requestId);
    const view = this.options.view();
    const connection = this.connections.get(req.socket);
    if (!view || !connection) {
      sendProblem(
        res,
        new ProxyError('MG_ERR_NO_HEALTHY_UPSTREAM', 'the sidecar has no configuration'),
        requestId,
      );
      return undefined;
    }
    return new InboundRequest(req, res, view, client, requestId, this.options.now(), connection);
  }

  /**
   * Stops accepting connections at once; idle ones are closed, busy ones get `connection: close`
   * on their next answer. (Not waiting for the listener's close callback: it waits for every
   * connection, which is what the drain period is for.)
   */
  stopAccepting(): void {
    this.draining = true;
    this.listener.close();
    this.http.closeIdleConnections();
  }

  /** Closes what is left (after the drain period). */
  destroyAll(): void {
    this.http.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

/**
 * PERMISSIVE: reads the first bytes, puts them back, and says whether they start a TLS handshake
 * (undefined: the peer closed or sent nothing in time).
 */
function sniff(socket: Socket): Promise<'tls' | 'plaintext' | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (kind: 'tls' | 'plaintext' | undefined, head?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      if (head) socket.unshift(head);
      resolve(kind);
    };
    const onReadable = () => {
      // isTlsClientHello needs the record type and the major version: 3 bytes.
      const head = (socket.read(3) as Buffer | null) ?? (socket.readableEnded ? null : undefined);
      if (head === undefined) return;
      if (head === null) {
        const rest = socket.read() as Buffer | null;
        done(rest && rest.length > 0 ? 'plaintext' : undefined, rest ?? undefined);
        return;
      }
      done(isTlsClientHello(head) ? 'tls' : 'plaintext', head);
    };
    const onEnd = () => done(undefined);
    const timer = setTimeout(() => {
      done(undefined);
      socket.destroy();
    }, FIRST_BYTES_TIMEOUT_MS);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
