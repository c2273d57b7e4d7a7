// WebSocket (and other HTTP/1.1 Upgrade) requests: routed by the same layers as any request, then
// the upstream's 101 is relayed and the two sockets are joined.

import type { Duplex } from 'node:stream';
import { ProxyError } from '../shared/proxy/errors.ts';
import type { Dispatcher } from 'undici';
import { forward } from '../shared/proxy/forward.ts';
import { applyHeaderOps, type HeaderMap } from '../shared/proxy/headers.ts';
import type { UpstreamPools } from '../shared/proxy/upstream-pools.ts';
import type { Layer } from './edge-stack.ts';
import type { CompiledRule } from './edge-view.ts';
import { answerRedirect, failClosedRule, redirectRequest } from './layers/answer-rule-directly.ts';
import { authenticate } from './layers/authenticate.ts';
import { authorize } from './layers/authorize.ts';
import { enforceRequestLimits, type RequestLimits } from './layers/enforce-request-limits.ts';
import { upstreamHeaders, upstreamPath } from './layers/forward-to-backend.ts';
import { matchRoute } from './layers/match-route.ts';
import { normalizeRequestPath } from './layers/normalize-request-path.ts';
import { rejectMisdirected } from './layers/reject-misdirected.ts';
import type { EdgeRequest } from './request-context.ts';

/**
 * The layers an Upgrade request passes before it is joined to an upstream: the edge stack's,
 * minus CORS (browsers send no preflight for WebSockets); authentication and authorization
 * included, so an Upgrade cannot reach a protected route around them.
 */
export function upgradeStack(deps: { limits: RequestLimits }): Layer[] {
  return [
    enforceRequestLimits(deps.limits),
    normalizeRequestPath,
    rejectMisdirected,
    matchRoute,
    failClosedRule,
    authenticate,
    authorize,
    redirectRequest,
  ];
}

export async function proxyUpgrade(
  r: EdgeRequest,
  pools: UpstreamPools,
  client: Duplex,
  head: Buffer,
  onClosed: () => void,
  random: () => number = Math.random,
): Promise<void> {
  const rule = r.rule as CompiledRule;
  const backend = rule.backends.pick(random);
  if (!backend) throw new ProxyError('MG_ERR_NO_BACKEND', `${rule.id} has no backendRefs`);
  if (backend.invalid)
    throw new ProxyError('MG_ERR_INVALID_BACKEND', `${backend.key}: ${backend.invalid}`);
  if (backend.failure) throw new ProxyError(backend.failure.code, backend.failure.detail);
  if (backend.redirect) return answerRedirect(r, backend.redirect);
  const endpoint = backend.endpoints.pick();
  if (!endpoint)
    throw new ProxyError('MG_ERR_NO_HEALTHY_UPSTREAM', `${backend.key} has no ready endpoint`);
  r.upstream = endpoint.origin;
  // The same request filters as any forwarded request: header modifiers, URLRewrite, X-Forwarded-*.
  const headers = upstreamHeaders(r, rule, backend);
  const path = upstreamPath(r, rule, backend);
  const protocol = r.req.headers.upgrade ?? 'websocket';
  const addResponseHeaders = (h: HeaderMap) => {
    if (rule.responseHeaders) applyHeaderOps(h, rule.responseHeaders);
    if (backend.responseHeaders) applyHeaderOps(h, backend.responseHeaders);
  };
  // A refusal (401, 403, 426…) is relayed as the upstream's answer; only a 101 joins the sockets.
  await forward(
    {
      dispatcher: pools.get(endpoint.origin) as Dispatcher,
      origin: endpoint.origin,
      method: r.method,
      path,
      headers,
      body: null,
      timeoutMs: 0,
      upgrade: protocol,
    },
    r.res,
    {
      responseHeaders: (_status, h) => addResponseHeaders(h),
      onUpgrade: (_status, upstreamHeaders, upstream) => {
        r.done = true;
        const h: HeaderMap = {};
        for (const [name, value] of Object.entries(upstreamHeaders))
          if (value !== undefined) h[name] = value;
        addResponseHeaders(h);
        joinSockets(r, client, upstream, h, head, onClosed);
      },
    },
  );
}

/** Writes the 101 to the client and pipes the two connections into each other until either closes. */
function joinSockets(
  r: EdgeRequest,
  client: Duplex,
  upstream: Duplex,
  headers: HeaderMap,
  head: Buffer,
  onClosed: () => void,
): void {
  const lines = ['HTTP/1.1 101 Switching Protocols'];
  for (const [name, value] of Object.entries(headers))
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  // The ServerResponse only served for answers without upgrade: take the socket back first.
  (r.res as unknown as { detachSocket(s: unknown): void }).detachSocket(client);
  client.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  upstream.pipe(client).pipe(upstream);
  let closed = false;
  const close = () => {
    upstream.destroy();
    client.destroy();
    if (!closed) {
      closed = true;
      onClosed();
    }
  };
  upstream.on('error', close);
  client.on('error', close);
  upstream.on('close', close);
  client.on('close', close);
  r.res.statusCode = 101;
}
