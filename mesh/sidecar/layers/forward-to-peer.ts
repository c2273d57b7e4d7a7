import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { BackendPolicy } from '../../../shared/backend/backend-policy.ts';
import { requestTimers } from '../../../shared/backend/clock.ts';
import {
  forwardWithPolicy,
  type PolicyForwardDeps,
  type PolicyRequest,
} from '../../../shared/backend/forward-with-policy.ts';
import { upgradeWithPolicy } from '../../../shared/backend/upgrade-with-policy.ts';
import { pickBackendRef } from '../../../shared/proxy/backend-ref.ts';
import { ProxyError } from '../../../shared/proxy/errors.ts';
import { applyHeaderOps, type HeaderMap } from '../../../shared/proxy/headers.ts';
import type { MeshPools } from '../../../shared/proxy/mesh-pools.ts';
import type { Tunnel } from '../../../shared/proxy/upgrade.ts';
import type { UpstreamPools } from '../../../shared/proxy/upstream-pools.ts';
import { modifyPath } from '../../../gateway/layers/answer-rule-directly.ts';
import type { OutboundRequest } from '../request-context.ts';
import type { MeshBackend, MeshRule } from '../sidecar-view.ts';
import { answerRedirect } from './answer-rule-directly.ts';

export interface PeerForwardDeps {
  /** mTLS to sidecars, with the peer identity check; replaced on certificate rotation. */
  meshPools: MeshPools;
  /** Plain HTTP to endpoints without a sidecar (static EndpointSlices). */
  plainPools: UpstreamPools;
  random: () => number;
  /** Monotonic ms, the clock `startedAt` is on. */
  now: () => number;
}

/**
 * The backend layer: a backendRef by weight (a canary split), its filters, then the
 * BackendTrafficPolicy layers shared with the edge (balancer, circuit breaker, retries,
 * timeouts, outlier detection, fault injection) pick the endpoint and send. A sidecar endpoint
 * is called over mTLS and must prove the SPIFFE id the control plane listed for it; any other
 * endpoint gets plain HTTP.
 */
export function forwardToPeer(deps: PeerForwardDeps) {
  return async function forwardToPeer(r: OutboundRequest): Promise<void> {
    const chosen = chooseBackend(r, deps);
    if (!chosen) return;
    return forwardWithPolicy(chosen.policy, chosen.request, r.res, chosen.deps);
  };
}

/**
 * The backend layer for a WebSocket (HTTP/1.1 Upgrade): the same backendRef split, filters,
 * balancer and circuit breaker; no retries or timeouts for a tunnel (shared/proxy/upgrade.ts).
 */
export function upgradeToPeer(deps: PeerForwardDeps) {
  return async function upgradeToPeer(r: OutboundRequest): Promise<void> {
    const chosen = chooseBackend(r, deps);
    if (!chosen) return;
    const protocol = r.req.headers.upgrade ?? 'websocket';
    return upgradeWithPolicy(
      chosen.policy,
      { ...chosen.request, body: null, protocol },
      r.res as ServerResponse,
      r.tunnel as Tunnel,
      chosen.deps,
    );
  };
}

/** A backendRef of the rule and what its policy layers need; undefined when a filter answered. */
function chooseBackend(
  r: OutboundRequest,
  deps: PeerForwardDeps,
): { policy: BackendPolicy; request: PolicyRequest; deps: PolicyForwardDeps } | undefined {
  const rule = r.rule as MeshRule;
  const backend = pickBackendRef(rule, deps.random);
  if (backend.redirect) {
    answerRedirect(r, backend.redirect);
    return undefined;
  }
  const policy = backend.policy;
  if (!policy)
    throw new ProxyError('MG_ERR_INVALID_CONFIG', `${backend.key}: no backend policy compiled`);
  const identities = backend.identities;
  return {
    policy,
    request: {
      method: r.method,
      path: upstreamPath(r, rule, backend),
      headers: upstreamHeaders(r, rule, backend),
      body: r.client.hasBody ? r.req : null,
      startedAt: r.startedAt,
      hash: r,
      connectionKey: () => `${r.clientAddress}:${r.clientPort}|${r.localAddress}`,
      ...(rule.responseHeaders || backend.responseHeaders
        ? {
            responseHeaders: (_status: number, h: HeaderMap) => {
              if (rule.responseHeaders) applyHeaderOps(h, rule.responseHeaders);
              if (backend.responseHeaders) applyHeaderOps(h, backend.responseHeaders);
            },
          }
        : {}),
      onUpstream: (origin) => {
        r.upstream = origin;
      },
      onFlag: (flag) => r.addFlag(flag),
      label: `${rule.id} → ${backend.key}`,
    },
    deps: {
      random: deps.random,
      now: deps.now,
      timers: requestTimers,
      dispatcher: (origin): Dispatcher => {
        const spiffeId = identities.get(origin);
        return spiffeId === undefined
          ? deps.plainPools.get(origin)
          : deps.meshPools.get(origin, spiffeId, backend.servername);
      },
    },
  };
}

/** The app's headers (hop-by-hop dropped), the request id, the rule's and backendRef's filters. */
function upstreamHeaders(r: OutboundRequest, rule: MeshRule, backend: MeshBackend): HeaderMap {
  const headers = r.client.headers;
  const host = r.client.host ?? (r.destination?.key as string);
  headers.host = backend.rewrite?.hostname ?? rule.rewrite?.hostname ?? host;
  headers['x-request-id'] = r.requestId;
  if (r.client.forwardedFor !== undefined) headers['x-forwarded-for'] = r.client.forwardedFor;
  if (r.client.wantsTrailers) headers.te = 'trailers';
  if (rule.requestHeaders) applyHeaderOps(headers, rule.requestHeaders);
  if (backend.requestHeaders) applyHeaderOps(headers, backend.requestHeaders);
  return headers;
}

function upstreamPath(r: OutboundRequest, rule: MeshRule, backend: MeshBackend): string {
  const modifier = backend.rewrite?.path ?? rule.rewrite?.path;
  const p = modifier ? modifyPath(r.path, modifier, r.match?.prefixLength ?? 0) : r.path;
  return r.query ? `${p}?${r.query}` : p;
}
