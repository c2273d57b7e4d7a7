// One JSON line per request (pino, like the gateway's), naming the route rule that served it;
// inbound lines also name the caller's principal and the authorization decision.

import pino, { type Logger } from 'pino';
import type { InboundRequest, OutboundRequest } from './request-context.ts';

/**
 * The access logger: asynchronous, so the request path never waits on the write, but without
 * the gateway's 4 KB batching: a line goes out as soon as the write before it is done (lines
 * that pile up meanwhile go out together), so a quiet sidecar's log is current.
 */
export function createAccessLogger(target: 'stdout' | 'off' | string): Logger {
  if (target === 'off') return pino({ enabled: false });
  const dest = pino.destination({
    dest: target === 'stdout' ? 1 : target,
    sync: false,
    minLength: 0,
  });
  return pino(
    {
      name: 'meshgate-sidecar',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest,
  );
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

export function logInbound(
  log: Logger,
  r: InboundRequest,
  status: number,
  durationMs: number,
): void {
  const d = r.decision;
  log.info(
    {
      direction: 'inbound',
      request_id: r.requestId,
      method: r.method,
      host: r.client.host,
      path: r.req.url,
      status,
      route: 'inbound',
      mtls: r.connection.tls ? 'mTLS' : 'plaintext',
      mode: d?.mtls ?? r.view.mtls,
      peer: r.peer?.principal ?? '-',
      authz: d ? (d.allow ? 'allow' : 'deny') : '-',
      ...(d?.decidedBy
        ? { policy: d.decidedBy.policy, rule: d.decidedBy.rule, action: d.decidedBy.action }
        : {}),
      reason: d?.reason ?? '-',
      upstream: r.upstream || '-',
      flags: r.flags,
      duration_ms: round(durationMs),
      client: r.clientAddress,
    },
    'request',
  );
}

export function logOutbound(
  log: Logger,
  r: OutboundRequest,
  status: number,
  durationMs: number,
): void {
  log.info(
    {
      direction: 'outbound',
      request_id: r.requestId,
      method: r.method,
      host: r.client.host,
      path: r.req.url,
      status,
      destination: r.destination?.key ?? '-',
      route: r.rule?.id ?? '-',
      upstream: r.upstream || '-',
      flags: r.flags,
      duration_ms: round(durationMs),
    },
    'request',
  );
}
