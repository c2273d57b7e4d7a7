import type { Logger } from 'pino';
import { sendProblem, toProxyError } from '../../shared/proxy/problem.ts';
import { runLayers, type StackLayer } from '../../shared/proxy/layers.ts';
import type { SidecarRequest } from './request-context.ts';

/** The one place per stack where an error becomes a response (problem+json), or a reset. */
export function rescue(r: SidecarRequest, err: unknown, log: Logger): void {
  const e = toProxyError(err);
  r.flags = e.definition.flag;
  r.done = true;
  if (e.code === 'MG_ERR_INTERNAL') log.error({ err, request_id: r.requestId }, 'internal error');
  sendProblem(r.res, e, r.requestId, r.path ? { instance: r.path } : {});
}

/** Runs a stack on one request; whatever it throws, now or later, goes to `rescue`. */
export function runStack<R extends SidecarRequest>(
  layers: readonly StackLayer<R>[],
  r: R,
  log: Logger,
): void {
  try {
    const pending = runLayers(layers, r);
    if (pending) pending.catch((err: unknown) => rescue(r, err, log));
  } catch (err) {
    rescue(r, err, log);
  }
}
