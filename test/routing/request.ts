// Builds a RouteRequest the way the edge will: raw target → normalizePath, headers by lowercase
// name, query via URLSearchParams.

import { normalizePath } from '../../shared/routing/normalize-path.ts';
import type { RouteRequest } from '../../shared/routing/route-table.ts';

export interface TestRequest {
  host?: string;
  method?: string;
  /** Request target: path with optional "?query". */
  path: string;
  headers?: Record<string, string>;
}

export function routeRequest(r: TestRequest): RouteRequest {
  const n = normalizePath(r.path);
  if (!n.ok) throw new Error(`bad test path ${r.path}: ${n.reason}`);
  const headers = new Map<string, string>();
  for (const [k, v] of Object.entries(r.headers ?? {})) headers.set(k.toLowerCase(), v);
  return {
    host: r.host ?? 'example.com',
    method: r.method ?? 'GET',
    path: n.path,
    headers: (name) => headers.get(name),
    query: new URLSearchParams(n.query),
  };
}
