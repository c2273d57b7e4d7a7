import type { RedirectFilter } from '../../shared/proxy/filter-effects.ts';
import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';

/** A rule that cannot be served as configured fails closed (500), never open. */
export function failClosedRule(r: EdgeRequest): void {
  const failure = r.rule?.failure;
  if (failure) throw new ProxyError(failure.code, failure.detail);
}

/** RequestRedirect: the Location the Gateway API's HTTPRequestRedirectFilter describes. */
export function redirectRequest(r: EdgeRequest): void {
  const f = r.rule?.redirect;
  if (f) answerRedirect(r, f);
}

/** Answers with a redirect (a rule's or a backendRef's RequestRedirect filter). */
export function answerRedirect(r: EdgeRequest, f: RedirectFilter): void {
  const scheme = f.scheme ?? r.scheme;
  const host = f.hostname ?? hostWithoutPort(r.client.host as string);
  // No port given: a new scheme means its well-known port; otherwise the Gateway listener's port
  // (from config: the socket's own port differs when the gateway binds with a port offset).
  const port = f.port ?? (f.scheme ? (f.scheme === 'https' ? 443 : 80) : r.port.port);
  const defaultPort = (scheme === 'http' && port === 80) || (scheme === 'https' && port === 443);
  const path = f.path ? modifyPath(r.path, f.path, r.match?.prefixLength ?? 0) : r.path;
  const location = `${scheme}://${host}${defaultPort ? '' : `:${port}`}${path}${r.query ? `?${r.query}` : ''}`;
  r.done = true;
  r.res.writeHead(f.statusCode, { location, 'x-request-id': r.requestId, 'content-length': '0' });
  r.res.end();
}

export function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon > 0 ? host.slice(0, colon) : host;
}

/**
 * ReplaceFullPath, or ReplacePrefixMatch over the matched prefix (element-wise, so the table in
 * the spec holds: /foo/bar with prefix /foo and replacement /xyz gives /xyz/bar, with "" gives /bar).
 */
export function modifyPath(
  path: string,
  m: { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; value: string },
  prefixLength: number,
): string {
  if (m.type === 'ReplaceFullPath') return m.value || '/';
  const rest = path.slice(prefixLength);
  const base = m.value.endsWith('/') ? m.value.slice(0, -1) : m.value;
  const out = base + rest;
  return out === '' ? '/' : out.startsWith('/') ? out : `/${out}`;
}
