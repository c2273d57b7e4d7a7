import type { Dispatcher } from 'undici';
import { forward } from '../../../shared/proxy/forward.ts';
import type { InboundRequest } from '../request-context.ts';

export interface AppTarget {
  /** "http://127.0.0.1:<app port>". */
  origin: string;
  dispatcher: Dispatcher;
}

/** Hands the authorized request to the app on loopback, streaming both ways. */
export function forwardToApp(app: AppTarget) {
  return async function forwardToApp(r: InboundRequest): Promise<void> {
    const headers = r.client.headers;
    if (r.client.host !== undefined) headers.host = r.client.host;
    if (r.client.forwardedFor !== undefined) headers['x-forwarded-for'] = r.client.forwardedFor;
    headers['x-forwarded-proto'] = r.connection.tls ? 'https' : 'http';
    headers['x-request-id'] = r.requestId;
    if (r.client.wantsTrailers) headers.te = 'trailers';
    r.upstream = app.origin;
    await forward(
      {
        dispatcher: app.dispatcher,
        origin: app.origin,
        method: r.method,
        path: r.query ? `${r.path}?${r.query}` : r.path,
        headers,
        body: r.client.hasBody ? r.req : null,
        timeoutMs: 0,
      },
      r.res,
    );
  };
}
