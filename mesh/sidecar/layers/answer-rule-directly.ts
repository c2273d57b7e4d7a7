import type { RedirectFilter } from '../../../shared/proxy/filter-effects.ts';
import { ProxyError } from '../../../shared/proxy/errors.ts';
import { hostWithoutPort, modifyPath } from '../../../gateway/layers/answer-rule-directly.ts';
import type { OutboundRequest } from '../request-context.ts';

/** A rule that cannot be served as configured fails closed (500), never open. */
export function failClosedRule(r: OutboundRequest): void {
  const failure = r.rule?.failure;
  if (failure) throw new ProxyError(failure.code, failure.detail);
}

/** A rule's RequestRedirect: answered here, the peer is not called. */
export function redirectRequest(r: OutboundRequest): void {
  const f = r.rule?.redirect;
  if (f) answerRedirect(r, f);
}

/** Answers with the Location Gateway API's HTTPRequestRedirectFilter describes. */
export function answerRedirect(r: OutboundRequest, f: RedirectFilter): void {
  const scheme = f.scheme ?? 'http';
  const host = f.hostname ?? hostWithoutPort(r.client.host ?? '');
  const port = f.port ?? (f.scheme ? (f.scheme === 'https' ? 443 : 80) : r.destination?.port);
  const defaultPort = (scheme === 'http' && port === 80) || (scheme === 'https' && port === 443);
  const path = f.path ? modifyPath(r.path, f.path, r.match?.prefixLength ?? 0) : r.path;
  const location = `${scheme}://${host}${defaultPort || port === undefined ? '' : `:${port}`}${path}${r.query ? `?${r.query}` : ''}`;
  r.done = true;
  r.res.writeHead(f.statusCode, { location, 'x-request-id': r.requestId, 'content-length': '0' });
  r.res.end();
}
