import { describe, expect, it } from 'vitest';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import type {
  BackendTrafficPolicySpec,
  ClientTrafficPolicySpec,
  SecurityPolicySpec,
} from '../../shared/config/schemas/envoy-gateway.ts';

function parse(text: string) {
  return parseTexts([{ file: 'policy.yaml', text }]);
}

function parseOne<Spec>(text: string) {
  const result = parse(text);
  expect(result.errors.map(formatConfigError)).toEqual([]);
  expect(result.resources).toHaveLength(1);
  const resource = result.resources[0];
  if (!resource) throw new Error('no resource');
  return { spec: resource.spec as Spec, unsupported: resource.unsupported };
}

/** `path (line:col): message` for each error. */
function errorsOf(text: string): string[] {
  return parse(text).errors.map(
    (e) => `${e.path} (${e.location.line}:${e.location.col}): ${e.message}`,
  );
}

function messagesOf(text: string): string[] {
  return parse(text).errors.map((e) => `${e.path}: ${e.message}`);
}

const HEADER = (kind: string) => `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ${kind}
metadata:
  name: p
  namespace: shop
spec:`;

const routeTarget = `
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: orders`;

describe('SecurityPolicy', () => {
  const full = `${HEADER('SecurityPolicy')}
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: orders
    sectionName: api
  cors:
    allowOrigins: ["https://*.shop.example", "http://localhost:3000", "*"]
    allowMethods: [GET, POST, OPTIONS]
    allowHeaders: [authorization, content-type]
    exposeHeaders: [x-request-id]
    maxAge: 10m
    allowCredentials: true
  apiKeyAuth:
    credentialRefs:
    - name: partner-keys
    extractFrom:
    - headers: [x-api-key]
    - params: [api_key]
    forwardClientIDHeader: x-client-id
    sanitize: true
  jwt:
    optional: false
    providers:
    - name: corp
      issuer: https://login.corp.example/
      audiences: [orders-api]
      remoteJWKS:
        uri: https://login.corp.example/.well-known/jwks.json
      claimToHeaders:
      - header: x-user
        claim: sub
      extractFrom:
        headers:
        - name: authorization
          valuePrefix: "Bearer "
        cookies: [session]
        params: [token]
    - name: partners
      localJWKS:
        inline: '{"keys":[]}'
  oidc:
    provider:
      issuer: https://login.corp.example
      authorizationEndpoint: https://login.corp.example/authorize
      tokenEndpoint: https://login.corp.example/token
      endSessionEndpoint: https://login.corp.example/logout
    clientID: orders-web
    clientSecret:
      name: orders-oidc
    cookieNames:
      accessToken: orders-at
      idToken: orders-id
    cookieConfig:
      sameSite: Strict
    cookieDomain: shop.example
    scopes: [openid, email, profile]
    resources: [https://api.shop.example]
    redirectURL: https://orders.shop.example/oauth2/callback
    logoutPath: /logout
    forwardAccessToken: true
    defaultTokenTTL: 30m
    defaultRefreshTokenTTL: 168h
  authorization:
    defaultAction: Deny
    rules:
    - name: admins-write
      action: Allow
      operation:
        methods: [POST, PUT, DELETE]
      principal:
        jwt:
          provider: corp
          claims:
          - name: realm_access.roles
            valueType: StringArray
            values: [admin]
          scopes: ["orders:write"]
    - name: office
      action: Allow
      principal:
        clientCIDRs: [10.0.0.0/8, "2001:db8::/32"]
        headers:
        - name: x-tenant
          values: [acme]
`;

  it('parses a full policy and applies the upstream defaults', () => {
    const { spec, unsupported } = parseOne<SecurityPolicySpec>(full);
    // The ID token lives inside meshgate's encrypted session cookie: its own cookie name is moot.
    expect(unsupported.map((u) => `${u.path} (${u.effect})`)).toEqual([
      'spec.oidc.cookieNames.idToken (ignore)',
    ]);
    const [corp, partners] = spec.jwt?.providers ?? [];
    expect(corp?.remoteJWKS?.cacheDuration).toBe('300s');
    expect(partners?.localJWKS).toEqual({ type: 'Inline', inline: '{"keys":[]}' });
    expect(spec.oidc?.refreshToken).toBe(true);
    expect(spec.oidc?.clientSecret).toEqual({ group: '', kind: 'Secret', name: 'orders-oidc' });
    expect(spec.apiKeyAuth?.credentialRefs[0]).toEqual({
      group: '',
      kind: 'Secret',
      name: 'partner-keys',
    });
    expect(spec.authorization?.rules?.[0]?.principal.jwt?.claims?.[0]?.valueType).toBe(
      'StringArray',
    );
    expect(spec.authorization?.defaultAction).toBe('Deny');
  });

  it('reports a misspelt field at its key', () => {
    expect(
      errorsOf(`${HEADER('SecurityPolicy')}${routeTarget}
  jwt:
    providers:
    - name: corp
      remoteJwks:
        uri: https://login.corp.example/jwks
`),
    ).toEqual(['spec.jwt.providers[0].remoteJwks (14:7): unknown field']);
  });

  it('rejects an unknown action with the allowed values', () => {
    expect(
      errorsOf(`${HEADER('SecurityPolicy')}${routeTarget}
  authorization:
    defaultAction: Reject
`),
    ).toEqual(['spec.authorization.defaultAction (12:20): expected one of Allow, Deny']);
  });

  it('needs a target, and exactly one of targetRef and targetRefs', () => {
    expect(
      messagesOf(`${HEADER('SecurityPolicy')}
  cors:
    allowOrigins: ["*"]
---
${HEADER('SecurityPolicy').replace('name: p', 'name: q')}${routeTarget}
  targetRef:
    group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: orders
`),
    ).toEqual([
      'spec: a target is required: set targetRefs (or targetSelectors)',
      'spec.targetRefs: either targetRef or targetRefs must be used, not both',
    ]);
  });

  it('lets targetSelectors stand alone or join a targetRef, as the upstream rule does', () => {
    const result = parse(`${HEADER('SecurityPolicy')}
  targetSelectors:
  - kind: HTTPRoute
    matchLabels:
      api: public
---
${HEADER('SecurityPolicy').replace('name: p', 'name: q')}
  targetRef:
    group: gateway.networking.k8s.io
    kind: Gateway
    name: edge
  targetSelectors:
  - kind: HTTPRoute
    matchExpressions:
    - key: api
      operator: Exists
`);
    expect(result.errors).toEqual([]);
    const selectors = (result.resources[0]?.spec as SecurityPolicySpec).targetSelectors;
    expect(selectors?.[0]?.group).toBe('gateway.networking.k8s.io');
  });

  it('limits target groups and kinds, and mergeType to route targets', () => {
    expect(
      messagesOf(`${HEADER('SecurityPolicy')}
  mergeType: StrategicMerge
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: Gateway
    name: edge
  - group: ""
    kind: Service
    name: orders
`),
    ).toEqual([
      'spec.targetRefs[1].group: this policy can only target group gateway.networking.k8s.io',
      'spec.targetRefs[1].kind: this policy can only target kind Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute',
      'spec.mergeType: mergeType can only be used with xRoute targets',
    ]);
  });

  it('keeps the one-of rules of JWT, OIDC and API keys', () => {
    expect(
      messagesOf(`${HEADER('SecurityPolicy')}${routeTarget}
  apiKeyAuth:
    credentialRefs:
    - name: keys
    extractFrom:
    - headers: [x-api-key]
      params: [key]
  jwt:
    providers:
    - name: corp
  oidc:
    provider:
      issuer: https://login.corp.example
    clientSecret:
      name: oidc
`),
    ).toEqual([
      'spec.apiKeyAuth.extractFrom[0]: each extractFrom entry must set exactly one of headers, params or cookies',
      'spec.jwt.providers[0].remoteJWKS: exactly one of remoteJWKS or localJWKS must be set',
      'spec.oidc.clientID: exactly one of clientID or clientIDRef must be set',
    ]);
  });

  it('checks that a JWT principal names a provider of the policy', () => {
    expect(
      messagesOf(`${HEADER('SecurityPolicy')}${routeTarget}
  authorization:
    rules:
    - action: Allow
      principal:
        jwt:
          provider: corp
          scopes: [read]
`),
    ).toEqual([
      `spec.authorization.rules[0].principal.jwt.provider: no JWT provider "corp" in this policy's jwt.providers`,
    ]);
  });

  it('rejects a wildcard in the middle of a CORS origin', () => {
    expect(
      messagesOf(`${HEADER('SecurityPolicy')}${routeTarget}
  cors:
    allowOrigins: ["https://foo.*.example"]
`),
    ).toEqual([
      'spec.cors.allowOrigins[0]: must be "*" or scheme://host[:port], the host optionally starting with "*."',
    ]);
  });

  it('reports basic auth, external authorization and ConfigMap JWKS as unsupported', () => {
    const { unsupported } = parseOne<SecurityPolicySpec>(`${HEADER('SecurityPolicy')}${routeTarget}
  basicAuth:
    users:
      name: htpasswd
  extAuth:
    http:
      backendRefs:
      - name: authz
        port: 8080
      headersToBackend: [x-user]
  jwt:
    providers:
    - name: corp
      localJWKS:
        type: ValueRef
        valueRef:
          group: ""
          kind: ConfigMap
          name: jwks
`);
    expect(unsupported.map((u) => `${u.path} ${u.effect}`)).toEqual([
      'spec.basicAuth reject',
      'spec.extAuth reject',
      'spec.jwt.providers[0].localJWKS.valueRef reject',
    ]);
  });
});

describe('BackendTrafficPolicy', () => {
  const full = `${HEADER('BackendTrafficPolicy')}${routeTarget}
  rateLimit:
    local:
      rules:
      - clientSelectors:
        - headers:
          - name: x-user-id
            type: Distinct
          path:
            value: /orders
        limit:
          requests: 10
          unit: Second
    global:
      rules:
      - clientSelectors:
        - sourceCIDR:
            type: Distinct
            value: 0.0.0.0/0
          methods:
          - value: POST
        limit:
          requests: 1000
          unit: Hour
        cost:
          request:
            from: Number
            number: 1
        shared: true
  loadBalancer:
    type: ConsistentHash
    consistentHash:
      type: Cookie
      cookie:
        name: session-affinity
        ttl: 1h
        attributes:
          SameSite: Strict
  retry:
    retryOn:
      triggers: [connect-failure, retriable-status-codes]
      httpStatusCodes: [502, 503]
    perRetry:
      timeout: 2s
      backOff:
        baseInterval: 100ms
        maxInterval: 1s
  timeout:
    tcp:
      connectTimeout: 3s
    http:
      requestTimeout: 15s
      connectionIdleTimeout: 5m
      maxConnectionDuration: 1h
  circuitBreaker:
    maxConnections: 200
    perEndpoint:
      maxConnections: 50
  healthCheck:
    active:
      type: HTTP
      http:
        path: /healthz
        expectedStatuses: [200, 204]
    passive:
      consecutive5XxErrors: 3
      maxEjectionPercent: 50
  faultInjection:
    delay:
      fixedDelay: 250ms
      percentage: 5
    abort:
      httpStatus: 503
      percentage: 0.5
`;

  it('parses the features meshgate implements and applies the upstream defaults', () => {
    const { spec, unsupported } = parseOne<BackendTrafficPolicySpec>(full);
    expect(unsupported).toEqual([]);
    expect(spec.retry?.numRetries).toBe(2);
    expect(spec.circuitBreaker).toEqual({
      maxConnections: 200,
      maxPendingRequests: 1024,
      maxParallelRequests: 1024,
      maxParallelRetries: 1024,
      perEndpoint: { maxConnections: 50 },
    });
    expect(spec.healthCheck?.active).toMatchObject({
      timeout: '1s',
      interval: '3s',
      unhealthyThreshold: 3,
      healthyThreshold: 1,
    });
    expect(spec.healthCheck?.passive).toEqual({
      splitExternalLocalOriginErrors: false,
      interval: '3s',
      consecutiveLocalOriginFailures: 5,
      consecutive5XxErrors: 3,
      baseEjectionTime: '30s',
      maxEjectionPercent: 50,
      alwaysEjectOneEndpoint: false,
    });
    expect(spec.loadBalancer?.consistentHash?.tableSize).toBe(65537);
    const local = spec.rateLimit?.local?.rules?.[0]?.clientSelectors?.[0];
    expect(local?.headers?.[0]).toEqual({ name: 'x-user-id', type: 'Distinct', invert: false });
    expect(local?.path).toEqual({ type: 'PathPrefix', value: '/orders', invert: false });
    expect(spec.faultInjection?.delay?.percentage).toBe(5);
    expect(spec.faultInjection?.abort).toEqual({ httpStatus: 503, percentage: 0.5 });
  });

  it('reports a misspelt field at its key', () => {
    expect(
      errorsOf(`${HEADER('BackendTrafficPolicy')}${routeTarget}
  retry:
    retryon:
      triggers: [5xx]
`),
    ).toEqual(['spec.retry.retryon (12:5): unknown field']);
  });

  it('rejects an unknown rate limit unit with the allowed values', () => {
    expect(
      errorsOf(`${HEADER('BackendTrafficPolicy')}${routeTarget}
  rateLimit:
    local:
      rules:
      - limit:
          requests: 10
          unit: Week
`),
    ).toEqual([
      'spec.rateLimit.local.rules[0].limit.unit (16:17): expected one of Second, Minute, Hour, Day, Month, Year',
    ]);
  });

  it('keeps the load balancer rules', () => {
    expect(
      messagesOf(`${HEADER('BackendTrafficPolicy')}${routeTarget}
  loadBalancer:
    type: ConsistentHash
---
${HEADER('BackendTrafficPolicy').replace('name: p', 'name: q')}${routeTarget}
  loadBalancer:
    type: Random
    slowStart:
      window: 30s
---
${HEADER('BackendTrafficPolicy').replace('name: p', 'name: r')}${routeTarget}
  loadBalancer:
    type: ConsistentHash
    consistentHash:
      type: Header
`),
    ).toEqual([
      'spec.loadBalancer.consistentHash: consistentHash must be set exactly when type is ConsistentHash',
      'spec.loadBalancer.slowStart: slowStart is only supported for RoundRobin and LeastRequest load balancers',
      'spec.loadBalancer.consistentHash.header: consistent hash type Header needs the header field',
    ]);
  });

  it('keeps the fault injection, retry and rate limit rules', () => {
    expect(
      messagesOf(`${HEADER('BackendTrafficPolicy')}${routeTarget}
  faultInjection:
    abort:
      httpStatus: 503
      grpcStatus: 14
  retry:
    perRetry:
      backOff:
        baseInterval: 2s
        maxInterval: 500ms
  rateLimit:
    global:
      rules:
      - clientSelectors:
        - {}
        limit:
          requests: 5
          unit: Minute
      - clientSelectors:
        - headers:
          - name: x-tenant
            type: Distinct
            value: acme
        limit:
          requests: 5
          unit: Minute
`),
    ).toEqual([
      'spec.retry.perRetry.backOff.maxInterval: maxInterval must be greater than or equal to baseInterval',
      'spec.rateLimit.global.rules[0].clientSelectors[0]: at least one of headers, methods, path, sourceCIDR or queryParams must be set',
      'spec.rateLimit.global.rules[1].clientSelectors[0].headers[0].value: value must not be set for type Distinct',
      'spec.faultInjection.abort.grpcStatus: httpStatus and grpcStatus cannot be simultaneously defined',
    ]);
  });

  it('accepts the fields meshgate does not implement and reports them', () => {
    const { unsupported } = parseOne<BackendTrafficPolicySpec>(`${HEADER(
      'BackendTrafficPolicy',
    )}${routeTarget}
  compressor:
  - type: Gzip
    gzip: {}
  responseOverride:
  - match:
      statusCodes:
      - type: Range
        range: { start: 500, end: 599 }
    response:
      contentType: application/json
      body:
        type: Inline
        inline: '{"error":"upstream"}'
  requestBuffer:
    limit: 4Mi
  tcpKeepalive:
    idleTime: 60s
  dns:
    dnsRefreshRate: 10s
    lookupFamily: IPv4Preferred
`);
    expect(unsupported.map((u) => `${u.path} ${u.effect}`)).toEqual([
      'spec.requestBuffer reject',
      'spec.tcpKeepalive ignore',
      'spec.dns ignore',
      'spec.compressor ignore',
      'spec.responseOverride ignore',
    ]);
  });

  it('applies the targetSelector group default and rejects another group', () => {
    expect(
      messagesOf(`${HEADER('BackendTrafficPolicy')}
  targetSelectors:
  - group: example.com
    kind: HTTPRoute
    matchLabels:
      tier: gold
`),
    ).toEqual(['spec.targetSelectors[0].group: group must be gateway.networking.k8s.io']);
  });
});

describe('ClientTrafficPolicy', () => {
  const gatewayTarget = `
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: Gateway
    name: edge
    sectionName: https`;

  it('parses the features meshgate implements and applies the upstream defaults', () => {
    const { spec, unsupported } = parseOne<ClientTrafficPolicySpec>(`${HEADER(
      'ClientTrafficPolicy',
    )}${gatewayTarget}
  clientIPDetection:
    xForwardedFor:
      numTrustedHops: 2
  path:
    escapedSlashesAction: RejectRequest
    disableMergeSlashes: false
  headers:
    withUnderscoresAction: DropHeader
    disableRateLimitHeaders: true
  timeout:
    http:
      requestReceivedTimeout: 30s
      idleTimeout: 5m
      streamIdleTimeout: 1m
  connection:
    connectionLimit:
      value: 10000
      closeDelay: 1s
      maxRequestsPerConnection: 100
  http1:
    preserveHeaderCase: false
    disableSafeMaxConnectionDuration: false
`);
    expect(unsupported).toEqual([]);
    expect(spec.clientIPDetection?.xForwardedFor?.numTrustedHops).toBe(2);
    expect(spec.connection?.maxAcceptPerSocketEvent).toBe(1);
    expect(spec.path?.escapedSlashesAction).toBe('RejectRequest');
  });

  it('reports a misspelt field at its key', () => {
    expect(
      errorsOf(`${HEADER('ClientTrafficPolicy')}${gatewayTarget}
  path:
    escapedSlashAction: RejectRequest
`),
    ).toEqual(['spec.path.escapedSlashAction (13:5): unknown field']);
  });

  it('rejects an unknown path action with the allowed values', () => {
    expect(
      errorsOf(`${HEADER('ClientTrafficPolicy')}${gatewayTarget}
  path:
    escapedSlashesAction: Decode
`),
    ).toEqual([
      'spec.path.escapedSlashesAction (13:27): expected one of KeepUnchanged, RejectRequest, UnescapeAndRedirect, UnescapeAndForward',
    ]);
  });

  it('targets gateways only', () => {
    expect(messagesOf(`${HEADER('ClientTrafficPolicy')}${routeTarget}`)).toEqual([
      'spec.targetRefs[0].kind: this policy can only target kind Gateway/ListenerSet',
    ]);
  });

  it('keeps the client IP detection one-of rules', () => {
    expect(
      messagesOf(`${HEADER('ClientTrafficPolicy')}${gatewayTarget}
  clientIPDetection:
    xForwardedFor:
      numTrustedHops: 1
      trustedCIDRs: [10.0.0.0/8]
---
${HEADER('ClientTrafficPolicy').replace('name: p', 'name: q')}${gatewayTarget}
  clientIPDetection:
    xForwardedFor:
      trustedCIDRs: [10.0.0.0/8]
    customHeader:
      name: x-real-ip
`),
    ).toEqual([
      'spec.clientIPDetection.xForwardedFor.trustedCIDRs: only one of numTrustedHops or trustedCIDRs may be set',
      'spec.clientIPDetection.customHeader: customHeader cannot be used together with xForwardedFor',
    ]);
  });

  // Regression: these were accepted, then neither applied by the gateway nor reported.
  it('reports the connection and HTTP/1 settings the gateway does not apply', () => {
    const { unsupported } = parseOne<ClientTrafficPolicySpec>(`${HEADER(
      'ClientTrafficPolicy',
    )}${gatewayTarget}
  connection:
    connectionLimit:
      value: 100
      maxConnectionDuration: 1h
      maxStreamDuration: 5m
  http1:
    enableTrailers: false
    preserveHeaderCase: true
    disableSafeMaxConnectionDuration: true
`);
    expect(unsupported.map((u) => `${u.path} ${u.effect}`)).toEqual([
      'spec.http1.preserveHeaderCase ignore',
      'spec.http1.disableSafeMaxConnectionDuration ignore',
      'spec.connection.connectionLimit.maxConnectionDuration ignore',
      'spec.connection.connectionLimit.maxStreamDuration ignore',
      'spec.http1.enableTrailers ignore',
    ]);
  });

  it('accepts TLS and PROXY protocol settings and reports them as not applied', () => {
    const { unsupported } = parseOne<ClientTrafficPolicySpec>(`${HEADER(
      'ClientTrafficPolicy',
    )}${gatewayTarget}
  proxyProtocol:
    optional: false
  tls:
    minVersion: "1.3"
    clientValidation:
      caCertificateRefs:
      - name: client-ca
  http3: {}
`);
    expect(unsupported.map((u) => `${u.path} ${u.effect}`)).toEqual([
      'spec.proxyProtocol reject',
      'spec.tls reject',
      'spec.http3 ignore',
    ]);
  });
});
