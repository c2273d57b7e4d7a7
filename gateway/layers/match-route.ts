import { ProxyError } from '../../shared/proxy/errors.ts';
import { normalizeHost } from '../../shared/routing/hostname.ts';
import type { RouteHit } from '../edge-view.ts';
import type { EdgeRequest } from '../request-context.ts';

/** Picks the route rule with the shared matcher; 404 (NR) when none matches. */
export function matchRoute(r: EdgeRequest): void {
  const host = r.client.host as string;
  const match = r.port.table.match({
    host,
    method: r.method,
    path: r.path,
    headers: (name) => r.header(name),
    query: (name) => queryParam(r.query, name),
  });
  if (!match)
    throw new ProxyError(
      'MG_ERR_NO_ROUTE',
      `no route of ${r.port.gateways.join(', ')} port ${r.port.port} matches ${r.method} ${normalizeHost(host)}${r.path}`,
    );
  r.match = match;
  r.rule = (match.entry.attachment as RouteHit).rules[match.ruleIndex];
}

/** The first value of a query parameter, decoded; parsed only when a route matches on queries. */
function queryParam(query: string, name: string): string | undefined {
  if (!query) return undefined;
  return new URLSearchParams(query).get(name) ?? undefined;
}
