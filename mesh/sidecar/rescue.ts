import type { Logger } from 'pino';
import { sendProblem, toProxyError } from '../../shared/proxy/problem.ts';
import type { InboundRequest, OutboundRequest } from './request-context.ts';

/** The one place per stack where an error becomes a response (problem+json), or a reset. */
export function rescue(r: InboundRequest | OutboundRequest, err: unknown, log: Logger): void {
  const e = toProxyError(err);
  r.flags = e.definition.flag;
  r.done = true;
  if (e.code === 'MG_ERR_INTERNAL') log.error({ err, request_id: r.requestId }, 'internal error');
  sendProblem(r.res, e, r.requestId, r.path ? { instance: r.path } : {});
}
