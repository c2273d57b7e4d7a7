import type { CorsPolicy } from '../../shared/proxy/cors.ts';
import type { EdgeRequest } from '../request-context.ts';

/** Answers CORS preflights of a rule with CORS (its filter or its SecurityPolicy's); actual requests get headers on the way back. */
export function applyCors(r: EdgeRequest): void {
  const policy = r.rule?.cors;
  if (policy) answerCors(r, policy);
}

/** A rule's or a backendRef's CORS: answers a preflight, or notes the headers for the response. */
export function answerCors(r: EdgeRequest, policy: CorsPolicy): void {
  const origin = r.header('origin');
  if (!origin) return;
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
