// The edge gateway's request stack, one layer per line, in the order DESIGN.md gives. Each layer
// reads the EdgeRequest, may answer (setting `done`) or throw a ProxyError; one rescue at the end
// turns errors into problem+json responses.

import { applyUnderscoresAction } from './layers/apply-underscores-action.ts';
import { enforceRequestLimits, type RequestLimits } from './layers/enforce-request-limits.ts';
import { normalizeRequestPath } from './layers/normalize-request-path.ts';
import { matchRoute } from './layers/match-route.ts';
import { rejectMisdirected } from './layers/reject-misdirected.ts';
import { applyCors } from './layers/apply-cors.ts';
import { failClosedRule, redirectRequest } from './layers/answer-rule-directly.ts';
import { authenticate } from './layers/authenticate.ts';
import { authorize } from './layers/authorize.ts';
import { rateLimit } from './layers/rate-limit.ts';
import { forwardToBackend, type ForwardDeps } from './layers/forward-to-backend.ts';
import { validateOpenApi } from './layers/validate-openapi.ts';
import { serveApiPortal } from './openapi/api-portal.ts';
import type { EdgeRequest } from './request-context.ts';

export type Layer = (r: EdgeRequest) => void | Promise<void>;

export interface EdgeStackDeps extends ForwardDeps {
  limits: RequestLimits;
}

export function edgeStack(deps: EdgeStackDeps): Layer[] {
  return [
    enforceRequestLimits(deps.limits),
    applyUnderscoresAction,
    normalizeRequestPath,
    rejectMisdirected,
    serveApiPortal,
    matchRoute,
    failClosedRule,
    applyCors,
    authenticate,
    authorize,
    rateLimit,
    validateOpenApi,
    redirectRequest,
    forwardToBackend(deps),
  ];
}

/** Runs the layers in order; synchronous layers stay synchronous, so a request that needs no I/O awaits nothing. */
export function runStack(layers: readonly Layer[], r: EdgeRequest, from = 0): void | Promise<void> {
  for (let i = from; i < layers.length; i++) {
    if (r.done) return;
    const out = (layers[i] as Layer)(r);
    if (out) return out.then(() => runStack(layers, r, i + 1));
  }
}
