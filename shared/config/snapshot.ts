// The compiled config (the IR): what every proxy view is cut from. Plain JSON-able data, frozen
// after compile; the data plane builds its fast lookup structures from it once per snapshot.
// Keys for cross references are "namespace/name".

export interface Snapshot {
  /** Hash of the content: equal configs give equal versions. */
  version: string;
  controllerName: string;
  rootNamespace: string;
  /** GatewayClasses whose controllerName is ours and that are Accepted. */
  gatewayClasses: string[];
  gateways: GatewayIR[];
  /** Accepted HTTPRoutes (edge and mesh), with only their accepted rules. */
  routes: HTTPRouteIR[];
  services: ServiceIR[];
  /** TLS key pairs referenced by accepted listeners, keyed "namespace/name" of the Secret. */
  tlsCertificates: TLSCertificateIR[];
  /** Envoy Gateway policies that were accepted, with the targets they won. */
  policies: PolicyIR[];
  /** Merged policy configurations, referenced by id from the attachment points. */
  effectivePolicies: Record<string, EffectivePolicyIR>;
  /**
   * Secret data that accepted policies need at run time, keyed "namespace/name": API keys only
   * as digests ("sha256:…", see apiKeyDigest), OIDC client credentials as they are.
   */
  policySecrets: Record<string, Record<string, string>>;
  /** Istio security policies, normalized; which workloads they select is decided per workload. */
  meshSecurity: MeshSecurityIR;
  apis: ApiDefinitionIR[];
}

export interface GatewayIR {
  namespace: string;
  name: string;
  className: string;
  listeners: ListenerIR[];
  /** Effective ClientTrafficPolicy of the whole Gateway (listener-level ones are on the listener). */
  clientTrafficPolicy?: string;
}

export type ListenerProtocol = 'HTTP' | 'HTTPS';

export interface ListenerIR {
  name: string;
  port: number;
  protocol: ListenerProtocol;
  /** Absent: any host. */
  hostname?: string;
  tls?: { certificates: string[] };
  routes: RouteAttachmentIR[];
  /** Effective policy ids (keys of Snapshot.effectivePolicies) for this listener, if any. */
  clientTrafficPolicy?: string;
}

/** One HTTPRoute attached to one listener or mesh Service port. */
export interface RouteAttachmentIR {
  /** "namespace/name" of the HTTPRoute (in Snapshot.routes). */
  route: string;
  /** The route's hostnames intersected with the listener's; empty: every host the listener takes. */
  hostnames: string[];
  /** Effective policies per rule, index-aligned with the route's rules. */
  rules: RulePoliciesIR[];
}

export interface RulePoliciesIR {
  securityPolicy?: string;
  backendTrafficPolicy?: string;
  /** meshgate.io TokenIntrospectionPolicy (RFC 7662 for opaque bearer tokens). */
  tokenIntrospectionPolicy?: string;
}

export interface HTTPRouteIR {
  namespace: string;
  name: string;
  /** For precedence ties; absent sorts as the newest, so a dated route wins over an undated one. */
  creationTimestamp?: string;
  hostnames: string[];
  rules: HTTPRouteRuleIR[];
}

export interface HTTPRouteRuleIR {
  /** Index in the resource's spec.rules (rules that were dropped leave gaps). */
  index: number;
  name?: string;
  /** Never empty: an omitted match list compiles to a PathPrefix "/" match. */
  matches: MatchIR[];
  filters: FilterIR[];
  backends: BackendIR[];
  timeouts?: { requestMs?: number; backendRequestMs?: number };
  retry?: { codes: number[]; attempts?: number; backoffMs?: number };
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';

export interface MatchIR {
  path: { type: PathMatchType; value: string };
  method?: string;
  /** Header names lowercased; only the first entry of each name (as the spec requires). */
  headers: ValueMatchIR[];
  queryParams: ValueMatchIR[];
}

export interface ValueMatchIR {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface HeaderModifierIR {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

export interface PathModifierIR {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  value: string;
}

export type FilterIR =
  | { type: 'RequestHeaderModifier'; headers: HeaderModifierIR }
  | { type: 'ResponseHeaderModifier'; headers: HeaderModifierIR }
  | {
      type: 'RequestRedirect';
      scheme?: 'http' | 'https';
      hostname?: string;
      path?: PathModifierIR;
      port?: number;
      statusCode: 301 | 302 | 303 | 307 | 308;
    }
  | { type: 'URLRewrite'; hostname?: string; path?: PathModifierIR }
  | {
      type: 'RequestMirror';
      backend: BackendIR;
      fraction: { numerator: number; denominator: number };
    }
  | {
      type: 'CORS';
      allowOrigins: string[];
      allowCredentials: boolean;
      allowMethods: string[];
      allowHeaders: string[];
      exposeHeaders: string[];
      maxAge: number;
    }
  /** meshgate's own: answer without forwarding (an unresolvable filter fails closed with 500). */
  | { type: 'DirectResponse'; status: number; message: string };

export interface BackendIR {
  kind: 'Service';
  namespace: string;
  name: string;
  port: number;
  weight: number;
  filters: FilterIR[];
  /** Set when the ref cannot be used: requests that would go here get a 500. */
  invalid?: { reason: string; message: string };
}

export interface ServiceIR {
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  ports: ServicePortIR[];
  /** GAMMA: HTTPRoutes whose parentRef is this Service. */
  meshRoutes: MeshRouteAttachmentIR[];
  /** Effective BackendTrafficPolicy id for traffic to this Service, if one targets it. */
  backendTrafficPolicy?: string;
}

export interface ServicePortIR {
  name?: string;
  port: number;
  /** Number, or the container port name when the Service names it. */
  targetPort: number | string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
  /** Ready endpoints from static EndpointSlices (sidecars add theirs at run time). */
  endpoints: EndpointIR[];
}

export interface EndpointIR {
  address: string;
  port: number;
  hostname?: string;
  nodeName?: string;
  zone?: string;
  /** The workload behind it, when the slice says so ("Pod/namespace/name"). */
  targetRef?: string;
}

export interface MeshRouteAttachmentIR extends RouteAttachmentIR {
  /** Absent: every port of the Service. */
  port?: number;
}

export interface TLSCertificateIR {
  /** "namespace/name" of the kubernetes.io/tls Secret. */
  secret: string;
  certPem: string;
  keyPem: string;
  /** DNS names and wildcards from the certificate's SAN, for SNI selection. */
  dnsNames: string[];
  notAfter: string;
}

export type PolicyKind =
  'SecurityPolicy' | 'BackendTrafficPolicy' | 'ClientTrafficPolicy' | 'TokenIntrospectionPolicy';

export interface PolicyIR {
  kind: PolicyKind;
  namespace: string;
  name: string;
  creationTimestamp?: string;
  /** Targets this policy is in effect for, as "gateway/ns/name", "listener/ns/name/section", "httproute/ns/name", "rule/ns/name/section", "service/ns/name". */
  targets: string[];
  spec: unknown;
}

export interface EffectivePolicyIR {
  kind: PolicyKind;
  /** Policies merged into this one, most specific first ("namespace/name"). */
  sources: string[];
  spec: unknown;
}

export type PolicyScope = 'mesh' | 'namespace' | 'workload';

export interface MeshSecurityIR {
  peerAuthentications: IstioPolicyIR[];
  authorizationPolicies: IstioPolicyIR[];
  requestAuthentications: IstioPolicyIR[];
}

export interface IstioPolicyIR {
  namespace: string;
  name: string;
  creationTimestamp?: string;
  /** mesh: in the root namespace without selector; namespace: no selector; workload: selector or targetRefs. */
  scope: PolicyScope;
  selector?: Record<string, string>;
  /** Services or Gateways named by targetRefs ("Service/ns/name", "Gateway/ns/name"). */
  targets?: string[];
  spec: unknown;
}

export interface ApiDefinitionIR {
  namespace: string;
  name: string;
  /** "namespace/name" of the HTTPRoute the API is published on. */
  route: string;
  spec: unknown;
}
