import { compileCors, type CorsPolicy } from '../../shared/proxy/cors.ts';
import type { EdgeRequest } from '../request-context.ts';

const compiled = new WeakMap<object, CorsPolicy>();

/** Answers CORS preflights of a rule with a CORS filter; actual requests get headers on the way back. */
export function applyCors(r: EdgeRequest): void {
  const filter = r.rule?.cors;
  if (!filter) return;
  const origin = r.header('origin');
  if (!origin) return;
  let policy = compiled.get(filter);
  if (!policy) compiled.set(filter, (policy = compileCors(filter)));
  const requestMethod = r.header('access-control-request-method');
  if (r.method === 'OPTIONS' && requestMethod) {
    r.done = true;
    r.res.writeHead(200, {
      ...policy.preflightHeaders(origin, requestMethod, r.header('access-control-request-headers')),
      'x-request-id': r.requestId,
      'content-length': '0',
    });
    r.res.end();
    return;
  }
  r.corsHeaders = policy.responseHeaders(origin);
}
