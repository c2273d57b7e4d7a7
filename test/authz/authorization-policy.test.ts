import { describe, expect, it } from 'vitest';
import {
  compileInboundPolicy,
  evaluateInbound,
  type InboundRequest,
} from '../../shared/authz/evaluate.ts';
import type { RequestAuthOutcome } from '../../shared/authz/request-authentication.ts';
import type { IstioPolicyIR } from '../../shared/config/snapshot.ts';
import {
  by,
  decide,
  HTTPBIN,
  inbound,
  plaintext,
  policyYaml,
  req,
  ROOT,
  SLEEP,
  snapshotOf,
  snapshotOfIR,
} from './policy-fixtures.ts';

/** A verified JWT as request authentication hands it over. */
function jwt(claims: Record<string, unknown>): RequestAuthOutcome {
  const iss = claims.iss as string | undefined;
  const sub = claims.sub as string | undefined;
  const aud = claims.aud;
  return {
    kind: 'verified',
    rule: 'test',
    identity: {
      principal: `${iss ?? ''}/${sub ?? ''}`,
      ...(iss ? { issuer: iss } : {}),
      ...(sub ? { subject: sub } : {}),
      audiences: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? (aud as string[]) : [],
      ...(typeof claims.azp === 'string' ? { presenter: claims.azp } : {}),
      claims,
    },
  };
}

/** An ALLOW policy whose only rule is `rule` (YAML flow mapping). */
function allowOnly(rule: string): string {
  return policyYaml('p', `selector: { matchLabels: { app: httpbin } }\nrules:\n- ${rule}`);
}

function allowed(yaml: string, r: InboundRequest): boolean {
  return decide(inbound(yaml), r).allow;
}

function ir(
  name: string,
  action: string,
  rules: unknown[] | undefined,
  extra: Partial<IstioPolicyIR> = {},
): IstioPolicyIR {
  return {
    namespace: 'foo',
    name,
    scope: 'namespace',
    spec: { action, ...(rules ? { rules } : {}) },
    ...extra,
  };
}

describe('actions: CUSTOM, then DENY, then ALLOW', () => {
  // authorization_policy.proto: "1. If there are any CUSTOM policies that match the request,
  // evaluate and deny the request if the evaluation result is deny. 2. If there are any DENY
  // policies that match the request, deny the request. 3. If there are no ALLOW policies for the
  // workload, allow the request. 4. If any of the ALLOW policies match the request, allow the
  // request. 5. Deny the request." and "AUDIT policies do not affect whether requests are
  // allowed or denied to the workload."
  const getOnly = { to: [{ operation: { methods: ['GET'] } }] };
  const postOnly = { to: [{ operation: { methods: ['POST'] } }] };
  it.each([
    ['no policy: allow', [], 'GET', true, ''],
    ['ALLOW that matches', [ir('a', 'ALLOW', [postOnly, getOnly])], 'GET', true, 'foo/a rule 1'],
    ['ALLOW that does not match: deny', [ir('a', 'ALLOW', [postOnly])], 'GET', false, ''],
    [
      'DENY beats a matching ALLOW',
      [ir('a', 'ALLOW', [getOnly]), ir('d', 'DENY', [getOnly])],
      'GET',
      false,
      'foo/d rule 0',
    ],
    ['a DENY that does not match, no ALLOW: allow', [ir('d', 'DENY', [postOnly])], 'GET', true, ''],
    [
      'any ALLOW policy may allow',
      [ir('a1', 'ALLOW', [postOnly]), ir('a2', 'ALLOW', [getOnly])],
      'GET',
      true,
      'foo/a2 rule 0',
    ],
    ['AUDIT has no effect', [ir('au', 'AUDIT', [getOnly])], 'GET', true, ''],
    [
      'AUDIT does not count as an ALLOW policy',
      [ir('au', 'AUDIT', [getOnly]), ir('a', 'ALLOW', [postOnly])],
      'GET',
      false,
      '',
    ],
    // meshgate has no external authorizer: a CUSTOM policy that matches fails closed.
    [
      'CUSTOM that matches: deny (fail closed)',
      [ir('c', 'CUSTOM', [getOnly])],
      'GET',
      false,
      'foo/c rule 0',
    ],
    [
      'CUSTOM that does not match leaves the decision to the others',
      [ir('c', 'CUSTOM', [postOnly]), ir('a', 'ALLOW', [getOnly])],
      'GET',
      true,
      'foo/a rule 0',
    ],
  ] as const)('%s', (_, policies, method, allow, decided) => {
    const c = compileInboundPolicy(snapshotOfIR([...policies] as IstioPolicyIR[]), HTTPBIN);
    const d = evaluateInbound(c, req({ method }));
    expect(d.allow).toBe(allow);
    expect(d.status).toBe(allow ? 200 : 403);
    expect(by(d)).toBe(decided);
    // The traced path decides the same way.
    const t = evaluateInbound(c, req({ method }), { trace: true });
    expect([t.allow, by(t)]).toEqual([allow, decided]);
  });

  it('says why, in one line for the log', () => {
    const c = compileInboundPolicy(
      snapshotOfIR([ir('a', 'ALLOW', [postOnly]), ir('d', 'DENY', [postOnly, getOnly])]),
      HTTPBIN,
    );
    expect(evaluateInbound(c, req()).reason).toBe('denied by foo/d rule 1');
    expect(evaluateInbound(c, req({ method: 'PUT' })).reason).toBe(
      'denied: no ALLOW policy matches (foo/a)',
    );
    expect(evaluateInbound(c, req({ method: 'POST' })).reason).toBe('denied by foo/d rule 0');
    const custom = compileInboundPolicy(snapshotOfIR([ir('c', 'CUSTOM', [{}])]), HTTPBIN);
    expect(evaluateInbound(custom, req()).reason).toMatch(
      /^denied by foo\/c rule 0: action CUSTOM needs an external authorizer.*fail closed/,
    );
    expect(evaluateInbound(compileInboundPolicy(snapshotOfIR([]), HTTPBIN), req()).reason).toBe(
      'allowed: no ALLOW policy selects the workload',
    );
  });
});

describe('empty rules', () => {
  // authorization_policy.proto: "The following authorization policy applies to all workloads in
  // namespace `foo`. It allows nothing and effectively denies all requests" (`spec: {}`);
  // "The following authorization policy allows all requests to workloads in namespace `foo`"
  // (`rules: [{}]`); a policy with only a selector "allows nothing and effectively denies all
  // requests to the selected workloads". Rule: "An empty rule is always matched." rules: "If not
  // set, the match will never occur."
  it.each([
    ['allow-nothing: spec {}', policyYaml('allow-nothing', '{}'), HTTPBIN, false],
    ['allow-all: rules [{}]', policyYaml('allow-all', 'rules:\n- {}'), HTTPBIN, true],
    [
      'selector only: allow nothing for httpbin',
      policyYaml('allow-nothing', 'selector: { matchLabels: { app: httpbin } }'),
      HTTPBIN,
      false,
    ],
    [
      'selector only: other workloads are not selected',
      policyYaml('allow-nothing', 'selector: { matchLabels: { app: httpbin } }'),
      { namespace: 'foo', labels: { app: 'other' } },
      true,
    ],
    [
      'DENY with an empty rule denies everything',
      policyYaml('deny-all', 'action: DENY\nrules:\n- {}'),
      HTTPBIN,
      false,
    ],
    [
      'root-namespace allow-nothing with selector version: v1 (doc example)',
      policyYaml('allow-nothing', 'selector: { matchLabels: { version: v1 } }', ROOT),
      { namespace: 'bar', labels: { app: 'x', version: 'v1' } },
      false,
    ],
  ] as const)('%s', (_, yaml, workload, allow) => {
    expect(decide(inbound(yaml, workload)).allow).toBe(allow);
  });

  it('a DENY policy with no rules never matches (the compiler refuses to write one)', () => {
    expect(() => snapshotOf(policyYaml('d', 'action: DENY'))).toThrow(/never triggers/);
    const c = compileInboundPolicy(snapshotOfIR([ir('d', 'DENY', [])]), HTTPBIN);
    expect(evaluateInbound(c, req()).allow).toBe(true);
    const t = evaluateInbound(c, req(), { trace: true });
    expect(t.policies[0]?.reasons).toEqual(['the policy has no rules: it matches nothing']);
  });
});

describe('from.source fields', () => {
  // authorization_policy.proto, Source: "Fields in the source are ANDed together. For example,
  // the following source matches if the principal is "admin" or "dev" and the namespace is
  // "prod" or "test" and the ip is not "203.0.113.4"." principals: "This field requires mTLS
  // enabled"; serviceAccounts: "`<namespace>/<serviceaccount>`. `<serviceaccount>` may also be
  // used to use the same namespace as the AuthorizationPolicy."; trustDomains: "Can be exact,
  // prefix, suffix and presence." The examples below use meshgate's sleep client
  // (cluster.local/ns/default/sa/sleep, 10.0.0.5).
  const OTHER = 'cluster.local/ns/prod/sa/web';
  it.each([
    ['principals exact', `principals: ["${SLEEP}"]`, req(), true],
    [
      'principals exact, other caller',
      `principals: ["${SLEEP}"]`,
      req({ peerPrincipal: OTHER }),
      false,
    ],
    [
      'principals accepts spiffe:// on the caller side',
      `principals: ["${SLEEP}"]`,
      req({ peerPrincipal: `spiffe://${SLEEP}` }),
      true,
    ],
    ['principals prefix', 'principals: ["cluster.local/ns/default/*"]', req(), true],
    ['principals suffix', 'principals: ["*/sa/sleep"]', req(), true],
    ['principals presence', 'principals: ["*"]', req(), true],
    ['principals presence, plaintext', 'principals: ["*"]', plaintext(), false],
    ['principals, plaintext never matches', `principals: ["${SLEEP}"]`, plaintext(), false],
    ['notPrincipals', `notPrincipals: ["${SLEEP}"]`, req(), false],
    [
      'notPrincipals, other caller',
      `notPrincipals: ["${SLEEP}"]`,
      req({ peerPrincipal: OTHER }),
      true,
    ],
    ['notPrincipals ["*"] matches plaintext', 'notPrincipals: ["*"]', plaintext(), true],
    ['notPrincipals ["*"] does not match mTLS', 'notPrincipals: ["*"]', req(), false],
    ['namespaces', 'namespaces: ["default"]', req(), true],
    ['namespaces, other', 'namespaces: ["prod"]', req(), false],
    ['namespaces glob', 'namespaces: ["def*"]', req(), true],
    ['namespaces presence needs an identity', 'namespaces: ["*"]', plaintext(), false],
    ['notNamespaces', 'notNamespaces: ["default"]', req(), false],
    ['notNamespaces, plaintext', 'notNamespaces: ["default"]', plaintext(), true],
    ['serviceAccounts ns/sa', 'serviceAccounts: ["default/sleep"]', req(), true],
    [
      'serviceAccounts sa in the policy namespace (foo)',
      'serviceAccounts: ["sleep"]',
      req(),
      false,
    ],
    [
      'serviceAccounts sa in the policy namespace, caller in foo',
      'serviceAccounts: ["sleep"]',
      req({ peerPrincipal: 'cluster.local/ns/foo/sa/sleep' }),
      true,
    ],
    [
      'serviceAccounts is not a prefix match',
      'serviceAccounts: ["default/sleep"]',
      req({ peerPrincipal: 'cluster.local/ns/default/sa/sleep-2' }),
      false,
    ],
    ['notServiceAccounts', 'notServiceAccounts: ["default/sleep"]', req(), false],
    ['trustDomains', 'trustDomains: ["cluster.local"]', req(), true],
    ['trustDomains suffix', 'trustDomains: ["*.local"]', req(), true],
    ['trustDomains, other domain', 'trustDomains: ["example.org"]', req(), false],
    ['notTrustDomains', 'notTrustDomains: ["cluster.local"]', req(), false],
    ['trustDomains, plaintext', 'trustDomains: ["*"]', plaintext(), false],
    ['ipBlocks single IP', 'ipBlocks: ["10.0.0.5"]', req(), true],
    ['ipBlocks CIDR', 'ipBlocks: ["10.0.0.0/24"]', req(), true],
    ['ipBlocks, outside', 'ipBlocks: ["10.1.0.0/16"]', req(), false],
    ['notIpBlocks', 'notIpBlocks: ["10.0.0.0/8"]', req(), false],
    [
      'remoteIpBlocks reads X-Forwarded-For (remote.ip)',
      'remoteIpBlocks: ["203.0.113.0/24"]',
      req({ remoteIp: '203.0.113.7' }),
      true,
    ],
    [
      'remoteIpBlocks is not the connection address',
      'remoteIpBlocks: ["10.0.0.5"]',
      req({ remoteIp: '203.0.113.7' }),
      false,
    ],
    [
      'remoteIpBlocks without a forwarded address: the peer',
      'remoteIpBlocks: ["10.0.0.5"]',
      req(),
      true,
    ],
    [
      'notRemoteIpBlocks',
      'notRemoteIpBlocks: ["172.23.240.0/22"]',
      req({ remoteIp: '172.23.242.188' }),
      false,
    ],
    ['fields are ANDed', `principals: ["${SLEEP}"], ipBlocks: ["10.9.0.0/16"]`, req(), false],
    ['values are ORed', `principals: ["${OTHER}", "${SLEEP}"]`, req(), true],
  ] as const)('%s', (_, source, r, want) => {
    expect(allowed(allowOnly(`from: [{ source: { ${source} } }]`), r)).toBe(want);
  });

  it('several sources are ORed', () => {
    const yaml = allowOnly(
      'from: [{ source: { namespaces: ["prod"] } }, { source: { ipBlocks: ["10.0.0.0/24"] } }]',
    );
    expect(allowed(yaml, req())).toBe(true);
    expect(allowed(yaml, req({ sourceIp: '10.9.9.9' }))).toBe(false);
  });

  // Source.requestPrincipals: "The request identity is in the format of "<ISS>/<SUB>"" ("This
  // field requires request authentication enabled"). Istio splits the value at its last "/".
  it.each([
    ['*', { iss: 'https://a.com', sub: 'u1' }, true],
    ['*', undefined, false],
    ['https://a.com/u1', { iss: 'https://a.com', sub: 'u1' }, true],
    ['https://a.com/u1', { iss: 'https://a.com', sub: 'u2' }, false],
    ['https://a.com/*', { iss: 'https://a.com', sub: 'anyone' }, true],
    ['https://a.com/*', { iss: 'https://b.com', sub: 'anyone' }, false],
    ['*/u1', { iss: 'https://z.com', sub: 'u1' }, true],
    ['*.a.com/u1', { iss: 'https://x.a.com', sub: 'u1' }, true],
    ['test-issuer-1@istio.io/sub-1', { iss: 'test-issuer-1@istio.io', sub: 'sub-1' }, true],
  ] as const)('requestPrincipals %s', (value, claims, want) => {
    const r = req(claims ? { auth: jwt(claims) } : {});
    expect(allowed(allowOnly(`from: [{ source: { requestPrincipals: ["${value}"] } }]`), r)).toBe(
      want,
    );
  });

  it('notRequestPrincipals matches requests without a JWT (Istio /token3 rule)', () => {
    const yaml = allowOnly(
      'from: [{ source: { notRequestPrincipals: ["test-issuer-1@istio.io/sub-1"] } }]',
    );
    expect(allowed(yaml, req({ auth: jwt({ iss: 'test-issuer-1@istio.io', sub: 'sub-1' }) }))).toBe(
      false,
    );
    expect(allowed(yaml, req({ auth: jwt({ iss: 'test-issuer-2@istio.io', sub: 'sub-2' }) }))).toBe(
      true,
    );
    expect(allowed(yaml, req())).toBe(true);
  });
});

describe('to.operation fields and path normalization', () => {
  // authorization_policy.proto, Operation: "the following operation matches if the host has
  // suffix ".example.com" and the method is "GET" or "HEAD" and the path doesn't have prefix
  // "/admin"." hosts: "The match is case-insensitive"; ports: "as specified in the connection";
  // methods: "For gRPC service, this will always be "POST""; paths: "For gRPC service, this will
  // be the fully-qualified name in the form of "/package.service/method"".
  const docOperation =
    'to: [{ operation: { hosts: ["*.example.com"], methods: ["GET", "HEAD"], notPaths: ["/admin*"] } }]';
  it.each([
    [
      'doc example: GET api.example.com/x',
      docOperation,
      req({ host: 'api.example.com', path: '/x' }),
      true,
    ],
    ['doc example: HEAD', docOperation, req({ host: 'api.example.com', method: 'HEAD' }), true],
    ['doc example: POST', docOperation, req({ host: 'api.example.com', method: 'POST' }), false],
    [
      'doc example: /admin/x',
      docOperation,
      req({ host: 'api.example.com', path: '/admin/x' }),
      false,
    ],
    ['doc example: other host', docOperation, req({ host: 'example.org' }), false],
    [
      'doc example: host case does not matter',
      docOperation,
      req({ host: 'API.Example.COM' }),
      true,
    ],
    [
      'hosts from the Host header',
      'to: [{ operation: { hosts: ["a.com"] } }]',
      req({ host: undefined, headers: { host: 'a.com' } }),
      true,
    ],
    [
      'hosts exact does not take a port',
      'to: [{ operation: { hosts: ["a.com"] } }]',
      req({ host: 'a.com:8080' }),
      false,
    ],
    [
      'notHosts',
      'to: [{ operation: { notHosts: ["deny.b.com"] } }]',
      req({ host: 'Deny.B.Com' }),
      false,
    ],
    ['ports', 'to: [{ operation: { ports: ["8080"] } }]', req(), true],
    ['ports, other port', 'to: [{ operation: { ports: ["9090"] } }]', req(), false],
    ['notPorts', 'to: [{ operation: { notPorts: ["8080"] } }]', req(), false],
    [
      'methods are case-sensitive as written',
      'to: [{ operation: { methods: ["get"] } }]',
      req(),
      false,
    ],
    ['notMethods', 'to: [{ operation: { notMethods: ["PUT"] } }]', req({ method: 'PUT' }), false],
    [
      'gRPC: POST /package.service/method',
      'to: [{ operation: { methods: ["POST"], paths: ["/proto.EchoTestService/Echo"] } }]',
      req({ method: 'POST', path: '/proto.EchoTestService/Echo' }),
      true,
    ],
    [
      'paths exact ignores the query',
      'to: [{ operation: { paths: ["/info"] } }]',
      req({ path: '/info?x=1' }),
      true,
    ],
    [
      'paths prefix',
      'to: [{ operation: { paths: ["/info*"] } }]',
      req({ path: '/information' }),
      true,
    ],
    [
      'paths suffix',
      'to: [{ operation: { paths: ["*/presenter"] } }]',
      req({ path: '/a/b/presenter' }),
      true,
    ],
    [
      'paths are case-sensitive',
      'to: [{ operation: { paths: ["/info"] } }]',
      req({ path: '/INFO' }),
      false,
    ],
    [
      'paths template',
      'to: [{ operation: { paths: ["/users/{*}/orders"] } }]',
      req({ path: '/users/42/orders' }),
      true,
    ],
    ['notPaths', 'to: [{ operation: { notPaths: ["/admin*"] } }]', req({ path: '/admin' }), false],
    [
      'several operations are ORed',
      'to: [{ operation: { methods: ["POST"] } }, { operation: { paths: ["/"] } }]',
      req(),
      true,
    ],
  ] as const)('%s', (_, to, r, want) => {
    expect(allowed(allowOnly(to), r)).toBe(want);
  });

  // Paths are normalized before they are matched, with the normalization routing uses, so that
  // a policy cannot be walked around (Istio's TestAuthz_PathNormalization and the mesh issue's
  // bypass attempts).
  const denyAdmin = `${policyYaml('deny-admin', 'action: DENY\nrules:\n- to: [{ operation: { paths: ["/admin", "/admin/*"] } }]')}---
${policyYaml('allow-all', 'rules:\n- {}')}`;
  it.each([
    ['/admin', false, '/admin'],
    ['/admin/../public', true, '/public'],
    ['/public/../admin', false, '/admin'],
    ['/%61dmin', false, '/admin'],
    ['/%61%64%6d%69%6e/x', false, '/admin/x'],
    ['//admin', false, '/admin'],
    ['/./admin', false, '/admin'],
    ['/public/%2e%2e/admin', false, '/admin'],
    ['/admin%2Fsettings', false, '/admin/settings'],
    ['/public\\..\\admin', false, '/admin'],
    ['/admin?x=/public', false, '/admin'],
    ['/ADMIN', true, '/ADMIN'],
  ] as const)('DENY /admin, request %s → allowed %s (path seen: %s)', (path, allow, seen) => {
    const d = decide(inbound(denyAdmin), req({ path }));
    expect(d.allow).toBe(allow);
    expect(d.path).toBe(seen);
  });

  it('a path normalization refuses answers 400', () => {
    const d = decide(inbound(denyAdmin), req({ path: '/a%00b' }));
    expect(d).toMatchObject({ allow: false, status: 400 });
    expect(d.reason).toMatch(/^path refused/);
  });
});

describe('when: conditions', () => {
  // https://istio.io/latest/docs/reference/config/security/conditions/ (the examples of each
  // attribute): request.headers[User-Agent] ["Mozilla/*"]; source.ip ["10.1.2.3",
  // "10.2.0.0/16"]; remote.ip the same; source.namespace ["default"]; source.principal
  // ["cluster.local/ns/default/sa/productpage"]; request.auth.principal
  // ["accounts.my-svc.com/104958560606"]; request.auth.audiences ["my-svc.com"];
  // request.auth.presenter ["123456789012.my-svc.com"]; request.auth.claims[iss] ["*@foo.com"];
  // request.auth.claims[nested1][nested2]; destination.ip ["10.1.2.3", "10.2.0.0/16"];
  // destination.port ["80", "443"]; connection.sni ["www.example.com"].
  const PRODUCTPAGE = 'cluster.local/ns/default/sa/productpage';
  const google = jwt({
    iss: 'accounts.my-svc.com',
    sub: '104958560606',
    aud: ['my-svc.com', 'other'],
    azp: '123456789012.my-svc.com',
    groups: ['admins', 'dev'],
    level: 3,
    nested1: { nested2: 'deep', list: ['a', 'b'] },
  });
  const emailIssuer = jwt({ iss: 'bob@foo.com', sub: 'bob' });
  it.each([
    [
      'request.headers prefix',
      'request.headers[User-Agent]',
      'values: ["Mozilla/*"]',
      req({ headers: { 'user-agent': 'Mozilla/5.0' } }),
      true,
    ],
    [
      'request.headers other value',
      'request.headers[User-Agent]',
      'values: ["Mozilla/*"]',
      req({ headers: { 'user-agent': 'curl/8' } }),
      false,
    ],
    [
      'request.headers absent',
      'request.headers[User-Agent]',
      'values: ["Mozilla/*"]',
      req(),
      false,
    ],
    [
      'request.headers presence "*" (empty value counts)',
      'request.headers[x-debug]',
      'values: ["*"]',
      req({ headers: { 'x-debug': '' } }),
      true,
    ],
    [
      'request.headers notValues, header absent',
      'request.headers[x-foo]',
      'notValues: ["bar"]',
      req(),
      true,
    ],
    [
      'request.headers repeated values are joined with ","',
      'request.headers[x-foo]',
      'values: ["a,b"]',
      req({ headers: { 'x-foo': ['a', 'b'] } }),
      true,
    ],
    [
      'source.ip IP',
      'source.ip',
      'values: ["10.1.2.3", "10.2.0.0/16"]',
      req({ sourceIp: '10.1.2.3' }),
      true,
    ],
    [
      'source.ip CIDR',
      'source.ip',
      'values: ["10.1.2.3", "10.2.0.0/16"]',
      req({ sourceIp: '10.2.9.9' }),
      true,
    ],
    ['source.ip outside', 'source.ip', 'values: ["10.1.2.3", "10.2.0.0/16"]', req(), false],
    [
      'remote.ip',
      'remote.ip',
      'values: ["10.1.2.3", "10.2.0.0/16"]',
      req({ remoteIp: '10.2.0.1' }),
      true,
    ],
    ['source.namespace', 'source.namespace', 'values: ["default"]', req(), true],
    ['source.namespace, plaintext', 'source.namespace', 'values: ["default"]', plaintext(), false],
    [
      'source.namespace notValues, plaintext',
      'source.namespace',
      'notValues: ["default"]',
      plaintext(),
      true,
    ],
    [
      'source.principal',
      'source.principal',
      `values: ["${PRODUCTPAGE}"]`,
      req({ peerPrincipal: PRODUCTPAGE }),
      true,
    ],
    ['source.principal, other', 'source.principal', `values: ["${PRODUCTPAGE}"]`, req(), false],
    ['source.serviceAccount', 'source.serviceAccount', 'values: ["default/sleep"]', req(), true],
    ['source.trustDomain', 'source.trustDomain', 'values: ["cluster.local"]', req(), true],
    [
      'request.auth.principal',
      'request.auth.principal',
      'values: ["accounts.my-svc.com/104958560606"]',
      req({ auth: google }),
      true,
    ],
    ['request.auth.principal, no JWT', 'request.auth.principal', 'values: ["*"]', req(), false],
    [
      'request.auth.audiences (any of the list)',
      'request.auth.audiences',
      'values: ["my-svc.com"]',
      req({ auth: google }),
      true,
    ],
    [
      'request.auth.presenter',
      'request.auth.presenter',
      'values: ["123456789012.my-svc.com"]',
      req({ auth: google }),
      true,
    ],
    [
      'request.auth.claims[iss] suffix',
      'request.auth.claims[iss]',
      'values: ["*@foo.com"]',
      req({ auth: emailIssuer }),
      true,
    ],
    [
      'request.auth.claims list claim: any element',
      'request.auth.claims[groups]',
      'values: ["dev"]',
      req({ auth: google }),
      true,
    ],
    [
      'request.auth.claims nested',
      'request.auth.claims[nested1][nested2]',
      'values: ["deep"]',
      req({ auth: google }),
      true,
    ],
    [
      'request.auth.claims nested list',
      'request.auth.claims[nested1][list]',
      'values: ["b"]',
      req({ auth: google }),
      true,
    ],
    [
      'request.auth.claims missing',
      'request.auth.claims[nested1][nope]',
      'values: ["*"]',
      req({ auth: google }),
      false,
    ],
    [
      'request.auth.claims a number is not a string',
      'request.auth.claims[level]',
      'values: ["3"]',
      req({ auth: google }),
      false,
    ],
    [
      'request.auth.claims notValues',
      'request.auth.claims[groups]',
      'notValues: ["admins"]',
      req({ auth: google }),
      false,
    ],
    ['destination.ip', 'destination.ip', 'values: ["10.1.2.3", "10.0.1.0/24"]', req(), true],
    ['destination.port', 'destination.port', 'values: ["80", "443"]', req({ port: 443 }), true],
    ['destination.port, other', 'destination.port', 'values: ["80", "443"]', req(), false],
    [
      'connection.sni',
      'connection.sni',
      'values: ["www.example.com"]',
      req({ sni: 'www.example.com' }),
      true,
    ],
    [
      'connection.sni suffix',
      'connection.sni',
      'values: ["*.example.com"]',
      req({ sni: 'www.example.com' }),
      true,
    ],
    ['connection.sni absent', 'connection.sni', 'values: ["*"]', req(), false],
    [
      'values and notValues together',
      'request.headers[x-env]',
      'values: ["prod*"], notValues: ["prod-eu"]',
      req({ headers: { 'x-env': 'prod-eu' } }),
      false,
    ],
  ] as const)('%s', (_, key, values, r, want) => {
    expect(allowed(allowOnly(`when: [{ key: "${key}", ${values} }]`), r)).toBe(want);
  });

  it('conditions are ANDed, with from and to', () => {
    const yaml = allowOnly(
      'from: [{ source: { namespaces: ["default"] } }]\n  to: [{ operation: { methods: ["GET"] } }]\n  when: [{ key: source.ip, values: ["10.0.0.0/8"] }, { key: "request.headers[x-a]", values: ["1"] }]',
    );
    expect(allowed(yaml, req({ headers: { 'x-a': '1' } }))).toBe(true);
    expect(allowed(yaml, req({ headers: { 'x-a': '2' } }))).toBe(false);
    expect(allowed(yaml, req({ headers: { 'x-a': '1' }, method: 'POST' }))).toBe(false);
  });

  it('experimental.envoy.filters.* keys are refused by the compiler, and fail closed if met', () => {
    expect(() =>
      snapshotOf(
        allowOnly(
          'when: [{ key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"] }]',
        ),
      ),
    ).toThrow(/Envoy filter metadata does not exist in meshgate/);
    const rules = [{ when: [{ key: 'experimental.envoy.filters.x[y]', values: ['z'] }] }];
    const allowPolicy = compileInboundPolicy(snapshotOfIR([ir('a', 'ALLOW', rules)]), HTTPBIN);
    expect(evaluateInbound(allowPolicy, req()).allow).toBe(false);
    const denyPolicy = compileInboundPolicy(snapshotOfIR([ir('d', 'DENY', rules)]), HTTPBIN);
    expect(evaluateInbound(denyPolicy, req()).allow).toBe(false);
  });
});

describe('which policies select the workload', () => {
  // authorization_policy.proto, selector: "The selector will match with workloads in the same
  // namespace as the authorization policy. If the authorization policy is in the root namespace,
  // the selector will additionally match with workloads in all namespaces. If the selector and
  // the targetRef are not set, the selector will match all workloads."
  const service = `apiVersion: v1
kind: Service
metadata: { name: httpbin, namespace: foo }
spec: { selector: { app: httpbin }, ports: [{ port: 80, targetPort: 8080 }] }
---
`;
  const bar = { namespace: 'bar', labels: { app: 'httpbin' } };
  it.each([
    ['root namespace, no selector: every workload', policyYaml('p', '{}', ROOT), bar, true],
    [
      'root namespace, selector: matching workloads of every namespace',
      policyYaml('p', 'selector: { matchLabels: { app: httpbin } }', ROOT),
      bar,
      true,
    ],
    [
      'root namespace, selector that does not match',
      policyYaml('p', 'selector: { matchLabels: { app: other } }', ROOT),
      bar,
      false,
    ],
    ['namespace, no selector: every workload of it', policyYaml('p', '{}'), HTTPBIN, true],
    ['namespace, no selector: not another namespace', policyYaml('p', '{}'), bar, false],
    [
      'selector: labels are a subset of the workload labels',
      policyYaml('p', 'selector: { matchLabels: { version: v1 } }'),
      HTTPBIN,
      true,
    ],
    [
      'selector: every label must match',
      policyYaml('p', 'selector: { matchLabels: { app: httpbin, version: v2 } }'),
      HTTPBIN,
      false,
    ],
    [
      'selector in another namespace does not reach',
      policyYaml('p', 'selector: { matchLabels: { app: httpbin } }', 'baz'),
      HTTPBIN,
      false,
    ],
    [
      'targetRefs Service: the workloads the Service selects',
      service + policyYaml('p', 'targetRefs: [{ kind: Service, group: "", name: httpbin }]'),
      HTTPBIN,
      true,
    ],
    [
      'targetRefs Service: not other workloads',
      service + policyYaml('p', 'targetRefs: [{ kind: Service, group: "", name: httpbin }]'),
      { namespace: 'foo', labels: { app: 'web' } },
      false,
    ],
  ] as const)('%s', (_, yaml, workload, selected) => {
    // Each policy allows nothing: selected means denied.
    expect(decide(inbound(yaml, workload)).allow).toBe(!selected);
  });
});

describe('the trace', () => {
  const yaml = `${policyYaml('deny-post', 'action: DENY\nrules:\n- to: [{ operation: { methods: ["POST"] } }]')}---
${policyYaml('allow-sleep', `rules:\n- from: [{ source: { principals: ["${SLEEP}"] } }]\n  to: [{ operation: { paths: ["/api/*"] } }]\n- from: [{ source: { namespaces: ["prod"] } }, { source: { ipBlocks: ["192.168.0.0/16"] } }]`)}`;

  it('is empty on the hot path', () => {
    const d = decide(inbound(yaml), req());
    expect(d.policies).toEqual([]);
    expect(d.trace).toBeUndefined();
  });

  it('lists every policy in evaluation order and why each rule did not match', () => {
    const d = evaluateInbound(inbound(yaml), req({ path: '/web' }), { trace: true });
    expect(d.allow).toBe(false);
    expect(d.policies).toEqual([
      {
        policy: 'foo/deny-post',
        action: 'DENY',
        selectedBy: 'namespace-wide',
        matched: false,
        reasons: ['rule 0: to: method GET not in methods [POST]'],
      },
      {
        policy: 'foo/allow-sleep',
        action: 'ALLOW',
        selectedBy: 'namespace-wide',
        matched: false,
        reasons: [
          'rule 0: to: path /web not in paths [/api/*]',
          `rule 1: from: no entry matches ([0] peer ${SLEEP} not in namespaces [prod]; [1] source IP 10.0.0.5 not in ipBlocks [192.168.0.0/16])`,
        ],
      },
    ]);
    expect(d.trace?.peerAuthentication).toMatchObject({
      mode: 'PERMISSIVE',
      from: 'default: no PeerAuthentication sets a mode',
    });
  });

  it('marks the deciding policy and still evaluates the others', () => {
    const d = evaluateInbound(inbound(yaml), req({ method: 'POST', path: '/api/x' }), {
      trace: true,
    });
    expect(by(d)).toBe('foo/deny-post rule 0');
    expect(d.policies.map((p) => [p.policy, p.matched, p.decided ?? false])).toEqual([
      ['foo/deny-post', true, true],
      ['foo/allow-sleep', true, false],
    ]);
  });
});
