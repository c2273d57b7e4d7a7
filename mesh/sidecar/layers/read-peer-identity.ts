import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { peerIdentityOfSocket } from '../../../shared/identity/peer-verification.ts';
import type { InboundRequest } from '../request-context.ts';

const certHashes = new WeakMap<TLSSocket, string>();

/**
 * The caller's identity from the certificate its TLS handshake verified against the mesh root:
 * principal and namespace for authorization, the certificate's hash for X-Forwarded-Client-Cert.
 * A plaintext connection (PERMISSIVE, DISABLE) has none; neither has a certificate without a
 * workload SPIFFE id, which authorization then treats as plaintext.
 */
export function readPeerIdentity(r: InboundRequest): void {
  const tls = r.connection.tls;
  if (!tls) return;
  const peer = peerIdentityOfSocket(tls);
  if (!peer) return;
  r.peer = peer;
  let hash = certHashes.get(tls);
  if (hash === undefined) {
    // Envoy's XFCC Hash: the SHA-256 of the peer certificate's DER, hex.
    const der = tls.getPeerX509Certificate()?.raw;
    hash = der ? createHash('sha256').update(der).digest('hex') : '';
    certHashes.set(tls, hash);
  }
  r.peerCertHash = hash;
}
