// The sidecar's inbound stack, one layer per line, in the order DESIGN.md gives: the listener
// has already accepted the connection per PeerAuthentication (STRICT: mTLS only; PERMISSIVE:
// mTLS or plaintext; DISABLE: plaintext) → peer identity → authorization (RequestAuthentication,
// AuthorizationPolicy) → the local app. Access log and metrics are the server's, around it.

import type { StackLayer } from '../../shared/proxy/layers.ts';
import { authorizeRequest, type AuthorizeDeps } from './layers/authorize-request.ts';
import { forwardToApp, upgradeToApp, type AppTarget } from './layers/forward-to-app.ts';
import { readPeerIdentity } from './layers/read-peer-identity.ts';
import { setForwardedClientCert } from './layers/set-forwarded-client-cert.ts';
import type { InboundRequest } from './request-context.ts';

export interface InboundStackDeps extends AuthorizeDeps {
  app: AppTarget;
  /** This sidecar's SPIFFE id (the current certificate's), XFCC's `By`. */
  ownSpiffeId: () => string | undefined;
}

export function inboundStack(deps: InboundStackDeps): StackLayer<InboundRequest>[] {
  return [
    readPeerIdentity,
    authorizeRequest(deps),
    setForwardedClientCert(deps.ownSpiffeId),
    forwardToApp(deps.app),
  ];
}

/** A peer's WebSocket (HTTP/1.1 Upgrade): identity and authorization as above, then a tunnel. */
export function inboundUpgradeStack(deps: InboundStackDeps): StackLayer<InboundRequest>[] {
  return [
    readPeerIdentity,
    authorizeRequest(deps),
    setForwardedClientCert(deps.ownSpiffeId),
    upgradeToApp(deps.app),
  ];
}
