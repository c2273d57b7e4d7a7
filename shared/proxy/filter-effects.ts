// What an HTTPRoute filter does to a rule or a backendRef, for the filters the edge gateway and
// the sidecar apply alike (header modifiers, redirect, URL rewrite, and DirectResponse, which
// fails closed). RequestMirror and CORS differ between the two proxies: each handles them itself.

import type { FilterIR, HeaderModifierIR, PathModifierIR } from '../config/snapshot.ts';

export type RedirectFilter = Extract<FilterIR, { type: 'RequestRedirect' }>;

export interface FilterEffects {
  requestHeaders?: HeaderModifierIR;
  responseHeaders?: HeaderModifierIR;
  redirect?: RedirectFilter;
  rewrite?: { hostname?: string; path?: PathModifierIR };
  /** An unresolvable filter (DirectResponse): requests that reach it fail closed. */
  failure?: { code: 'MG_ERR_INVALID_CONFIG'; detail: string };
}

/**
 * Records the effect of `f` on `out` when it is one of the shared filters; returns false for the
 * others (RequestMirror, CORS), which the caller handles.
 */
export function applySharedFilter(f: FilterIR, out: FilterEffects): boolean {
  switch (f.type) {
    case 'RequestHeaderModifier':
      out.requestHeaders = f.headers;
      return true;
    case 'ResponseHeaderModifier':
      out.responseHeaders = f.headers;
      return true;
    case 'RequestRedirect':
      out.redirect = f;
      return true;
    case 'URLRewrite':
      out.rewrite = {
        ...(f.hostname ? { hostname: f.hostname } : {}),
        ...(f.path ? { path: f.path } : {}),
      };
      return true;
    case 'DirectResponse':
      out.failure = { code: 'MG_ERR_INVALID_CONFIG', detail: f.message };
      return true;
    default:
      return false;
  }
}
