// The discovery protocol between the control plane and its proxies (sidecars and gateways). One
// contract, both sides import it. HTTPS on the control plane's discovery port (15010), its server
// certificate issued by the mesh CA; proxies pin the mesh root (`--control-plane-ca FILE`).
//
//   POST /v1/certificates   body CertificateRequest
//        auth: `Authorization: Bearer <join token>` (first certificate), or the proxy's current
//        workload certificate as TLS client certificate (renewal). The CA takes the identity from
//        the token or the certificate, never from the CSR.                   → CertificateResponse
//   GET  /v1/root           the mesh root certificate (PEM), for tools      → text/plain
//   POST /v1/stream         mTLS with the workload certificate; body ProxyHello. The answer is a
//        long-lived response of newline-delimited JSON ServerMessages: the whole view on connect,
//        then a new view whenever a change affects this proxy (and only then), and `ping`s. The
//        stream's end (either side) deregisters the proxy's endpoint.
//   POST /v1/ack            mTLS; body ProxyAck: the proxy applied (ack) or refused (nack) a version.
//   POST /v1/heartbeat      mTLS; body {proxyId}: keeps the registration alive between pings;
//        a registration whose heartbeat lapses (HEARTBEAT_LAPSE_MS) is dropped.
//
// Errors are problem+json with a code. Proxies keep serving their last good view while the
// control plane is away and reconnect with exponential backoff and jitter.
//
// Restart warm-up. The registry lives in the control plane's memory, so a restarted control plane
// starts with none of the sidecars that are still running; they come back one by one over the
// next reconnect backoff (at most 30 s). Views cut in between would drop the sidecars not back yet
// and callers would get 503 UH. So a reconnecting proxy says in its hello which sidecar endpoints
// its view lists (`knownMeshEndpoints`, with `currentVersion`), and for HEARTBEAT_LAPSE_MS after
// its start the control plane keeps those in that proxy's own views until they register again.
// That is as long as the old control plane would have kept a registration whose heartbeats
// stopped, and longer than the reconnect backoff; a sidecar that did not come back by then is
// gone and is dropped at the end of the warm-up. What a proxy reports only shapes its own view,
// never another proxy's, and only the Service ports a registered sidecar could join.

import type { CertificateGrant } from '../identity/mesh-ca.ts';
import type {
  EffectivePolicyIR,
  GatewayIR,
  HTTPRouteIR,
  IstioPolicyIR,
  ServiceIR,
  TLSCertificateIR,
  ApiDefinitionIR,
} from '../config/snapshot.ts';

export const DEFAULT_DISCOVERY_PORT = 15010;
export const DEFAULT_CONTROL_PLANE_ADMIN_PORT = 15014;
export const PING_INTERVAL_MS = 15_000;
export const HEARTBEAT_INTERVAL_MS = 10_000;
export const HEARTBEAT_LAPSE_MS = 35_000;
/** How long a restarted control plane keeps what reconnecting proxies knew (see above). */
export const RESTART_WARM_UP_MS = HEARTBEAT_LAPSE_MS;

export interface CertificateRequest {
  /** PKCS#10 CSR in PEM. */
  csr: string;
}

export type CertificateResponse = CertificateGrant;

export type ProxyKind = 'sidecar' | 'gateway';

/** Sent once when a proxy opens its stream. The identity comes from its client certificate. */
export interface ProxyHello {
  /** Stable per proxy process: "<kind>~<namespace>~<name>~<address>:<port>" is a good choice. */
  proxyId: string;
  kind: ProxyKind;
  /** Sidecar: the Service it fronts (for its inbound policies and registration). */
  service?: string;
  namespace: string;
  serviceAccount: string;
  /** Workload labels, e.g. {app: reviews, version: v2}: policy selectors and route subsets use them. */
  labels: Record<string, string>;
  /** Sidecar: where peers reach its inbound (mTLS) listener. */
  address?: string;
  inboundPort?: number;
  /** Sidecar: the application port behind it (a Service port whose targetPort is this maps to the inbound port). */
  appPort?: number;
  /** Gateway: the Gateways it serves ("namespace/name"); all of meshgate's when absent. */
  gateways?: string[];
  /** The version the proxy already serves (after a reconnect), so an unchanged view is not resent. */
  currentVersion?: string;
  /** With currentVersion: the `meshEndpoints` of the view it serves (see "Restart warm-up"). */
  knownMeshEndpoints?: ProxyView['meshEndpoints'];
}

/** An endpoint a sidecar registered; merged with static EndpointSlices into its Services. */
export interface RegisteredEndpoint {
  proxyId: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  address: string;
  /** The sidecar's inbound mTLS port. */
  port: number;
  appPort: number;
}

/**
 * What one proxy needs, cut from the snapshot by the control plane. Services' endpoints already
 * include registered sidecars (marked `mesh` in `meshEndpoints` so callers use mTLS to them).
 */
export interface ProxyView {
  /** Hash of this view's content: equal views, equal versions (per proxy). */
  version: string;
  /** The snapshot version it was cut from. */
  snapshotVersion: string;
  trustDomain: string;
  rootNamespace: string;
  /** Gateways: the served Gateways with their listeners; sidecars: []. */
  gateways: GatewayIR[];
  /** Routes referenced by `gateways` (edge) or by the reachable services' mesh routes. */
  routes: HTTPRouteIR[];
  /** Services the proxy may call, with endpoints (static + registered). */
  services: ServiceIR[];
  /** For each "namespace/name:port" of a Service: the endpoints that are sidecars (mTLS) and their identities. */
  meshEndpoints: Record<string, { address: string; port: number; spiffeId: string }[]>;
  tlsCertificates: TLSCertificateIR[];
  effectivePolicies: Record<string, EffectivePolicyIR>;
  policySecrets: Record<string, Record<string, string>>;
  /** Sidecars: the Istio policies that select this workload (already filtered by scope/selector). */
  inbound?: {
    peerAuthentications: IstioPolicyIR[];
    authorizationPolicies: IstioPolicyIR[];
    requestAuthentications: IstioPolicyIR[];
  };
  apis: ApiDefinitionIR[];
}

export type ServerMessage =
  | { type: 'view'; view: ProxyView }
  | { type: 'ping'; at: string }
  /** The control plane is shutting down or replaced this stream; reconnect after `retryAfterMs`. */
  | { type: 'goaway'; reason: string; retryAfterMs: number };

export interface ProxyAck {
  proxyId: string;
  version: string;
  /** false: NACK — the proxy refused the version and keeps the previous one. */
  ok: boolean;
  error?: string;
}

/** One row of `meshgate status` (GET /status on the control plane's admin port). */
export interface ProxyStatus {
  proxyId: string;
  kind: ProxyKind;
  identity: string;
  namespace: string;
  service?: string;
  address?: string;
  connectedAt: string;
  /** The latest version computed for this proxy. */
  latestVersion: string;
  ackedVersion?: string;
  state: 'SYNCED' | 'STALE' | 'NACKED';
  nackError?: string;
  certificateExpiry?: string;
}
