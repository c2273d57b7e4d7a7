// WebSocket (and other HTTP/1.1 Upgrade) requests: routed and checked by the same layers as any
// request, then sent to the backend the rule picks (shared/proxy/upgrade.ts relays a refusal or
// joins the sockets on 101). A backend with a BackendTrafficPolicy is reached through the policy's
// breaker and balancer (shared/backend/upgrade-with-policy.ts); retries, timeouts and mirrors do
// not apply to a tunnel.

import type { ServerResponse } from 'node:http';
import { requestTimers } from '../shared/backend/clock.ts';
import { upgradeWithPolicy } from '../shared/backend/upgrade-with-policy.ts';
import { ProxyError } from '../shared/proxy/errors.ts';
import { applyHeaderOps, type HeaderMap } from '../shared/proxy/headers.ts';
import { forwardUpgrade, type Tunnel } from '../shared/proxy/upgrade.ts';
import type { Layer } from './edge-stack.ts';
import type { CompiledRule } from './edge-view.ts';
import { failClosedRule, redirectRequest } from './layers/answer-rule-directly.ts';
import { authenticate } from './layers/authenticate.ts';
import { authorize } from './layers/authorize.ts';
import { applyUnderscoresAction } from './layers/apply-underscores-action.ts';
import { enforceRequestLimits, type RequestLimits } from './layers/enforce-request-limits.ts';
import {
  chooseBackend,
  dispatcherFor,
  policyRequest,
  upstreamHeaders,
  upstreamPath,
  type ForwardDeps,
} from './layers/forward-to-backend.ts';
import { matchRoute } from './layers/match-route.ts';
import { normalizeRequestPath } from './layers/normalize-request-path.ts';
import { rateLimit } from './layers/rate-limit.ts';
import { rejectMisdirected } from './layers/reject-misdirected.ts';
import type { EdgeRequest } from './request-context.ts';

/**
 * The layers an Upgrade request passes before it is joined to an upstream: the edge stack's,
 * minus CORS (browsers send no preflight for WebSockets) and OpenAPI validation (an API
 * definition describes requests, not tunnels); authentication, authorization and rate limits
 * included, so an Upgrade cannot reach a protected or limited route around them.
 */
export function upgradeStack(deps: { limits: RequestLimits }): Layer[] {
  return [
    enforceRequestLimits(deps.limits),
    applyUnderscoresAction,
    normalizeRequestPath,
    rejectMisdirected,
    matchRoute,
    failClosedRule,
    authenticate,
    authorize,
    rateLimit,
    redirectRequest,
  ];
}

/** The backend layer for an Upgrade: a backendRef by weight, then its policy's or round robin's endpoint. */
export async function proxyUpgrade(
  r: EdgeRequest,
  deps: ForwardDeps,
  tunnel: Tunnel,
): Promise<void> {
  const rule = r.rule as CompiledRule;
  const backend = chooseBackend(r, rule, deps.random);
  if (!backend) return;
  // The same request filters as any forwarded request: header modifiers, URLRewrite, X-Forwarded-*.
  const headers = upstreamHeaders(r, rule, backend);
  const path = upstreamPath(r, rule, backend);
  const protocol = r.req.headers.upgrade ?? 'websocket';
  const res = r.res as ServerResponse;
  if (backend.policy)
    return upgradeWithPolicy(
      backend.policy,
      { ...policyRequest(r, rule, backend, headers, path, null), protocol },
      res,
      tunnel,
      {
        random: deps.random,
        now: deps.now,
        timers: requestTimers,
        dispatcher: (origin) => dispatcherFor(deps.pools, backend, origin),
      },
    );
  const endpoint = backend.endpoints.pick();
  if (!endpoint)
    throw new ProxyError('MG_ERR_NO_HEALTHY_UPSTREAM', `${backend.key} has no ready endpoint`);
  r.upstream = endpoint.origin;
  // A refusal (401, 403, 426…) is relayed as the upstream's answer; only a 101 joins the sockets.
  await forwardUpgrade(
    {
      dispatcher: dispatcherFor(deps.pools, backend, endpoint.origin),
      origin: endpoint.origin,
      method: r.method,
      path,
      headers,
      protocol,
    },
    res,
    tunnel,
    (_status: number, h: HeaderMap) => {
      if (rule.responseHeaders) applyHeaderOps(h, rule.responseHeaders);
      if (backend.responseHeaders) applyHeaderOps(h, backend.responseHeaders);
    },
  );
}
