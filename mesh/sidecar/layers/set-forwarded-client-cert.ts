import type { InboundRequest } from '../request-context.ts';

export const XFCC_HEADER = 'x-forwarded-client-cert';

/**
 * X-Forwarded-Client-Cert in Envoy's format (forward_client_cert_details SANITIZE_SET, as Istio
 * configures inbound): `By=<our SPIFFE id>;Hash=<SHA-256 of the peer's certificate>;Subject="";
 * URI=<the peer's SPIFFE id>`. Only the sidecar sets it: whatever the caller sent is removed
 * first, so the app can trust it.
 */
export function setForwardedClientCert(ownSpiffeId: () => string | undefined) {
  return function setForwardedClientCert(r: InboundRequest): void {
    delete r.client.headers[XFCC_HEADER];
    const by = ownSpiffeId();
    if (!r.peer || !by) return;
    r.client.headers[XFCC_HEADER] =
      `By=${by};Hash=${r.peerCertHash};Subject="";URI=${r.peer.spiffeId}`;
  };
}
