import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseFolder, parseTexts } from '../../shared/config/parse.ts';
import type {
  AuthorizationPolicySpec,
  PeerAuthenticationSpec,
  RequestAuthenticationSpec,
} from '../../shared/config/schemas/istio-security.ts';

const CONFORMANCE = fileURLToPath(
  new URL('../../../shared/conformance/istio-authz/policies', import.meta.url),
);

function parse(text: string) {
  return parseTexts([{ file: 'policy.yaml', text }]);
}

function parseOne<Spec>(text: string): Spec {
  const result = parse(text);
  expect(result.errors.map(formatConfigError)).toEqual([]);
  expect(result.resources).toHaveLength(1);
  return result.resources[0]?.spec as Spec;
}

function errorsOf(text: string) {
  return parse(text).errors.map((e) => ({
    path: e.path,
    message: e.message,
    at: `${e.location.line}:${e.location.col}`,
  }));
}

describe('PeerAuthentication', () => {
  it('parses a workload policy with port overrides', () => {
    const spec = parseOne<PeerAuthenticationSpec>(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: orders
  namespace: shop
spec:
  selector:
    matchLabels:
      app: orders
  mtls:
    mode: STRICT
  portLevelMtls:
    9090:
      mode: PERMISSIVE
    "8081":
      mode: DISABLE
    15020: {}
`);
    expect(spec.mtls?.mode).toBe('STRICT');
    expect(spec.portLevelMtls).toEqual({
      '9090': { mode: 'PERMISSIVE' },
      '8081': { mode: 'DISABLE' },
      '15020': { mode: 'UNSET' },
    });
  });

  it('accepts a mesh-wide policy in v1beta1 and an omitted spec', () => {
    const result = parse(`
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: PERMISSIVE
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: inherit
  namespace: shop
`);
    expect(result.errors).toEqual([]);
    expect(result.resources.map((r) => r.spec)).toEqual([{ mtls: { mode: 'PERMISSIVE' } }, {}]);
  });

  it('rejects an unknown mode with the allowed values', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICTEST
`),
    ).toEqual([
      {
        path: 'spec.mtls.mode',
        message: 'expected one of UNSET, DISABLE, PERMISSIVE, STRICT',
        at: '8:11',
      },
    ]);
  });

  it('requires a selector for portLevelMtls and a port in range', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
spec:
  portLevelMtls:
    70000:
      mode: DISABLE
`),
    ).toEqual([
      // Value errors point at the value: the port's settings, then the map itself.
      { path: 'spec.portLevelMtls.70000', message: 'port must be between 1-65535', at: '9:7' },
      {
        path: 'spec.portLevelMtls',
        message: 'portLevelMtls requires selector (a workload policy with matchLabels)',
        at: '8:5',
      },
    ]);
  });

  it('rejects wildcards in selector labels', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
spec:
  selector:
    matchLabels:
      app: "orders-*"
`).map((e) => e.message),
    ).toEqual(['wildcard not allowed in label value match']);
  });
});

const fullAuthorizationPolicy = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: orders-read
  namespace: shop
spec:
  selector:
    matchLabels:
      app: orders
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/frontend"]
        notPrincipals: ["cluster.local/ns/shop/sa/legacy"]
        requestPrincipals: ["https://issuer.example/*"]
        notRequestPrincipals: ["https://issuer.example/banned"]
        namespaces: ["shop"]
        notNamespaces: ["sandbox"]
        ipBlocks: ["10.1.0.0/16", "10.2.3.4"]
        notIpBlocks: ["10.1.9.0/24"]
        remoteIpBlocks: ["203.0.113.0/24"]
        notRemoteIpBlocks: ["2001:db8::/32"]
        trustDomains: ["cluster.local"]
        notTrustDomains: ["legacy.local"]
    - source:
        serviceAccounts: ["shop/checkout", "reporting"]
        notServiceAccounts: ["shop/batch"]
    to:
    - operation:
        hosts: ["orders.shop.svc.cluster.local"]
        notHosts: ["admin.shop.example"]
        ports: ["8080"]
        notPorts: ["9090"]
        methods: ["GET", "HEAD"]
        notMethods: ["DELETE"]
        paths: ["/orders/*", "/orders/{*}/items"]
        notPaths: ["/orders/internal*"]
    when:
    - key: request.auth.claims[groups]
      values: ["buyers"]
    - key: source.ip
      notValues: ["10.1.2.3"]
`;

describe('AuthorizationPolicy', () => {
  it('parses every source, operation and condition field and defaults the action to ALLOW', () => {
    const spec = parseOne<AuthorizationPolicySpec>(fullAuthorizationPolicy);
    expect(spec.action).toBe('ALLOW');
    expect(spec.rules?.[0]?.from?.[0]?.source.trustDomains).toEqual(['cluster.local']);
    expect(spec.rules?.[0]?.from?.[1]?.source.serviceAccounts).toEqual([
      'shop/checkout',
      'reporting',
    ]);
    expect(spec.rules?.[0]?.to?.[0]?.operation.paths).toEqual(['/orders/*', '/orders/{*}/items']);
    expect(spec.rules?.[0]?.when?.[1]).toEqual({ key: 'source.ip', notValues: ['10.1.2.3'] });
  });

  it('accepts the allow-nothing and allow-all forms', () => {
    const result = parse(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: shop
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-all
  namespace: shop
spec:
  rules:
  - {}
`);
    expect(result.errors).toEqual([]);
    expect(result.resources.map((r) => r.spec)).toEqual([
      { action: 'ALLOW' },
      { action: 'ALLOW', rules: [{}] },
    ]);
  });

  it('reports a misspelt field at its key', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: orders
spec:
  rules:
  - from:
    - source:
        principal: ["cluster.local/ns/shop/sa/frontend"]
`),
    ).toEqual([
      {
        path: 'spec.rules[0].from[0].source.principal',
        message: 'unknown field',
        at: '10:9',
      },
    ]);
  });

  it('rejects an unknown action with the allowed values', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: orders
spec:
  action: PERMIT
`),
    ).toEqual([
      { path: 'spec.action', message: 'expected one of ALLOW, DENY, AUDIT, CUSTOM', at: '7:11' },
    ]);
  });

  it('allows only one of selector, targetRef and targetRefs', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: edge
spec:
  selector:
    matchLabels:
      app: orders
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: edge
`),
    ).toEqual([
      {
        path: 'spec.targetRefs',
        message:
          'only one of selector, targetRef or targetRefs can be set (found selector and targetRefs)',
        at: '11:3',
      },
    ]);
  });

  it('checks targetRefs against the kinds Istio supports and refuses other namespaces', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: edge
spec:
  targetRefs:
  - kind: HTTPRoute
    group: gateway.networking.k8s.io
    name: orders
  - kind: Service
    name: orders
    namespace: other
`).map((e) => `${e.path}: ${e.message}`),
    ).toEqual([
      'spec.targetRefs[0].kind: supported targets are core/Service, gateway.networking.k8s.io/Gateway and networking.istio.io/ServiceEntry',
      'spec.targetRefs[1].namespace: cross namespace referencing is not currently supported',
    ]);
  });

  it('needs a provider for CUSTOM, and a provider only for CUSTOM', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ext
spec:
  action: CUSTOM
  rules:
  - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: misplaced
spec:
  provider:
    name: opa
`).map((e) => `${e.path}: ${e.message}`),
    ).toEqual([
      'spec.provider: action CUSTOM needs provider.name',
      'spec.provider: provider must only be used with action CUSTOM, not ALLOW',
    ]);
  });

  it('keeps the webhook rules: DENY needs rules, conditions need values, sources are not empty', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-nothing
spec:
  action: DENY
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: broken
spec:
  rules:
  - from:
    - source: {}
    to:
    - operation:
        ports: ["http"]
    when:
    - key: request.headers[x-tenant]
  - from: []
`).map((e) => `${e.path}: ${e.message}`),
    ).toEqual([
      'spec.action: DENY action without rules never triggers; add an empty rule {} to deny every request',
      'spec.rules[0].from[0].source: source must not be empty',
      'spec.rules[0].to[0].operation.ports[0]: must be a port number between 0 and 65535, written as a string',
      'spec.rules[0].when[0]: at least one of values or notValues must be set for key request.headers[x-tenant]',
      'spec.rules[1].from: must have at least 1 item',
    ]);
  });

  it('keeps serviceAccounts apart from principals and namespaces, and without wildcards', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: sa
spec:
  rules:
  - from:
    - source:
        serviceAccounts: ["shop/*"]
    - source:
        serviceAccounts: ["shop/frontend"]
        namespaces: ["shop"]
`).map((e) => `${e.path}: ${e.message}`),
    ).toEqual([
      'spec.rules[0].from[0].source.serviceAccounts[0]: wildcard not allowed in serviceAccounts',
      'spec.rules[0].from[1].source.serviceAccounts: cannot set serviceAccounts with namespaces or principals',
    ]);
  });

  it('validates IP blocks', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ips
spec:
  rules:
  - from:
    - source:
        ipBlocks: ["10.0.0.0/33", "not-an-ip"]
`).map((e) => e.path),
    ).toEqual([
      'spec.rules[0].from[0].source.ipBlocks[0]',
      'spec.rules[0].from[0].source.ipBlocks[1]',
    ]);
  });

  it('reports a CUSTOM provider as unsupported', () => {
    const result = parse(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ext
spec:
  action: CUSTOM
  provider:
    name: opa
  rules:
  - to:
    - operation:
        paths: ["/admin/*"]
`);
    expect(result.errors).toEqual([]);
    expect(result.resources[0]?.unsupported).toEqual([
      expect.objectContaining({ path: 'spec.provider', effect: 'reject' }),
    ]);
  });
});

describe('RequestAuthentication', () => {
  it('parses every JWT rule field', () => {
    const spec = parseOne<RequestAuthenticationSpec>(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: orders-jwt
  namespace: shop
spec:
  selector:
    matchLabels:
      app: orders
  jwtRules:
  - issuer: https://issuer.example
    audiences: [orders-api, mobile]
    jwksUri: https://issuer.example/.well-known/jwks.json
    fromHeaders:
    - name: x-jwt-assertion
      prefix: "Bearer "
    - name: authorization
    fromParams: [access_token]
    fromCookies: [session]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - header: x-user
      claim: sub
    - header: x-tenant
      claim: org.tenant
    forwardOriginalToken: true
    timeout: 1500ms
    spaceDelimitedClaims: [scope, permissions]
  - issuer: internal
    jwks: '{"keys":[]}'
`);
    expect(spec.jwtRules).toHaveLength(2);
    expect(spec.jwtRules?.[0]?.timeout).toBe('1500ms');
    expect(spec.jwtRules?.[0]?.outputClaimToHeaders?.[1]).toEqual({
      header: 'x-tenant',
      claim: 'org.tenant',
    });
  });

  it('needs an issuer or jwksUri, and only one of jwks and jwksUri', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
spec:
  jwtRules:
  - audiences: [orders]
  - issuer: a
    jwks: '{"keys":[]}'
    jwksUri: https://a.example/jwks
`).map((e) => `${e.path}: ${e.message}`),
    ).toEqual([
      'spec.jwtRules[0]: issuer or jwksUri must be set',
      'spec.jwtRules[1].jwks: only one of jwks or jwksUri can be set',
    ]);
  });

  it('rejects a too short timeout, a bad claim header and a misspelt field', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
spec:
  jwtRules:
  - issuer: a
    timeout: 0s
    outputClaimToHeaders:
    - header: "x user"
      claim: sub
    fromHeader:
    - name: x-token
`).map((e) => `${e.path} (${e.at}): ${e.message}`),
    ).toEqual([
      'spec.jwtRules[0].outputClaimToHeaders[0].header (11:15): must contain only letters, digits, "-" and "_"',
      'spec.jwtRules[0].timeout (9:14): must be at least 1ms',
      'spec.jwtRules[0].fromHeader (13:5): unknown field',
    ]);
  });

  it('is not read as an unknown version', () => {
    expect(
      errorsOf(`
apiVersion: security.istio.io/v1alpha1
kind: RequestAuthentication
metadata:
  name: jwt
spec: {}
`).map((e) => e.message),
    ).toEqual([
      'RequestAuthentication is read as security.istio.io/v1 or security.istio.io/v1beta1, not security.istio.io/v1alpha1',
    ]);
  });
});

describe('Istio conformance policies', () => {
  it('parse without errors, file by file', async () => {
    const files = (await readdir(CONFORMANCE)).filter((f) => f.endsWith('.yaml')).sort();
    expect(files.length).toBeGreaterThan(30);
    let securityDocs = 0;
    let parsed = 0;
    for (const file of files) {
      const text = await readFile(`${CONFORMANCE}/${file}`, 'utf8');
      securityDocs += (text.match(/^apiVersion: security\.istio\.io\//gm) ?? []).length;
      const result = parseTexts([{ file, text }]);
      expect(result.errors.map(formatConfigError), file).toEqual([]);
      parsed += result.resources.length;
      // networking.istio.io kinds are outside the model: listed, not errors.
      for (const doc of result.ignored) expect(doc.apiVersion).toMatch(/^networking\.istio\.io\//);
    }
    expect(parsed).toBe(securityDocs);
  });

  it('parse as one folder, where the only errors are the suites reusing names', async () => {
    const result = await parseFolder(CONFORMANCE);
    const other = result.errors.filter((e) => !e.message.startsWith('duplicate '));
    expect(other.map(formatConfigError)).toEqual([]);
    expect(result.resources.length).toBeGreaterThan(0);
    expect(new Set(result.resources.map((r) => r.kind))).toEqual(
      new Set(['PeerAuthentication', 'AuthorizationPolicy', 'RequestAuthentication']),
    );
  });
});
