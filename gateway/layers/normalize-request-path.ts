import { ProxyError } from '../../shared/proxy/errors.ts';
import { normalizePath } from '../../shared/routing/normalize-path.ts';
import type { EdgeRequest } from '../request-context.ts';

/**
 * Normalizes the path once, before routing, so that routing, authorization and the upstream all
 * see the same path; UnescapeAndRedirect answers 301 to the unescaped form instead.
 */
export function normalizeRequestPath(r: EdgeRequest): void {
  const result = normalizePath(r.req.url ?? '/', r.port.pathSettings);
  if (!result.ok) throw new ProxyError('MG_ERR_BAD_PATH', result.reason);
  r.path = result.path;
  r.query = result.query;
  if (result.redirect) {
    r.done = true;
    r.res.writeHead(301, {
      location: result.query ? `${result.path}?${result.query}` : result.path,
      'x-request-id': r.requestId,
      'content-length': '0',
    });
    r.res.end();
  }
}
