// How both ends of a mesh connection check each other. Node's TLS verifies the chain to the mesh
// root (`ca: root`, `rejectUnauthorized: true`); this module reads the peer's SPIFFE id from the
// verified certificate and checks it against the identities the caller expects, as Envoy's
// SAN matcher does for Istio. Mesh peers are dialled by IP, so the hostname check is replaced by
// the identity check (X509-SVID §5.2: a relying party verifies the SPIFFE id, not a DNS name).

import { X509Certificate } from 'node:crypto';
import {
  createSecureContext,
  type ConnectionOptions,
  type PeerCertificate,
  type SecureContextOptions,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import { splitPemCertificates } from './pem.ts';
import { IdentityError } from './errors.ts';
import { DEFAULT_TRUST_DOMAIN, parseWorkloadSpiffeId, toWorkloadSpiffeId } from './spiffe.ts';

/** Who is on the other end of a verified mesh connection, in the forms authorization uses. */
export interface PeerIdentity {
  spiffeId: string;
  /** Istio's principal: `<trust-domain>/ns/<namespace>/sa/<service-account>`. */
  principal: string;
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** Which peers a connection accepts, compiled once (per destination service, per snapshot). */
export interface PeerExpectation {
  trustDomain: string;
  /** Accepted SPIFFE ids; undefined accepts any workload of the trust domain. */
  identities: ReadonlySet<string> | undefined;
}

/**
 * Compiles the identities a connection expects. Each may be written as a SPIFFE id or a principal.
 * Leaving `identities` out accepts any workload of the trust domain (Istio does the same when a
 * service has no known service accounts); an empty list is refused as a likely mistake.
 */
export function expectPeers(
  options: { trustDomain?: string; identities?: Iterable<string> } = {},
): PeerExpectation {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  if (options.identities === undefined) return { trustDomain, identities: undefined };
  const identities = new Set<string>();
  for (const id of options.identities) identities.add(toWorkloadSpiffeId(id));
  if (identities.size === 0)
    throw new RangeError(
      'expectPeers: an empty identity list accepts nobody; leave it out to accept any workload',
    );
  return { trustDomain, identities };
}

/**
 * The URI SANs in Node's `subjectAltName` text (`X509Certificate.subjectAltName`, or
 * `subjectaltname` of `getPeerCertificate()`). Since Node 17.3 a value holding `,`, `"`, `\` or
 * `'` is printed as a JSON string, so entries split unambiguously on ", " outside quotes.
 */
export function uriSubjectAltNames(subjectAltName: string | undefined): string[] {
  const uris: string[] = [];
  if (!subjectAltName) return uris;
  let i = 0;
  const n = subjectAltName.length;
  while (i < n) {
    const colon = subjectAltName.indexOf(':', i);
    if (colon === -1) break;
    const type = subjectAltName.slice(i, colon);
    let value: string;
    let end: number;
    if (subjectAltName[colon + 1] === '"') {
      end = colon + 2;
      while (end < n && subjectAltName[end] !== '"') end += subjectAltName[end] === '\\' ? 2 : 1;
      end += 1;
      try {
        value = JSON.parse(subjectAltName.slice(colon + 1, end)) as string;
      } catch {
        value = subjectAltName.slice(colon + 1, end);
      }
    } else {
      end = subjectAltName.indexOf(', ', colon + 1);
      if (end === -1) end = n;
      value = subjectAltName.slice(colon + 1, end);
    }
    if (type === 'URI') uris.push(value);
    i = subjectAltName.startsWith(', ', end) ? end + 2 : end + 1;
  }
  return uris;
}

function peerError(detail: string): IdentityError {
  return new IdentityError('MG_ERR_PEER_IDENTITY', detail);
}

/**
 * The workload identity a certificate carries: X509-SVID §2 allows exactly one URI SAN, and it
 * must be a workload SPIFFE id. Does not check the chain: use it on certificates Node's TLS (or
 * `verifyCertificateChain`) has verified.
 */
export function identityFromCertificate(cert: X509Certificate | PeerCertificate): PeerIdentity {
  const san =
    cert instanceof X509Certificate
      ? cert.subjectAltName
      : (cert as PeerCertificate).subjectaltname;
  const uris = uriSubjectAltNames(san);
  if (uris.length === 0) throw peerError('the peer certificate has no URI SAN (no SPIFFE id)');
  if (uris.length > 1)
    throw peerError(
      `the peer certificate has ${uris.length} URI SANs; an X509-SVID has exactly one`,
    );
  const spiffeId = uris[0] as string;
  let parsed;
  try {
    parsed = parseWorkloadSpiffeId(spiffeId);
  } catch (err) {
    throw peerError(`the peer's URI SAN is not a workload SPIFFE id: ${(err as Error).message}`);
  }
  return { spiffeId, principal: spiffeId.slice('spiffe://'.length), ...parsed };
}

/** The peer's identity, if it is one `expectation` accepts; throws MG_ERR_PEER_IDENTITY if not. */
export function verifyPeer(
  cert: X509Certificate | PeerCertificate,
  expectation: PeerExpectation,
): PeerIdentity {
  return checkExpectation(identityFromCertificate(cert), expectation);
}

function checkExpectation(identity: PeerIdentity, expectation: PeerExpectation): PeerIdentity {
  if (identity.trustDomain !== expectation.trustDomain)
    throw peerError(
      `peer ${identity.spiffeId} is in trust domain ${identity.trustDomain}, not ${expectation.trustDomain}`,
    );
  if (expectation.identities && !expectation.identities.has(identity.spiffeId))
    throw peerError(
      `peer ${identity.spiffeId} is not one of the expected identities: ${[...expectation.identities].join(', ')}`,
    );
  return identity;
}

/**
 * A `checkServerIdentity` for `tls.connect`/undici: Node calls it after the chain verified; the
 * error it returns aborts the connection. The hostname is not checked (peers are dialled by IP).
 */
export function createCheckServerIdentity(
  expectation: PeerExpectation,
): (hostname: string, cert: PeerCertificate) => Error | undefined {
  return (_hostname, cert) => {
    try {
      verifyPeer(cert, expectation);
      return undefined;
    } catch (err) {
      return err as Error;
    }
  };
}

const socketIdentities = new WeakMap<TLSSocket, PeerIdentity | null>();

/**
 * The identity a TLS connection's peer proved: a certificate that chained to the mesh root
 * (`socket.authorized`) and carries a workload SPIFFE id. Undefined when the peer sent no
 * certificate or an invalid one; PERMISSIVE treats that like plaintext. Call it at
 * 'secureConnection'/'secureConnect': the result is remembered per socket, because a Node client
 * socket may stop reporting its peer certificate once a session ticket arrives.
 */
export function peerIdentityOfSocket(
  socket: TLSSocket,
  expectation?: PeerExpectation,
): PeerIdentity | undefined {
  let identity = socketIdentities.get(socket);
  if (identity === undefined) {
    identity = null;
    const cert = socket.authorized ? socket.getPeerX509Certificate() : undefined;
    if (cert) {
      try {
        identity = identityFromCertificate(cert);
      } catch {
        identity = null;
      }
    }
    socketIdentities.set(socket, identity);
  }
  if (!identity) return undefined;
  if (!expectation) return identity;
  try {
    return checkExpectation(identity, expectation);
  } catch {
    return undefined;
  }
}

/** What a mesh TLS endpoint presents and trusts. Workload and server credentials both fit. */
export interface MtlsCredentials {
  keyPem: string;
  /** The leaf, any intermediates, then the root. */
  chainPem: readonly string[];
  /** The mesh trust anchor. */
  rootPem: string;
}

/** Mesh connections are meshgate to meshgate: TLS 1.3 only. */
const MESH_MIN_TLS_VERSION = 'TLSv1.3';

/**
 * Key, certificate chain (the leaf and intermediates; the root is the peer's own trust anchor, so
 * it is not sent) and CA. What `server.setSecureContext()` takes on rotation.
 */
/**
 * TLS 1.3 suites in our order of preference: AES-128-GCM first, as BoringSSL (Envoy) orders them
 * on CPUs with AES instructions; OpenSSL's default puts AES-256-GCM first, which costs more per
 * record for no gain inside the mesh.
 */
const MESH_TLS13_CIPHERSUITES =
  'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

export function secureContextOptions(credentials: MtlsCredentials): SecureContextOptions {
  const root = credentials.rootPem.trim();
  const sent = credentials.chainPem.filter((pem) => pem.trim() !== root);
  return {
    key: credentials.keyPem,
    cert: sent.join(''),
    ca: credentials.rootPem,
    minVersion: MESH_MIN_TLS_VERSION,
    ciphers: MESH_TLS13_CIPHERSUITES,
  };
}

/**
 * Options for the inbound mTLS listener (`tls.createServer`, `https.createServer`). The client
 * must present a certificate that chains to the mesh root, or the handshake fails: STRICT. The
 * same TLS options serve PERMISSIVE, whose listener also takes plaintext (see `isTlsClientHello`).
 * `rejectUnauthorized: false` lets a handshake finish with a missing or bad client certificate,
 * for callers that decide per connection with `peerIdentityOfSocket`.
 */
export function mtlsServerOptions(
  credentials: MtlsCredentials,
  options: { rejectUnauthorized?: boolean } = {},
): TlsOptions {
  return {
    ...secureContextOptions(credentials),
    requestCert: true,
    rejectUnauthorized: options.rejectUnauthorized ?? true,
  };
}

/**
 * Options for an outbound mTLS connection (`tls.connect`, `https.request`, undici's `connect`):
 * our certificate, the mesh root as the only CA, and the peer identity check. The secure context
 * is built here once; build new options when the credentials rotate (connections already open
 * keep the old ones).
 */
export function mtlsClientOptions(
  credentials: MtlsCredentials,
  expectation: PeerExpectation,
): ConnectionOptions {
  return {
    secureContext: createSecureContext(secureContextOptions(credentials)),
    rejectUnauthorized: true,
    checkServerIdentity: createCheckServerIdentity(expectation),
    minVersion: MESH_MIN_TLS_VERSION,
  };
}

/**
 * Whether a connection's first bytes are a TLS handshake record (content type 22, version 3.x),
 * which is how a PERMISSIVE listener tells mTLS from plaintext on one port. Needs ≥ 3 bytes.
 */
export function isTlsClientHello(firstBytes: Uint8Array): boolean {
  return firstBytes.length >= 3 && firstBytes[0] === 0x16 && firstBytes[1] === 0x03;
}

/**
 * Checks, outside a TLS handshake, that `chainPem[0]` chains through the rest of `chainPem` to
 * `rootPem` and that each certificate is valid at `now`. Throws MG_ERR_PEER_IDENTITY.
 */
export function verifyCertificateChain(
  chainPem: string | readonly string[],
  rootPem: string,
  now: number = Date.now(),
): X509Certificate {
  const pems = typeof chainPem === 'string' ? splitPemCertificates(chainPem) : chainPem;
  const root = new X509Certificate(rootPem);
  const certs = pems.map((pem) => new X509Certificate(pem));
  // The root may be repeated at the end of the chain (Istio's order); it anchors, so drop it.
  while (certs.length > 1 && certs[certs.length - 1]?.fingerprint256 === root.fingerprint256)
    certs.pop();
  const leaf = certs[0];
  if (!leaf) throw peerError('the chain holds no certificate');
  for (const [i, cert] of certs.entries()) {
    const issuer = certs[i + 1] ?? root;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey))
      throw peerError(`certificate ${i} of the chain is not signed by the next one or the root`);
    if (i > 0 && !cert.ca) throw peerError(`certificate ${i} of the chain is not a CA`);
    if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo))
      throw peerError(
        `certificate ${i} of the chain is not valid at ${new Date(now).toISOString()} (valid ${cert.validFrom} to ${cert.validTo})`,
      );
  }
  if (now < Date.parse(root.validFrom) || now > Date.parse(root.validTo))
    throw peerError('the root certificate is not valid now');
  return leaf;
}
