// Sends one request upstream through an undici dispatcher and streams the answer into the
// client's response, with backpressure both ways (undici pauses when `res.write` says the client
// is slow; it reads the request body only as fast as the upstream takes it). Errors are raised as
// ProxyErrors; whether a response had started decides if the client gets a problem or a reset.

import { ServerResponse, type IncomingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError } from './errors.ts';
import { headerObject, rawResponseHeaders, responseHeaderMap, type HeaderMap } from './headers.ts';

/** What HTTP/1's ServerResponse and HTTP/2's compatibility response have in common. */
export interface ClientResponse {
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  readonly writableEnded: boolean;
  statusCode: number;
  writeHead(status: number, headers?: Record<string, string | string[] | number>): unknown;
  setHeader(name: string, value: string | number | readonly string[]): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  addTrailers(trailers: Record<string, string>): void;
  destroy(err?: Error): unknown;
  on(event: 'close' | 'drain' | 'finish', listener: () => void): unknown;
  once(event: 'close' | 'drain' | 'finish', listener: () => void): unknown;
  removeListener(event: 'close' | 'drain' | 'finish', listener: () => void): unknown;
}

export interface ForwardRequest {
  dispatcher: Dispatcher;
  origin: string;
  method: string;
  path: string;
  headers: HeaderMap;
  body: Readable | null;
  /** Abort the attempt when the full response has not arrived in this many ms; 0: no limit. */
  timeoutMs: number;
  /** An HTTP/1.1 Upgrade (the protocol, e.g. "websocket"): a 101 goes to `hooks.onUpgrade`. */
  upgrade?: string;
}

export interface ForwardResult {
  status: number;
  /** Response body bytes written to the client. */
  bytes: number;
}

export interface ForwardHooks {
  /** Last chance to change status-line headers before they go to the client. */
  responseHeaders?: (status: number, headers: HeaderMap) => void;
  /** Return true to discard this response and let the caller retry (only before anything is sent). */
  retryOn?: (status: number) => boolean;
  /**
   * The upstream switched protocols: the caller owns `socket` from now on. Any other answer to an
   * Upgrade request is relayed to the client like a normal response.
   */
  onUpgrade?: (status: number, headers: IncomingHttpHeaders, socket: Duplex) => void;
}

/** A response the caller chose to retry: nothing reached the client. */
export class RetryableResponse extends Error {
  constructor(readonly status: number) {
    super(`upstream answered ${status}`);
  }
}

export function forward(
  req: ForwardRequest,
  res: ClientResponse,
  hooks: ForwardHooks = NO_HOOKS,
): Promise<ForwardResult> {
  return new Promise((resolve, reject) => {
    const exchange = new ForwardExchange(req, res, hooks, resolve, reject);
    try {
      req.dispatcher.dispatch(
        req.upgrade
          ? {
              origin: req.origin,
              path: req.path,
              method: req.method,
              headers: req.headers,
              body: req.body,
              upgrade: req.upgrade,
              headersTimeout: 0,
              bodyTimeout: 0,
            }
          : // Our own timer covers the exchange; undici's would only cut it shorter.
            {
              origin: req.origin,
              path: req.path,
              method: req.method,
              headers: req.headers,
              body: req.body,
              headersTimeout: 0,
              bodyTimeout: 0,
            },
        exchange as unknown as Dispatcher.DispatchHandler,
      );
    } catch (err) {
      exchange.finish(classify(err as Error, req.origin));
    }
  });
}

const NO_HOOKS: ForwardHooks = {};

/**
 * One upstream exchange as undici's dispatch handler. A class rather than an object of closures:
 * the request path creates one object per request, not one function per callback.
 *
 * It implements the handler interface undici calls internally (onConnect, onHeaders, onData…)
 * rather than the newer onRequestStart/onResponseStart one, which undici adapts to the former by
 * wrapping every handler and parsing the raw header list into an object on each response. Here
 * the raw list goes to the client as it is, filtered, unless a hook wants to edit it.
 */
class ForwardExchange {
  private abortUpstream: ((err: Error) => void) | undefined = undefined;
  private resume: (() => void) | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private status = 0;
  private bytes = 0;
  private settled = false;
  private draining = false;

  constructor(
    private readonly req: ForwardRequest,
    private readonly res: ClientResponse,
    private readonly hooks: ForwardHooks,
    private readonly resolve: (r: ForwardResult) => void,
    private readonly reject: (err: Error) => void,
  ) {
    res.on('close', this.onClientClose);
    if (req.timeoutMs > 0) this.timer = setTimeout(this.onTimeout, req.timeoutMs);
  }

  /**
   * The client went away, or its response was ended by someone else (the gateway answers a
   * request whose ClientTrafficPolicy timeout expired): stop the upstream exchange too. Its own
   * end settles the exchange (and drops this listener) before the response's 'close'.
   */
  private readonly onClientClose = (): void => {
    this.abortUpstream?.(new ProxyError('MG_ERR_UPSTREAM_RESET', 'client closed the connection'));
  };

  private readonly onTimeout = (): void => {
    this.abortUpstream?.(
      new ProxyError(
        'MG_ERR_UPSTREAM_TIMEOUT',
        `no complete response from ${this.req.origin} within ${this.req.timeoutMs} ms`,
      ),
    );
  };

  private readonly onDrain = (): void => {
    this.draining = false;
    this.resume?.();
  };

  finish(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    this.res.removeListener('close', this.onClientClose);
    if (this.draining) this.res.removeListener('drain', this.onDrain);
    if (err) this.reject(err);
    else this.resolve({ status: this.status, bytes: this.bytes });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: informational, not forwarded
    if (this.hooks.retryOn?.(statusCode)) {
      this.abortUpstream?.(new RetryableResponse(statusCode));
      return true;
    }
    this.status = statusCode;
    this.resume = resume;
    const res = this.res;
    const edit = this.hooks.responseHeaders;
    // A flat [name, value, …] list goes straight into HTTP/1's header block; it is only safe when
    // nothing was set on the response before (writeHead would then set() each name, keeping one
    // value of a repeated header such as Set-Cookie).
    if (edit === undefined && res instanceof ServerResponse && res.getHeaderNames().length === 0)
      res.writeHead(statusCode, rawResponseHeaders(raw));
    else {
      const out = responseHeaderMap(raw);
      edit?.(statusCode, out);
      res.writeHead(statusCode, out);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.res.write(chunk) || this.draining) return true;
    this.draining = true;
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(trailers: Buffer[] | null): void {
    if (trailers && trailers.length > 0)
      this.res.addTrailers(headerObject(trailers) as Record<string, string>);
    this.res.end();
    this.finish();
  }

  onError(err: Error): void {
    this.finish(classify(err, this.req.origin));
  }

  onUpgrade(statusCode: number, raw: Buffer[], socket: Duplex): void {
    if (!this.hooks.onUpgrade) {
      socket.destroy();
      this.finish(new ProxyError('MG_ERR_UPSTREAM_RESET', `${this.req.origin} switched protocols`));
      return;
    }
    this.status = statusCode;
    this.hooks.onUpgrade(statusCode, headerObject(raw), socket);
    this.finish();
  }
}

const TLS_HANDSHAKE_ERROR =
  /^(ERR_SSL_|ERR_TLS_CERT|CERT_|UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED|MG_ERR_PEER_IDENTITY$)/;

/** Maps undici's and the socket's errors to the proxy's error codes. */
export function classify(err: Error, origin: string): Error {
  if (err instanceof ProxyError || err instanceof RetryableResponse) return err;
  const code = (err as { code?: string }).code ?? '';
  if (
    code === 'ECONNREFUSED' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'ENOTFOUND' ||
    code === 'EHOSTUNREACH' ||
    code === 'ECONNRESET_CONNECT'
  )
    return new ProxyError('MG_ERR_UPSTREAM_CONNECT', `cannot connect to ${origin}: ${code}`, {
      cause: err,
    });
  // An mTLS peer that failed the handshake (its chain, its SPIFFE id, or ours refused) was never
  // connected: Envoy counts it as a connection failure (UF) too.
  if (TLS_HANDSHAKE_ERROR.test(code))
    return new ProxyError(
      'MG_ERR_UPSTREAM_CONNECT',
      `TLS handshake with ${origin} failed: ${code}: ${err.message}`,
      { cause: err },
    );
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return new ProxyError('MG_ERR_UPSTREAM_TIMEOUT', `${origin} timed out (${code})`, {
      cause: err,
    });
  return new ProxyError(
    'MG_ERR_UPSTREAM_RESET',
    `${origin}: ${err.message}${code ? ` (${code})` : ''}`,
    { cause: err },
  );
}
