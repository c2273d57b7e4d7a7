// Sends one request upstream through an undici dispatcher and streams the answer into the
// client's response, with backpressure both ways (undici pauses when `res.write` says the client
// is slow; it reads the request body only as fast as the upstream takes it). Errors are raised as
// ProxyErrors; whether a response had started decides if the client gets a problem or a reset.

import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError } from './errors.ts';
import { responseHeadersForClient, type HeaderMap } from './headers.ts';

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
  hooks: ForwardHooks = {},
): Promise<ForwardResult> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let timer: NodeJS.Timeout | undefined;
    let status = 0;
    let bytes = 0;
    let settled = false;
    let onDrain: (() => void) | undefined;

    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      res.removeListener('close', onClientClose);
      if (onDrain) res.removeListener('drain', onDrain);
      if (err) reject(err);
      else resolve({ status, bytes });
    };
    // The client went away: stop the upstream exchange too.
    const onClientClose = () => {
      if (!res.writableFinished)
        controller?.abort(new ProxyError('MG_ERR_UPSTREAM_RESET', 'client closed the connection'));
    };
    res.on('close', onClientClose);
    if (req.timeoutMs > 0)
      timer = setTimeout(() => {
        controller?.abort(
          new ProxyError(
            'MG_ERR_UPSTREAM_TIMEOUT',
            `no complete response from ${req.origin} within ${req.timeoutMs} ms`,
          ),
        );
      }, req.timeoutMs);

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(c, statusCode, headers) {
        if (statusCode < 200) return; // 1xx: informational, not forwarded
        if (hooks.retryOn?.(statusCode)) {
          c.abort(new RetryableResponse(statusCode));
          return;
        }
        status = statusCode;
        const out = responseHeadersForClient(headers);
        hooks.responseHeaders?.(statusCode, out);
        res.writeHead(statusCode, out as Record<string, string | string[]>);
      },
      onResponseData(c, chunk) {
        bytes += chunk.length;
        if (!res.write(chunk)) {
          c.pause();
          onDrain ??= () => controller?.resume();
          res.once('drain', onDrain);
        }
      },
      onResponseEnd(_c, trailers) {
        if (trailers && Object.keys(trailers).length > 0)
          res.addTrailers(trailers as Record<string, string>);
        res.end();
        finish();
      },
      onResponseError(_c, err) {
        finish(classify(err, req.origin));
      },
      onRequestUpgrade(_c, statusCode, headers, socket) {
        if (!hooks.onUpgrade) {
          socket.destroy();
          finish(new ProxyError('MG_ERR_UPSTREAM_RESET', `${req.origin} switched protocols`));
          return;
        }
        status = statusCode;
        hooks.onUpgrade(statusCode, headers as IncomingHttpHeaders, socket);
        finish();
      },
    };
    try {
      req.dispatcher.dispatch(
        {
          origin: req.origin,
          path: req.path,
          method: req.method,
          headers: req.headers,
          body: req.body,
          ...(req.upgrade ? { upgrade: req.upgrade } : {}),
          // Our own timer covers the exchange; undici's would only cut it shorter.
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        handler,
      );
    } catch (err) {
      finish(classify(err as Error, req.origin));
    }
  });
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
