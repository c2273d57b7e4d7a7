// The sidecar's outbound stack, one layer per line: the app's plain HTTP request (as a proxy
// request or by Host) → the Service it names → normalized path → mesh route (the shared matcher)
// → fail closed / redirect → backend (split, balancer, breaker, retries, timeouts, outlier) →
// mTLS to the peer sidecar. Access log and metrics are the server's, around it.

import type { StackLayer } from '../../shared/proxy/layers.ts';
import { failClosedRule, redirectRequest } from './layers/answer-rule-directly.ts';
import { forwardToPeer, upgradeToPeer, type PeerForwardDeps } from './layers/forward-to-peer.ts';
import { matchMeshRoute } from './layers/match-mesh-route.ts';
import { normalizeOutboundPath } from './layers/normalize-outbound-path.ts';
import { resolveDestination } from './layers/resolve-destination.ts';
import type { OutboundRequest } from './request-context.ts';

export function outboundStack(deps: PeerForwardDeps): StackLayer<OutboundRequest>[] {
  return [
    resolveDestination,
    normalizeOutboundPath,
    matchMeshRoute,
    failClosedRule,
    redirectRequest,
    forwardToPeer(deps),
  ];
}

/** A WebSocket (HTTP/1.1 Upgrade) from the app: the same layers, then a tunnel to the peer. */
export function outboundUpgradeStack(deps: PeerForwardDeps): StackLayer<OutboundRequest>[] {
  return [
    resolveDestination,
    normalizeOutboundPath,
    matchMeshRoute,
    failClosedRule,
    redirectRequest,
    upgradeToPeer(deps),
  ];
}
