// WebSocket (and other HTTP/1.1 Upgrade) requests: routed by the same layers as any request, then
// the upstream's 101 is relayed and the two sockets are joined.

import type { Duplex } from 'node:stream';
import { ProxyError } from '../shared/proxy/errors.ts';
import { classify } from '../shared/proxy/forward.ts';
import type { UpstreamPools } from '../shared/proxy/upstream-pools.ts';
import type { Layer } from './edge-stack.ts';
import type { CompiledRule } from './edge-view.ts';
import { failClosedRule } from './layers/answer-rule-directly.ts';
import { enforceRequestLimits, type RequestLimits } from './layers/enforce-request-limits.ts';
import { matchRoute } from './layers/match-route.ts';
import { normalizeRequestPath } from './layers/normalize-request-path.ts';
import { rejectMisdirected } from './layers/reject-misdirected.ts';
import type { EdgeRequest } from './request-context.ts';

export function upgradeStack(deps: { limits: RequestLimits }): Layer[] {
  return [
    enforceRequestLimits(deps.limits),
    normalizeRequestPath,
    matchRoute,
    rejectMisdirected,
    failClosedRule,
  ];
}

export async function proxyUpgrade(
  r: EdgeRequest,
  pools: UpstreamPools,
  client: Duplex,
  head: Buffer,
  onClosed: () => void,
): Promise<void> {
  const rule = r.rule as CompiledRule;
  const backend = rule.backends.pick(Math.random);
  if (!backend) throw new ProxyError('MG_ERR_NO_BACKEND', `${rule.id} has no backendRefs`);
  if (backend.invalid)
    throw new ProxyError('MG_ERR_INVALID_BACKEND', `${backend.key}: ${backend.invalid}`);
  const endpoint = backend.endpoints.pick();
  if (!endpoint)
    throw new ProxyError('MG_ERR_NO_HEALTHY_UPSTREAM', `${backend.key} has no ready endpoint`);
  r.upstream = endpoint.origin;
  const headers = {
    ...r.client.headers,
    host: rule.rewrite?.hostname ?? (r.client.host as string),
    'x-forwarded-for': r.clientAddress,
    'x-forwarded-proto': r.scheme,
    'x-request-id': r.requestId,
  };
  const protocol = r.req.headers.upgrade ?? 'websocket';
  let upgraded: { headers: Record<string, string | string[] | undefined>; socket: Duplex };
  try {
    upgraded = (await pools.get(endpoint.origin).upgrade({
      path: r.query ? `${r.path}?${r.query}` : r.path,
      method: r.method,
      headers,
      protocol,
    })) as typeof upgraded;
  } catch (err) {
    throw classify(err as Error, endpoint.origin);
  }
  r.done = true;
  const upstream = upgraded.socket;
  const lines = ['HTTP/1.1 101 Switching Protocols'];
  for (const [name, value] of Object.entries(upgraded.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  // The ServerResponse only served for errors: take the socket back before writing raw bytes.
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
