import { ProxyError } from '../../../shared/proxy/errors.ts';
import { normalizePath } from '../../../shared/routing/normalize-path.ts';
import type { OutboundRequest } from '../request-context.ts';

/**
 * The app's path normalized before the mesh route is matched, as the edge does, so the route,
 * the peer's authorization and the peer's app all see one path. Escaped slashes are unescaped and
 * forwarded: a redirect back to our own app would only make it ask again.
 */
export function normalizeOutboundPath(r: OutboundRequest): void {
  const result = normalizePath(r.target, { escapedSlashesAction: 'UnescapeAndForward' });
  if (!result.ok) throw new ProxyError('MG_ERR_BAD_PATH', result.reason);
  r.path = result.path;
  r.query = result.query;
}
