// One request as it moves down a sidecar stack. Created with every field set, so the shape never
// changes on the hot path; layers fill in what they learn. Inbound: a peer calling the workload;
// outbound: the workload calling a Service.

import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { InboundDecision } from '../../shared/authz/evaluate.ts';
import type { MtlsMode } from '../../shared/authz/peer-authentication.ts';
import type { PeerIdentity } from '../../shared/identity/peer-verification.ts';
import type { ClientResponse } from '../../shared/proxy/forward.ts';
import type { ClientHeaders } from '../../shared/proxy/headers.ts';
import type { Tunnel } from '../../shared/proxy/upgrade.ts';
import type { RouteMatch } from '../../shared/routing/route-table.ts';
import type { MeshAttachment } from '../../shared/routing/snapshot-route-tables.ts';
import type { Destination, MeshRule, SidecarView } from './sidecar-view.ts';

/** What the inbound listener learned about a connection before any HTTP was read. */
export interface InboundConnection {
  /** The PeerAuthentication mode the connection was accepted under. */
  mtls: MtlsMode;
  /** The TLS socket for mTLS connections; undefined for plaintext. */
  tls: TLSSocket | undefined;
}

export abstract class SidecarRequest {
  /** Normalized path and raw query (without "?"). */
  path = '';
  query = '';
  /** Origin of the endpoint that got the request, for the log. */
  upstream = '';
  /** Response flags for the access log ("-" when none). */
  flags = '-';
  /** A layer already answered. */
  done = false;
  /** For an HTTP/1.1 Upgrade: the client's socket, to join to the upstream's on 101. */
  tunnel: Tunnel | undefined = undefined;
  /**
   * The peer's address, read when the request arrives (undici sets `req.socket = null` once it
   * has sent an IncomingMessage body upstream).
   */
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly localAddress: string;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ClientResponse,
    readonly view: SidecarView,
    readonly client: ClientHeaders,
    readonly requestId: string,
    readonly startedAt: number,
  ) {
    this.clientAddress = req.socket?.remoteAddress ?? '';
    this.clientPort = req.socket?.remotePort ?? 0;
    this.localAddress = req.socket?.localAddress ?? '';
  }

  get method(): string {
    return this.req.method ?? 'GET';
  }

  /** The client address, as ConsistentHash SourceIP reads it. */
  get clientIP(): string {
    return this.clientAddress;
  }

  /** Request header by lowercase name (first value). */
  header(name: string): string | undefined {
    const v = this.client.headers[name];
    return Array.isArray(v) ? v[0] : v;
  }

  addFlag(flag: string): void {
    this.flags = this.flags === '-' ? flag : `${this.flags},${flag}`;
  }
}

export class InboundRequest extends SidecarRequest {
  /** The caller's verified identity; undefined: plaintext (or DISABLE, where none is read). */
  peer: PeerIdentity | undefined = undefined;
  /** SHA-256 (hex) of the peer certificate's DER, for X-Forwarded-Client-Cert. */
  peerCertHash = '';
  decision: InboundDecision | undefined = undefined;

  constructor(
    req: IncomingMessage,
    res: ClientResponse,
    view: SidecarView,
    client: ClientHeaders,
    requestId: string,
    startedAt: number,
    readonly connection: InboundConnection,
  ) {
    super(req, res, view, client, requestId, startedAt);
  }
}

export class OutboundRequest extends SidecarRequest {
  destination: Destination | undefined = undefined;
  match: RouteMatch<MeshAttachment> | undefined = undefined;
  rule: MeshRule | undefined = undefined;
  /** The request target in origin form (absolute-form requests are rewritten to it). */
  target = '';
}
