import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { forward } from '../../../shared/proxy/forward.ts';
import type { HeaderMap } from '../../../shared/proxy/headers.ts';
import { forwardUpgrade, type Tunnel } from '../../../shared/proxy/upgrade.ts';
import type { InboundRequest } from '../request-context.ts';

export interface AppTarget {
  /** "http://127.0.0.1:<app port>". */
  origin: string;
  dispatcher: Dispatcher;
}

/** Hands the authorized request to the app on loopback, streaming both ways. */
export function forwardToApp(app: AppTarget) {
  return async function forwardToApp(r: InboundRequest): Promise<void> {
    r.upstream = app.origin;
    await forward(
      {
        dispatcher: app.dispatcher,
        origin: app.origin,
        method: r.method,
        path: r.query ? `${r.path}?${r.query}` : r.path,
        headers: appHeaders(r),
        body: r.client.hasBody ? r.req : null,
        timeoutMs: 0,
      },
      r.res,
    );
  };
}

/** Hands an authorized WebSocket (HTTP/1.1 Upgrade) to the app and joins the sockets on 101. */
export function upgradeToApp(app: AppTarget) {
  return async function upgradeToApp(r: InboundRequest): Promise<void> {
    r.upstream = app.origin;
    await forwardUpgrade(
      {
        dispatcher: app.dispatcher,
        origin: app.origin,
        method: r.method,
        path: r.query ? `${r.path}?${r.query}` : r.path,
        headers: appHeaders(r),
        protocol: r.req.headers.upgrade ?? 'websocket',
      },
      r.res as ServerResponse,
      r.tunnel as Tunnel,
    );
  };
}

function appHeaders(r: InboundRequest): HeaderMap {
  const headers = r.client.headers;
  if (r.client.host !== undefined) headers.host = r.client.host;
  if (r.client.forwardedFor !== undefined) headers['x-forwarded-for'] = r.client.forwardedFor;
  headers['x-forwarded-proto'] = r.connection.tls ? 'https' : 'http';
  headers['x-request-id'] = r.requestId;
  if (r.client.wantsTrailers) headers.te = 'trailers';
  return headers;
}
