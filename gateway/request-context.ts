import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Readable } from 'node:stream';
import type { ClientHeaders } from '../shared/proxy/headers.ts';
import type { JwtPrincipal } from './auth/jwt-authenticator.ts';
import type { ClientResponse } from '../shared/proxy/forward.ts';
import type { RouteMatch } from '../shared/routing/route-table.ts';
import type { CompiledRule, EdgePort, EdgeView, RouteHit } from './edge-view.ts';

export type ClientRequest = IncomingMessage | Http2ServerRequest;

/**
 * One request as it moves down the edge stack. Created with every field set, so its shape never
 * changes on the hot path; layers fill in what they learn.
 */
export class EdgeRequest {
  /** Normalized path and the raw query (without "?"), set by normalizeRequestPath. */
  path = '';
  query = '';
  match: RouteMatch<RouteHit> | undefined = undefined;
  rule: CompiledRule | undefined = undefined;
  /** Origin of the upstream endpoint that got the request, for the log. */
  upstream = '';
  /** Response flags for the access log ("-" when none). */
  flags = '-';
  /** Whether a layer already answered. */
  done = false;
  /** CORS headers to add to the upstream's response. */
  corsHeaders: Record<string, string> | undefined = undefined;
  /**
   * The body to send upstream when a layer had to read the client's (OpenAPI body validation):
   * what it read, then the rest. Undefined: the client's own stream.
   */
  body: Readable | undefined = undefined;
  /** What authentication established, for authorization and rate limiting. */
  readonly principal: { jwt?: JwtPrincipal; apiKeyClient?: string } = {};
  private resolvedClientIP: string | undefined = undefined;
  /**
   * The peer's address, read when the request arrives: once undici has sent an IncomingMessage
   * body upstream it sets `req.socket = null` (undici core/util destroy), so reading it later,
   * as the access log does when the response finishes, would throw.
   */
  readonly clientAddress: string;

  constructor(
    readonly req: ClientRequest,
    readonly res: ClientResponse,
    readonly view: EdgeView,
    readonly port: EdgePort,
    readonly scheme: 'http' | 'https',
    readonly client: ClientHeaders,
    readonly requestId: string,
    readonly startedAt: number,
  ) {
    this.clientAddress = req.socket?.remoteAddress ?? '';
  }

  get method(): string {
    return this.req.method ?? 'GET';
  }

  /** The client as ClientTrafficPolicy's clientIPDetection sees it (the peer when none). */
  get clientIP(): string {
    this.resolvedClientIP ??= this.port.clientIP(this.clientAddress, this.client.forwardedFor);
    return this.resolvedClientIP;
  }

  /** Request header by lowercase name (first value). */
  header(name: string): string | undefined {
    const v = this.client.headers[name];
    return Array.isArray(v) ? v[0] : v;
  }
}
