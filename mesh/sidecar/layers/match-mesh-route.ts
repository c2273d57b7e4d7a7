import { ProxyError } from '../../../shared/proxy/errors.ts';
import type { Destination } from '../sidecar-view.ts';
import type { OutboundRequest } from '../request-context.ts';

/** The Service's mesh route rule for the request (GAMMA routes, or its default route). */
export function matchMeshRoute(r: OutboundRequest): void {
  const d = r.destination as Destination;
  const match = d.table.match({
    host: r.client.host ?? d.service.name,
    method: r.method,
    path: r.path,
    headers: (name) => r.header(name),
    query: (name) => queryParam(r.query, name),
  });
  if (!match)
    throw new ProxyError(
      'MG_ERR_NO_ROUTE',
      `no mesh route of ${d.key} matches ${r.method} ${r.path}`,
    );
  r.match = match;
  r.rule = d.rules.get(`${match.route.namespace}/${match.route.name}`)?.[match.ruleIndex];
  if (!r.rule)
    throw new ProxyError('MG_ERR_INTERNAL', `${d.key}: rule ${match.ruleIndex} was not compiled`);
}

function queryParam(query: string, name: string): string | undefined {
  if (!query) return undefined;
  return new URLSearchParams(query).get(name) ?? undefined;
}
