// Istio's own security integration tests as a table over the rendered policies in
// shared/conformance/istio-authz/policies: (policy files, caller, request, expected). Each row
// names the Istio test it comes from (tests/integration/security/authz_test.go, jwt_test.go, and
// the reachability tests); where a row is meshgate's reading rather than an Istio test case, its
// `source` says so. Not a test file: the evaluator test and the explain CLI test both run it.

import type { JWTPayload } from 'jose';
import type { InboundRequest } from '../../shared/authz/evaluate.ts';
import type { MtlsMode } from '../../shared/authz/peer-authentication.ts';
import type { PathNormalization } from '../../shared/routing/normalize-path.ts';
import {
  CALLERS,
  ISTIO_TOKENS,
  PORT,
  WORKLOADS,
  type IstioTokenName,
} from '../helpers/istio-cast.ts';
import type { JwksServer } from '../helpers/jwks-server.ts';

/** Tokens meshgate adds for rules of the newer rendered policies that Istio's stored test lacks. */
export const EXTRA_TOKENS = {
  Issuer2CustomScope: {
    exp: 4715782783,
    iss: 'test-issuer-2@istio.io',
    sub: 'sub-2',
    custom_scope: 'admin user',
  },
  Issuer1CustomScope: {
    exp: 4715782783,
    iss: 'test-issuer-1@istio.io',
    sub: 'sub-1',
    custom_scope: 'admin user',
  },
  Issuer1Scope: {
    exp: 4715782783,
    iss: 'test-issuer-1@istio.io',
    sub: 'sub-1',
    scope: 'read write',
  },
} satisfies Record<string, JWTPayload>;

export type TokenName = IstioTokenName | keyof typeof EXTRA_TOKENS;
export const ALL_TOKENS: Record<TokenName, JWTPayload> = { ...ISTIO_TOKENS, ...EXTRA_TOKENS };

export interface ConformanceRow {
  /** The Istio test (and case) this row comes from. */
  source: string;
  files: string[];
  /** Key of WORKLOADS: the Service whose workloads receive the request. */
  to: string;
  /** Key of CALLERS, or "client" (outside the mesh). */
  from: string;
  /** The caller speaks plaintext (no peer certificate). */
  plaintext?: boolean;
  method?: string;
  /** Path and query, as sent. */
  path: string;
  /** Workload port; default the http port 18080. */
  port?: number;
  host?: string;
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: TokenName;
  /** The same claims signed with a key the JWKS does not have. */
  badSignature?: boolean;
  /** Token in another place: `{TOKEN}` in path or header values is replaced by this token. */
  tokenAt?: TokenName;
  /** Second token for `{TOKEN2}`. */
  token2At?: TokenName;
  /** X-Forwarded-For client (remote.ip). */
  remoteIp?: string;
  normalization?: PathNormalization;
  expect: {
    allow: boolean;
    /** Default 200 when allowed, 403 when denied. */
    status?: 200 | 400 | 401 | 403;
    /** "ns/name rule i" of the deciding policy. */
    by?: string;
    mtls?: MtlsMode;
    plaintextRefused?: boolean;
    /** Header mutation checks: header set to the token's payload segment / token header kept. */
    payloadHeader?: string;
    tokenForwarded?: boolean;
  };
}

const HTTP2 = PORT.http2;
const GRPC = PORT.grpc;
const ECHO = '/proto.EchoTestService/Echo';

type Partial = Omit<ConformanceRow, 'source' | 'files' | 'to' | 'from'> & {
  to?: string;
  from?: string;
};

function group(
  source: string,
  files: string[],
  defaults: { to: string; from: string },
  rows: Partial[],
): ConformanceRow[] {
  return rows.map((r) => ({ source, files, ...defaults, ...r }) as ConformanceRow);
}

const allow = (by?: string) => ({ allow: true, ...(by ? { by } : {}) });
const deny = (by?: string) => ({ allow: false, ...(by ? { by } : {}) });

export const CONFORMANCE_TABLE: ConformanceRow[] = [
  // --- TestAuthz_Principal: ALLOW principals [cluster.local/ns/ns1/sa/a] on b, STRICT ---
  ...group('TestAuthz_Principal', ['TestAuthz_Principal.yaml'], { to: 'ns1/b', from: 'ns1/a' }, [
    { path: '/allow', expect: allow('ns1/b rule 0') },
    { path: '/allow?param=value', port: HTTP2, expect: allow('ns1/b rule 0') },
    { from: 'ns2/a', path: '/allow', expect: deny() },
    { path: '/deny', expect: deny() },
    { from: 'ns2/a', path: '/deny?param=value', port: HTTP2, expect: deny() },
    { method: 'POST', path: ECHO, port: GRPC, expect: allow('ns1/b rule 1') },
    { from: 'ns2/a', method: 'POST', path: ECHO, port: GRPC, expect: deny() },
    {
      plaintext: true,
      path: '/allow',
      expect: { allow: false, plaintextRefused: true, mtls: 'STRICT' },
    },
  ]),
  // --- TestAuthz_DenyPrincipal: global DENY /global-deny*, DENY from ns2/a on b ---
  ...group(
    'TestAuthz_DenyPrincipal',
    ['TestAuthz_DenyPrincipal.yaml'],
    { to: 'ns1/b', from: 'ns2/a' },
    [
      { path: '/deny', expect: deny('ns1/b rule 0') },
      { path: '/deny?param=value', port: HTTP2, expect: deny('ns1/b rule 0') },
      { from: 'ns1/a', path: '/deny', expect: allow() },
      { path: '/deny/allow', expect: allow() },
      { path: '/deny/allow?param=value', expect: allow() },
      { path: '/allow', expect: allow() },
      {
        from: 'ns1/a',
        path: '/global-deny',
        expect: deny('istio-system/policy-deny-system rule 0'),
      },
      {
        path: '/global-deny?param=value',
        port: HTTP2,
        expect: deny('istio-system/policy-deny-system rule 0'),
      },
      { from: 'ns1/a', path: '/global-deny/allow', expect: allow() },
      { method: 'POST', path: ECHO, port: GRPC, expect: deny('ns1/b rule 1') },
      { from: 'ns1/a', method: 'POST', path: ECHO, port: GRPC, expect: allow() },
    ],
  ),
  ...group(
    'TestAuthz_DenyPrincipal (meshgate: a mesh-wide policy also reaches c; ns1/b does not)',
    ['TestAuthz_DenyPrincipal.yaml'],
    { to: 'ns1/c', from: 'ns2/a' },
    [
      { path: '/global-deny', expect: deny('istio-system/policy-deny-system rule 0') },
      { path: '/deny', expect: allow() },
      { path: '/global-deny', port: GRPC, expect: allow() },
    ],
  ),
  // --- TestAuthz_DenyNamespace ---
  ...group(
    'TestAuthz_DenyNamespace',
    ['TestAuthz_DenyNamespace.yaml'],
    { to: 'ns1/b', from: 'ns2/a' },
    [
      { path: '/deny', expect: deny('ns1/b rule 0') },
      { path: '/deny?param=value', expect: deny('ns1/b rule 0') },
      { from: 'ns1/a', path: '/deny', expect: allow() },
      { path: '/deny/allow', expect: allow() },
      { path: '/allow', expect: allow() },
      { method: 'POST', path: ECHO, port: GRPC, expect: deny('ns1/b rule 1') },
      {
        from: 'ns1/a',
        path: '/global-deny',
        expect: deny('istio-system/policy-deny-system rule 0'),
      },
      { path: '/global-deny/allow', port: HTTP2, expect: allow() },
    ],
  ),
  // --- TestAuthz_Namespace: ALLOW namespaces [ns1] ---
  ...group('TestAuthz_Namespace', ['TestAuthz_Namespace.yaml'], { to: 'ns1/b', from: 'ns1/a' }, [
    { path: '/allow', expect: allow('ns1/b rule 0') },
    { path: '/allow?param=value', port: HTTP2, expect: allow('ns1/b rule 0') },
    { from: 'ns2/a', path: '/allow', expect: deny() },
    { path: '/deny', expect: deny() },
    { method: 'POST', path: ECHO, port: GRPC, expect: allow('ns1/b rule 1') },
    { from: 'ns2/a', method: 'POST', path: ECHO, port: GRPC, expect: deny() },
  ]),
  // --- TestAuthz_NotNamespace: DENY notNamespaces [ns1] ---
  ...group(
    'TestAuthz_NotNamespace',
    ['TestAuthz_NotNamespace.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', expect: allow() },
      { from: 'ns2/a', path: '/', expect: deny('ns1/b-deny rule 0') },
      { from: 'ns2/a', method: 'POST', path: ECHO, port: GRPC, expect: deny('ns1/b-deny rule 0') },
      { from: 'ns2/a', path: '/', port: HTTP2, expect: deny('ns1/b-deny rule 0') },
    ],
  ),
  // --- TestAuthz_NotHost: ALLOW notHosts [deny.b.com] (requests from the ingress gateway) ---
  ...group('TestAuthz_NotHost', ['TestAuthz_NotHost.yaml'], { to: 'ns1/b', from: 'ingress' }, [
    { path: '/', host: 'allow.b.com', expect: allow('ns1/allow-b rule 0') },
    { path: '/', host: 'deny.b.com', expect: deny() },
  ]),
  // --- TestAuthz_NotMethod / TestAuthz_NotPort ---
  ...group('TestAuthz_NotMethod', ['TestAuthz_NotMethod.yaml'], { to: 'ns1/b', from: 'ns1/a' }, [
    { method: 'GET', path: '/', expect: allow('ns1/b-allow rule 0') },
    { method: 'PUT', path: '/', expect: deny() },
    { method: 'GET', path: '/', port: HTTP2, expect: allow('ns1/b-allow rule 0') },
    { method: 'PUT', path: '/', port: HTTP2, expect: deny() },
  ]),
  ...group('TestAuthz_NotPort', ['TestAuthz_NotPort.yaml'], { to: 'ns1/b', from: 'ns1/a' }, [
    { path: '/', expect: allow('ns1/b-allow rule 0') },
    { path: '/', port: HTTP2, expect: deny() },
  ]),
  // --- TestAuthz_DenyPlaintext: namespace PERMISSIVE, DENY notPrincipals ["*"] on b ---
  ...group(
    'TestAuthz_DenyPlaintext',
    ['TestAuthz_DenyPlaintext.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
      {
        from: 'ns2/a',
        plaintext: true,
        path: '/',
        expect: { allow: false, by: 'ns1/b rule 0', mtls: 'PERMISSIVE' },
      },
      {
        from: 'ns2/a',
        plaintext: true,
        method: 'POST',
        path: ECHO,
        port: GRPC,
        expect: deny('ns1/b rule 0'),
      },
      { from: 'ns2/a', plaintext: true, to: 'ns1/c', path: '/', expect: allow() },
    ],
  ),
  // --- TestAuthz_JWT: RequestAuthentication for two issuers, ALLOW rules on claims ---
  ...group('TestAuthz_JWT', ['TestAuthz_JWT.yaml'], { to: 'ns1/b', from: 'ns1/a' }, [
    { path: '/token1', expect: deny() },
    { path: '/token2', expect: deny() },
    { token: 'TokenIssuer1', path: '/token1', expect: allow('ns1/b rule 0') },
    { token: 'TokenIssuer1', path: '/token2', expect: deny() },
    { token: 'TokenIssuer2', path: '/token1', expect: deny() },
    { token: 'TokenIssuer2', path: '/token2', expect: allow('ns1/b rule 1') },
    { token: 'TokenIssuer1', path: '/token3', expect: deny() },
    { token: 'TokenIssuer2', path: '/token3', expect: allow('ns1/b rule 15') },
    { token: 'TokenIssuer1', path: '/tokenAny', expect: allow('ns1/b rule 2') },
    { token: 'TokenIssuer2', path: '/tokenAny', expect: allow('ns1/b rule 2') },
    { token: 'TokenIssuer1', path: '/permission', expect: deny() },
    { token: 'TokenIssuer2', path: '/permission', expect: deny() },
    {
      token: 'TokenIssuer2WithSpaceDelimitedScope',
      path: '/permission',
      expect: allow('ns1/b rule 5'),
    },
    { token: 'TokenIssuer1WithNestedClaims1', path: '/nested-key1', expect: allow('ns1/b rule 8') },
    { token: 'TokenIssuer1WithNestedClaims2', path: '/nested-key1', expect: deny() },
    { token: 'TokenIssuer1WithNestedClaims1', path: '/nested-key2', expect: deny() },
    {
      token: 'TokenIssuer1WithNestedClaims2',
      path: '/nested-key2',
      expect: allow('ns1/b rule 10'),
    },
    {
      token: 'TokenIssuer1WithNestedClaims1',
      path: '/nested-2-key1',
      expect: allow('ns1/b rule 11'),
    },
    { token: 'TokenIssuer1WithNestedClaims2', path: '/nested-2-key1', expect: deny() },
    { token: 'TokenIssuer1WithNestedClaims1', path: '/nested-non-exist', expect: deny() },
    { token: 'TokenIssuer1WithNestedClaims2', path: '/nested-non-exist', expect: deny() },
    { path: '/tokenAny', expect: deny() },
  ]),
  ...group(
    'TestAuthz_JWT (rules of the rendered policy that the stored Istio test does not call; expectations from the policy comments and jwtRules semantics)',
    ['TestAuthz_JWT.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { token: 'TokenIssuer1', path: '/valid-jwt', expect: allow('ns1/b rule 12') },
      { path: '/valid-jwt', expect: deny() },
      { token: 'TokenIssuer1WithAzp', path: '/x/presenter', expect: allow('ns1/b rule 13') },
      { token: 'TokenIssuer1', path: '/x/presenter', expect: deny() },
      { token: 'TokenIssuer1WithAud', path: '/x/audiences', expect: allow('ns1/b rule 14') },
      { token: 'TokenIssuer1', path: '/x/audiences', expect: deny() },
      { token: 'Issuer1Scope', path: '/scope', expect: allow('ns1/b rule 3') },
      { token: 'Issuer1Scope', path: '/otherscope', expect: deny() },
      { token: 'Issuer2CustomScope', path: '/custom-scope-admin', expect: allow('ns1/b rule 6') },
      { token: 'Issuer2CustomScope', path: '/custom-scope-user', expect: allow('ns1/b rule 7') },
      // spaceDelimitedClaims is set on the issuer-2 rule only: issuer 1's custom_scope stays one string.
      { token: 'Issuer1CustomScope', path: '/custom-scope-admin', expect: deny() },
      { token: 'TokenExpired', path: '/token1', expect: { allow: false, status: 401 } },
      {
        token: 'TokenIssuer1',
        badSignature: true,
        path: '/token1',
        expect: { allow: false, status: 401 },
      },
    ],
  ),
  // --- TestAuthz_WorkloadSelector ---
  ...group(
    'TestAuthz_WorkloadSelector',
    ['TestAuthz_WorkloadSelector.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/policy-ns1-b-bad', expect: deny() },
      { to: 'ns1/b-bla', path: '/policy-ns1-b-bad', expect: allow('ns1/policy-b-bad rule 0') },
      { path: '/policy-ns1-all', expect: allow('ns1/policy-ns1-all rule 0') },
      { path: '/policy-ns2-all', expect: deny() },
      { path: '/policy-ns1-b', expect: allow('ns1/policy-b rule 0') },
      { path: '/policy-system-b', expect: allow('istio-system/policy-system-b rule 0') },
      { path: '/policy-ns1-c', expect: deny() },
      { path: '/policy-system-c', expect: deny() },
      { to: 'ns1/c', path: '/policy-ns1-c', expect: allow('ns1/policy-c rule 0') },
      {
        to: 'ns1/c',
        path: '/policy-system-c',
        expect: allow('istio-system/policy-system-c rule 0'),
      },
      { to: 'ns1/c', path: '/policy-ns1-b', expect: deny() },
      { to: 'ns1/c', path: '/policy-ns1-all', expect: allow('ns1/policy-ns1-all rule 0') },
      { to: 'ns2/b', path: '/policy-ns2-all', expect: allow('ns2/policy-ns2-all rule 0') },
      { to: 'ns2/b', path: '/policy-ns1-all', expect: deny() },
      {
        to: 'ns2/b',
        path: '/policy-system-b',
        expect: allow('istio-system/policy-system-b rule 0'),
      },
      { to: 'ns2/b', path: '/policy-ns1-b', expect: deny() },
    ],
  ),
  // --- TestAuthz_PathPrecedence: DENY /allow/admin beats ALLOW /allow* ---
  ...group(
    'TestAuthz_PathPrecedence',
    ['TestAuthz_PathPrecedence.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/allow/admin', expect: deny('ns1/policy-b-deny rule 0') },
      { path: '/allow/admin?param=value', expect: deny('ns1/policy-b-deny rule 0') },
      { path: '/allow', expect: allow('ns1/policy-b-allow rule 0') },
      { path: '/allow?param=value', port: HTTP2, expect: allow('ns1/policy-b-allow rule 0') },
    ],
  ),
  // --- TestAuthz_PathTemplating: "/allow/admin/{**}", "/foo/{*}/bar/{**}", "/store/{**}/cart" ---
  ...group(
    'TestAuthz_PathTemplating',
    ['TestAuthz_PathTemplating.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/allow/admin/', expect: allow('ns1/b rule 0') },
      { path: '/allow/admin', expect: deny() },
      { path: '/allow/user/', expect: deny() },
      { path: '/allow/admin?param=value', expect: deny() },
      { path: '/allow', expect: deny() },
      { path: '/allow/admin/temp', expect: allow('ns1/b rule 0') },
      { path: '/allow/admin/temp.txt', expect: allow('ns1/b rule 0') },
      { path: '/allow/admin/foo/temp.txt', expect: allow('ns1/b rule 0') },
      { path: '/foo/buzz/bar/bat.txt', expect: allow('ns1/b rule 0') },
      { path: '/foo/buzz/bar/bat/fuzz.txt', expect: allow('ns1/b rule 0') },
      { path: '/foo/bar/bat.txt', expect: deny() },
      { path: '/foo//bar/bat.txt', expect: deny() },
      // Istio's sidecars keep "//" (pathNormalization BASE): "/store//cart" reaches "{**}" empty.
      {
        path: '/store//cart',
        normalization: { disableMergeSlashes: true },
        expect: allow('ns1/b rule 0'),
      },
      { path: '/store/cart', expect: deny() },
    ],
  ),
  ...group(
    'TestAuthz_PathTemplating (meshgate: adjacent slashes are merged by default, as routing sees the path)',
    ['TestAuthz_PathTemplating.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [{ path: '/store//cart', expect: deny() }],
  ),
  // --- TestAuthz_PathNormalization: ALLOW GET /public* ---
  ...group(
    'TestAuthz_PathNormalization',
    ['TestAuthz_PathNormalization.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/public', expect: allow('ns1/b rule 0') },
      { path: '/public/../public', expect: allow('ns1/b rule 0') },
      { path: '/private', expect: deny() },
      { path: '/public/../private', expect: deny() },
      { path: '/public/./../private', expect: deny() },
      { path: '/public/.././private', expect: deny() },
      { path: '/public/%2E%2E/private', expect: deny() },
      { path: '/public/%2e%2e/private', expect: deny() },
      { path: '/public/%2E/%2E%2E/private', expect: deny() },
      { path: '/public/%2e/%2e%2e/private', expect: deny() },
      { path: '/public/%2E%2E/%2E/private', expect: deny() },
      { path: '/public/%2e%2e/%2e/private', expect: deny() },
    ],
  ),
  // --- TestAuthz_Conditions: `when` on headers, IPs, identities, destination, SNI ---
  ...group('TestAuthz_Conditions', ['TestAuthz_Conditions.yaml'], { to: 'ns1/b', from: 'ns1/a' }, [
    {
      path: '/request-headers',
      headers: { 'x-foo': 'foo' },
      expect: allow('ns1/b-request-headers rule 0'),
    },
    { path: '/request-headers', headers: { 'x-foo': 'bar' }, expect: deny() },
    { path: '/request-headers', expect: deny() },
    {
      path: '/request-headers-notValues',
      headers: { 'x-foo': 'foo' },
      expect: allow('ns1/b-request-headers rule 1'),
    },
    { path: '/request-headers-notValues', headers: { 'x-foo': 'bar' }, expect: deny() },
    { path: '/source-ip', expect: allow('ns1/b-source-ip rule 0') },
    { from: 'ns2/a', path: '/source-ip', expect: deny() },
    { path: '/source-ip-notValues', expect: allow('ns1/b-source-ip rule 1') },
    { from: 'ns2/a', path: '/source-ip-notValues', expect: deny() },
    { path: '/source-namespace', expect: allow('ns1/b-source-namespace rule 0') },
    { from: 'ns2/a', path: '/source-namespace', expect: deny() },
    { path: '/source-namespace-notValues', expect: allow('ns1/b-source-namespace rule 1') },
    { from: 'ns2/a', path: '/source-namespace-notValues', expect: deny() },
    { path: '/source-principal', expect: allow('ns1/b-source-principal rule 0') },
    { from: 'ns2/a', path: '/source-principal', expect: deny() },
    { path: '/source-principal-notValues', expect: allow('ns1/b-source-principal rule 1') },
    { from: 'ns2/a', path: '/source-principal-notValues', expect: deny() },
    { path: '/source-trust-domain', expect: allow('ns1/b-source-trust-domain rule 0') },
    {
      from: 'ns2/a',
      path: '/source-trust-domain-notValues',
      expect: allow('ns1/b-source-trust-domain rule 1'),
    },
    { path: '/destination-ip-good', expect: allow('ns1/b-destination-ip rule 0') },
    { path: '/destination-ip-bad', expect: deny() },
    { path: '/destination-ip-notValues', expect: deny() },
    { path: '/destination-port-good', expect: allow('ns1/b-destination-port rule 0') },
    { path: '/destination-port-bad', expect: deny() },
    { path: '/destination-port-notValues', expect: deny() },
    { path: '/connection-sni-good', expect: allow('ns1/b-connection-sni rule 0') },
    { path: '/connection-sni-bad', expect: deny() },
    { path: '/connection-sni-notValues', expect: deny() },
    { path: '/other', expect: deny() },
  ]),
  // --- TestAuthz_IngressGateway: DENY on the ingress gateway by host and remote IP ---
  ...group(
    'TestAuthz_IngressGateway',
    ['TestAuthz_IngressGateway.yaml'],
    { to: 'istio-system/istio-ingressgateway', from: 'client' },
    [
      { host: 'deny.b.com', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'DENY.B.COM', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'Deny.B.Com', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'deny.suffix.b.com', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'DENY.SUFFIX.B.COM', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'Deny.Suffix.B.Com', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'prefix.b.com', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'PREFIX.B.COM', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'Prefix.B.Com', path: '/', expect: deny('istio-system/policy-b rule 0') },
      { host: 'www.b.com', path: '/', remoteIp: '172.16.0.1', expect: allow() },
      {
        host: 'www.b.com',
        path: '/private',
        remoteIp: '172.16.0.1',
        expect: deny('istio-system/policy-b rule 1'),
      },
      { host: 'www.b.com', path: '/public', remoteIp: '172.16.0.1', expect: allow() },
      {
        host: 'internal.b.com',
        path: '/',
        remoteIp: '172.16.0.1',
        expect: deny('istio-system/policy-b rule 1'),
      },
      {
        host: 'internal.b.com',
        path: '/private',
        remoteIp: '172.16.0.1',
        expect: deny('istio-system/policy-b rule 1'),
      },
      {
        host: 'remoteipblocks.b.com',
        path: '/',
        remoteIp: '172.17.72.46',
        expect: deny('istio-system/policy-b rule 2'),
      },
      {
        host: 'remoteipblocks.b.com',
        path: '/',
        remoteIp: '192.168.5.233',
        expect: deny('istio-system/policy-b rule 2'),
      },
      { host: 'remoteipblocks.b.com', path: '/', remoteIp: '10.4.5.6', expect: allow() },
      {
        host: 'notremoteipblocks.b.com',
        path: '/',
        remoteIp: '10.2.3.4',
        expect: deny('istio-system/policy-b rule 3'),
      },
      { host: 'notremoteipblocks.b.com', path: '/', remoteIp: '172.23.242.188', expect: allow() },
      {
        host: 'remoteipattr.b.com',
        path: '/',
        remoteIp: '10.242.5.7',
        expect: deny('istio-system/policy-b rule 4'),
      },
      {
        host: 'remoteipattr.b.com',
        path: '/',
        remoteIp: '10.124.99.10',
        expect: deny('istio-system/policy-b rule 4'),
      },
      { host: 'remoteipattr.b.com', path: '/', remoteIp: '10.4.5.6', expect: allow() },
    ],
  ),
  // --- TestIngressRequestAuthentication: mesh-wide RequestAuthentication, ALLOW on the gateway ---
  ...group(
    'TestIngressRequestAuthentication (ingress-authn)',
    ['TestIngressRequestAuthentication.yaml'],
    { to: 'istio-system/istio-ingressgateway', from: 'client' },
    [
      { host: 'example.b.com', path: '/', expect: deny() },
      {
        host: 'example.b.com',
        path: '/',
        token: 'TokenIssuer1',
        expect: allow('istio-system/authz-ingress rule 0'),
      },
      { host: 'example.b.com', path: '/', token: 'TokenIssuer2', expect: deny() },
      {
        host: 'example.b.com',
        path: '/',
        token: 'TokenExpired',
        expect: { allow: false, status: 401 },
      },
      {
        host: 'any-request-principal-ok.b.com',
        path: '/',
        token: 'TokenIssuer1',
        expect: allow('istio-system/authz-ingress rule 1'),
      },
      {
        host: 'any-request-principal-ok.b.com',
        path: '/',
        token: 'TokenIssuer2',
        expect: allow('istio-system/authz-ingress rule 1'),
      },
      { host: 'any-request-principal-ok.b.com', path: '/', expect: deny() },
      { host: 'other-host.b.com', path: '/', token: 'TokenIssuer1', expect: deny() },
      {
        host: 'example.b.com',
        path: '/healthz',
        expect: allow('istio-system/authz-ingress rule 2'),
      },
    ],
  ),
  ...group(
    'TestIngressRequestAuthentication (in-mesh-authn)',
    ['TestIngressRequestAuthentication.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', token: 'TokenExpired', expect: { allow: false, status: 401 } },
      { path: '/', expect: allow() },
    ],
  ),
  // --- TestRequestAuthentication (jwt_test.go), one config each ---
  ...group(
    'TestRequestAuthentication authn-only',
    ['TestRequestAuthentication__authn-only.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      {
        path: '/valid-token-noauthz',
        token: 'TokenIssuer1',
        expect: { allow: true, payloadHeader: 'x-test-payload', tokenForwarded: false },
      },
      {
        path: '/valid-token-2-noauthz',
        token: 'TokenIssuer2',
        expect: { allow: true, payloadHeader: 'x-test-payload', tokenForwarded: false },
      },
      {
        path: '/expired-token-noauthz',
        token: 'TokenExpired',
        expect: { allow: false, status: 401 },
      },
      {
        method: 'OPTIONS',
        path: '/expired-token-cors-preflight-request-allowed',
        token: 'TokenExpired',
        headers: { 'access-control-request-method': 'POST', origin: 'https://istio.io' },
        expect: allow(),
      },
      {
        method: 'OPTIONS',
        path: '/expired-token-cors-preflight-request-allowed',
        token: 'TokenExpired',
        headers: { 'access-control-request-method': 'POST' },
        expect: { allow: false, status: 401 },
      },
      { path: '/no-token-noauthz', expect: allow() },
    ],
  ),
  ...group(
    'TestRequestAuthentication authn-authz',
    ['TestRequestAuthentication__authn-authz.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/valid-token', token: 'TokenIssuer1', expect: allow('ns1/b rule 0') },
      { path: '/expired-token', token: 'TokenExpired', expect: { allow: false, status: 401 } },
      { path: '/no-token', expect: deny() },
    ],
  ),
  ...group(
    'TestRequestAuthentication forward',
    ['TestRequestAuthentication__forward.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      {
        path: '/valid-token-forward',
        token: 'TokenIssuer1',
        expect: { allow: true, payloadHeader: 'x-test-payload', tokenForwarded: true },
      },
    ],
  ),
  ...group(
    'TestRequestAuthentication remote',
    ['TestRequestAuthentication__remote.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      {
        path: '/valid-token-forward-remote-jwks',
        token: 'TokenIssuer1',
        expect: { allow: true, tokenForwarded: true },
      },
    ],
  ),
  ...group(
    'TestRequestAuthentication aud',
    ['TestRequestAuthentication__aud.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/valid-aud', token: 'TokenIssuer1', expect: { allow: false, status: 403 } },
      { path: '/valid-aud', token: 'TokenIssuer1WithAud', expect: allow() },
      { path: '/verify-policies-are-combined', token: 'TokenIssuer2', expect: allow() },
    ],
  ),
  ...group(
    'TestRequestAuthentication invalid-jwks',
    ['TestRequestAuthentication__invalid-jwks.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', token: 'TokenIssuer1', expect: { allow: false, status: 401 } },
      {
        path: '/invalid-jwks-valid-token-noauthz',
        token: 'TokenExpired',
        expect: { allow: false, status: 401 },
      },
      { path: '/invalid-jwks-no-token-noauthz', expect: allow() },
    ],
  ),
  ...group(
    'TestRequestAuthentication headers-params',
    ['TestRequestAuthentication__headers-params.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      {
        path: '/valid-token?token={TOKEN}',
        tokenAt: 'TokenIssuer1',
        expect: allow('ns1/b rule 0'),
      },
      {
        path: '/valid-token?secondary_token={TOKEN}',
        tokenAt: 'TokenIssuer1',
        expect: allow('ns1/b rule 0'),
      },
      { path: '/valid-token?token_value={TOKEN}', tokenAt: 'TokenIssuer1', expect: deny() },
      {
        path: '/valid-token?token={TOKEN}&secondary_token={TOKEN}',
        tokenAt: 'TokenIssuer1',
        expect: allow('ns1/b rule 0'),
      },
      {
        path: '/valid-token?token={TOKEN}&secondary_token={TOKEN2}',
        tokenAt: 'TokenIssuer1',
        token2At: 'TokenExpired',
        expect: { allow: false, status: 401 },
      },
      {
        path: '/',
        headers: { 'x-jwt-token': 'Value {TOKEN}' },
        tokenAt: 'TokenIssuer1',
        expect: allow('ns1/b rule 0'),
      },
      {
        path: '/',
        headers: { 'auth-token': 'Token {TOKEN}' },
        tokenAt: 'TokenIssuer1',
        expect: allow('ns1/b rule 0'),
      },
      {
        path: '/',
        headers: { 'auth-header-param': 'Bearer {TOKEN}' },
        tokenAt: 'TokenIssuer1',
        expect: deny(),
      },
    ],
  ),
  // --- TestReachability: PeerAuthentication modes and precedence ---
  ...group(
    'TestReachability global-automtls-disable',
    ['TestReachability__global-automtls-disable.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', expect: { allow: true, mtls: 'DISABLE' } },
      { plaintext: true, path: '/', expect: { allow: true, mtls: 'DISABLE' } },
    ],
  ),
  ...group(
    'TestReachability global-automtls-strict',
    ['TestReachability__global-automtls-strict.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', expect: { allow: true, mtls: 'STRICT' } },
      {
        plaintext: true,
        path: '/',
        expect: { allow: false, mtls: 'STRICT', plaintextRefused: true },
      },
      {
        plaintext: true,
        to: 'ns2/c',
        path: '/',
        expect: { allow: false, mtls: 'STRICT', plaintextRefused: true },
      },
    ],
  ),
  ...group(
    'TestReachability global-mtls-permissive',
    ['TestReachability__global-mtls-permissive.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
      { plaintext: true, path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
    ],
  ),
  ...group(
    'TestReachability mtls-disabled',
    ['TestReachability__mtls-disabled.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { plaintext: true, path: '/', expect: { allow: true, mtls: 'DISABLE' } },
      { plaintext: true, to: 'ns1/c', path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
    ],
  ),
  ...group(
    'TestReachability mtls-permissive',
    ['TestReachability__mtls-permissive.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { plaintext: true, path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
      { path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
    ],
  ),
  ...group(
    'TestReachability mtls-port-override',
    ['TestReachability__mtls-port-override.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { plaintext: true, path: '/', expect: { allow: true, mtls: 'DISABLE' } },
      { plaintext: true, path: '/', port: GRPC, expect: { allow: true, mtls: 'DISABLE' } },
      {
        plaintext: true,
        path: '/',
        port: PORT.httpWorkloadOnly,
        expect: { allow: false, mtls: 'STRICT', plaintextRefused: true },
      },
    ],
  ),
  ...group(
    'TestReachability mtls-strict',
    ['TestReachability__mtls-strict.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { path: '/', expect: { allow: true, mtls: 'STRICT' } },
      {
        plaintext: true,
        path: '/',
        expect: { allow: false, mtls: 'STRICT', plaintextRefused: true },
      },
      { plaintext: true, to: 'ns1/c', path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
    ],
  ),
  ...group(
    'PeerAuthentication precedence (meshgate: two Istio configs applied together)',
    ['TestReachability__global-automtls-strict.yaml', 'TestReachability__mtls-permissive.yaml'],
    { to: 'ns1/b', from: 'ns1/a' },
    [
      { plaintext: true, path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
      {
        plaintext: true,
        to: 'ns1/c',
        path: '/',
        expect: { allow: false, mtls: 'STRICT', plaintextRefused: true },
      },
    ],
  ),
  ...group(
    'PeerAuthentication precedence (meshgate: namespace over mesh)',
    ['TestReachability__global-automtls-strict.yaml', 'TestAuthz_DenyPlaintext.yaml'],
    { to: 'ns1/c', from: 'ns2/a' },
    [
      { plaintext: true, path: '/', expect: { allow: true, mtls: 'PERMISSIVE' } },
      {
        plaintext: true,
        to: 'ns2/b',
        path: '/',
        expect: { allow: false, mtls: 'STRICT', plaintextRefused: true },
      },
    ],
  ),
];

/** Validates that every row names a cast member. */
export function checkTable(rows: readonly ConformanceRow[]): string[] {
  const problems: string[] = [];
  for (const r of rows) {
    if (!WORKLOADS[r.to]) problems.push(`${r.source}: unknown workload ${r.to}`);
    if (r.from !== 'client' && !CALLERS[r.from])
      problems.push(`${r.source}: unknown caller ${r.from}`);
  }
  return problems;
}

// --- turning rows into requests ---

/** Signed tokens by name; `bad` ones are signed with a key the JWKS does not publish. */
export interface SignedTokens {
  good: Record<TokenName, string>;
  bad: Record<TokenName, string>;
}

export async function signAllTokens(server: JwksServer): Promise<SignedTokens> {
  const good = {} as Record<TokenName, string>;
  const bad = {} as Record<TokenName, string>;
  for (const [name, claims] of Object.entries(ALL_TOKENS) as [TokenName, JWTPayload][]) {
    good[name] = await server.sign(claims);
    bad[name] = await server.signWithUnknownKey(claims);
  }
  return { good, bad };
}

/** Istio's invalid-jwks test names a JWKS that does not exist on the internet. */
const MISSING_JWKS =
  'https://raw.githubusercontent.com/istio/istio/master/tests/common/jwt/jwks-not-exist.json';
/** Tests never reach the internet: a loopback port nothing listens on fails the same way. */
const UNREACHABLE_JWKS = 'http://127.0.0.1:9/jwks-not-exist.json';

/** `{JWKS_URI}` in Istio's templates, rendered as the local JWKS server. */
export function renderPolicyText(text: string, jwksUri: string): string {
  return text.replaceAll('{JWKS_URI}', jwksUri).replaceAll(MISSING_JWKS, UNREACHABLE_JWKS);
}

/** A client outside the mesh (the ingress gateway's caller): plaintext. */
const OUTSIDE_CLIENT_IP = '203.0.113.10';

export function rowName(r: ConformanceRow): string {
  const who = r.plaintext || r.from === 'client' ? `${r.from} (plaintext)` : r.from;
  const extras = [
    r.token ? `token ${r.token}${r.badSignature ? ' (bad signature)' : ''}` : '',
    r.tokenAt ? `token ${r.tokenAt}${r.token2At ? ` and ${r.token2At}` : ''}` : '',
    r.headers
      ? Object.entries(r.headers)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')
      : '',
    r.remoteIp ? `from ${r.remoteIp}` : '',
    r.normalization ? JSON.stringify(r.normalization) : '',
  ].filter((x) => x);
  return `${r.source}: ${who} → ${r.to}:${r.port ?? PORT.http} ${r.method ?? 'GET'} ${r.host ?? ''}${r.path}${extras.length ? ` [${extras.join('; ')}]` : ''}`;
}

export function rowRequest(r: ConformanceRow, tokens: SignedTokens): InboundRequest {
  const target = WORKLOADS[r.to];
  if (!target) throw new Error(`unknown workload ${r.to}`);
  const name = r.to.slice(r.to.indexOf('/') + 1);
  const plaintext = r.plaintext === true || r.from === 'client';
  const caller = r.from === 'client' ? undefined : CALLERS[r.from];
  const sourceIp = caller?.ip ?? OUTSIDE_CLIENT_IP;
  const fill = (s: string) =>
    s
      .replaceAll('{TOKEN}', r.tokenAt ? tokens.good[r.tokenAt] : '')
      .replaceAll('{TOKEN2}', r.token2At ? tokens.good[r.token2At] : '');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k] = fill(v);
  if (r.token)
    headers.authorization = `Bearer ${(r.badSignature ? tokens.bad : tokens.good)[r.token]}`;
  return {
    port: r.port ?? PORT.http,
    ...(plaintext || !caller ? {} : { peerPrincipal: caller.principal }),
    sourceIp,
    remoteIp: r.remoteIp ?? sourceIp,
    destinationIp: target.ip,
    // Istio's client sidecars ask for "outbound_.<service port>_._.<service FQDN>".
    ...(plaintext ? {} : { sni: `outbound_.80_._.${name}.${target.namespace}.svc.cluster.local` }),
    method: r.method ?? 'GET',
    path: fill(r.path),
    host: r.host ?? `${name}.${target.namespace}.svc.cluster.local`,
    headers,
  };
}
