import { createLocalJWKSet, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeInbound, evaluateInbound } from '../../shared/authz/evaluate.ts';
import {
  authenticateClaims,
  authenticateRequest,
  authenticateToken,
  type RequestAuthOutcome,
  type TokenSources,
} from '../../shared/authz/request-authentication.ts';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.ts';
import { by, inbound, plaintext, req } from './policy-fixtures.ts';

const ISS = 'https://issuer.example.com';
const FAR = 4715782722;

let server: JwksServer;
beforeAll(async () => {
  server = await startJwksServer();
});
afterAll(async () => {
  await server.close();
});

function ra(rule: string, name = 'jwt', extra = ''): string {
  return `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: ${name}, namespace: foo }
spec:
  selector: { matchLabels: { app: httpbin } }
  jwtRules:
  - issuer: "${ISS}"
    jwks: '${JSON.stringify(server.jwks)}'
${rule
  .split('\n')
  .filter((l) => l)
  .map((l) => `    ${l}`)
  .join('\n')}
${extra}`;
}

const claims = (extra: JWTPayload = {}): JWTPayload => ({
  iss: ISS,
  sub: 'alice',
  exp: FAR,
  ...extra,
});

function sources(over: { headers?: Record<string, string>; query?: string; method?: string }) {
  const headers = over.headers ?? {};
  const s: TokenSources = {
    method: over.method ?? 'GET',
    query: over.query ?? '',
    header: (name) => headers[name],
  };
  return s;
}

async function outcome(
  yaml: string,
  over: { headers?: Record<string, string>; query?: string; method?: string },
): Promise<RequestAuthOutcome> {
  return authenticateRequest(inbound(yaml).requestAuthentication, sources(over));
}

describe('RequestAuthentication: where tokens are read', () => {
  // jwt.proto: "If no explicit location is specified the following default locations are tried in
  // order: 1) The Authorization header using the Bearer schema, e.g. Authorization: Bearer
  // <token>. 2) The `access_token` query parameter". fromHeaders/fromParams/fromCookies replace
  // them (Istio's test "headers-params": `Auth-Header-Param: Bearer <token>` is not read).
  it.each([
    [
      'default: Authorization: Bearer',
      '',
      { headers: { authorization: 'Bearer {T}' } },
      'verified',
    ],
    ['default: ?access_token=', '', { query: 'access_token={T}' }, 'verified'],
    ['default: another header is not read', '', { headers: { 'x-token': '{T}' } }, 'none'],
    [
      'fromHeaders with prefix',
      'fromHeaders: [{ name: x-jwt-assertion, prefix: "Bearer " }]',
      { headers: { 'x-jwt-assertion': 'Bearer {T}' } },
      'verified',
    ],
    [
      'fromHeaders without prefix',
      'fromHeaders: [{ name: x-goog-iap-jwt-assertion }]',
      { headers: { 'x-goog-iap-jwt-assertion': '{T}' } },
      'verified',
    ],
    [
      'fromHeaders replaces the Authorization default',
      'fromHeaders: [{ name: x-jwt-assertion }]',
      { headers: { authorization: 'Bearer {T}' } },
      'none',
    ],
    ['fromParams', 'fromParams: [token]', { query: 'a=1&token={T}' }, 'verified'],
    [
      'fromParams replaces access_token',
      'fromParams: [token]',
      { query: 'access_token={T}' },
      'none',
    ],
    [
      'fromCookies',
      'fromCookies: [session]',
      { headers: { cookie: 'theme=dark; session={T}' } },
      'verified',
    ],
  ] as const)('%s', async (_, rule, where, want) => {
    const t = await server.sign(claims());
    const fill = (v: string) => v.replaceAll('{T}', t);
    const o = await outcome(ra(rule), {
      ...('headers' in where
        ? {
            headers: Object.fromEntries(
              Object.entries(where.headers).map(([k, v]) => [k, fill(v)]),
            ),
          }
        : {}),
      ...('query' in where ? { query: fill(where.query) } : {}),
    });
    expect(o.kind).toBe(want);
  });
});

describe('RequestAuthentication: what makes a token invalid', () => {
  // request_authentication.proto: "It will reject a request if the request contains invalid
  // authentication information ... A request that does not contain any authentication
  // credentials will be accepted but will not have any authenticated identity." Envoy answers
  // 401, and 403 for "Audiences in Jwt are not allowed" (Istio's test "invalid-aud": 403).
  type Case = [string, () => Promise<string>, string, 'verified' | 401 | 403, RegExp | undefined];
  it.each<Case>([
    ['a valid token', async () => server.sign(claims()), '', 'verified', undefined],
    [
      'no exp is fine (exp is not required)',
      async () => server.sign({ iss: ISS, sub: 'a' }),
      '',
      'verified',
      undefined,
    ],
    ['expired', async () => server.sign(claims({ exp: 1562182856 })), '', 401, /expired/],
    ['not yet valid', async () => server.sign(claims({ nbf: FAR })), '', 401, /not yet valid/],
    [
      'signed with another key',
      async () => server.signWithUnknownKey(claims()),
      '',
      401,
      /verification fails|no JWKS key/,
    ],
    [
      'an issuer no rule names',
      async () => server.sign(claims({ iss: 'https://other' })),
      '',
      401,
      /issuer is not configured/,
    ],
    ['not a JWT', async () => 'abc.def', '', 401, /Header.Payload.Signature/],
    [
      'audience not allowed',
      async () => server.sign(claims({ aud: 'other' })),
      'audiences: [bookstore]',
      403,
      /Audiences in Jwt are not allowed/,
    ],
    [
      'audience allowed (one of several)',
      async () => server.sign(claims({ aud: ['x', 'bookstore'] })),
      'audiences: [bookstore]',
      'verified',
      undefined,
    ],
    [
      'HS256 (a shared secret) is never accepted',
      async () =>
        new SignJWT(claims())
          .setProtectedHeader({ alg: 'HS256' })
          .sign(new TextEncoder().encode('s'.repeat(32))),
      '',
      401,
      /algorithm|no JWKS key/,
    ],
  ])('%s', async (_, make, rule, want, reason) => {
    const t = await make();
    const o = await outcome(ra(rule), { headers: { authorization: `Bearer ${t}` } });
    if (want === 'verified') expect(o.kind).toBe('verified');
    else {
      expect(o).toMatchObject({ kind: 'invalid', status: want });
      if (o.kind === 'invalid' && reason) expect(o.reason).toMatch(reason);
    }
  });

  it('every token present must be valid (Envoy: "all of them must be valid")', async () => {
    const good = await server.sign(claims());
    const expired = await server.sign(claims({ exp: 1562182856 }));
    const yaml = ra('fromParams: [token, secondary_token]');
    expect(await outcome(yaml, { query: `token=${good}&secondary_token=${good}` })).toMatchObject({
      kind: 'verified',
    });
    expect(
      await outcome(yaml, { query: `token=${good}&secondary_token=${expired}` }),
    ).toMatchObject({
      kind: 'invalid',
      status: 401,
    });
  });

  it('rules of every RequestAuthentication on the workload are merged (Istio "aud" test)', async () => {
    // b-part1 wants aud foo for issuer 1; b-part2 accepts issuer 2 with any audience.
    const yaml = `${ra('audiences: [foo]', 'part1')}---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: part2, namespace: foo }
spec:
  jwtRules:
  - issuer: "https://issuer-2.example.com"
    jwks: '${JSON.stringify(server.jwks)}'
`;
    const header = async (c: JWTPayload) => ({
      headers: { authorization: `Bearer ${await server.sign(c)}` },
    });
    expect(await outcome(yaml, await header(claims()))).toMatchObject({ status: 403 });
    expect(await outcome(yaml, await header(claims({ aud: 'foo' })))).toMatchObject({
      kind: 'verified',
    });
    expect(
      await outcome(yaml, await header(claims({ iss: 'https://issuer-2.example.com' }))),
    ).toMatchObject({ kind: 'verified', rule: 'foo/part2 jwtRules[0]' });
  });

  it('jwksUri is read through the injected JWKS provider; without one, tokens fail closed', async () => {
    const yaml = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: remote, namespace: foo }
spec:
  jwtRules: [{ issuer: "${ISS}", jwksUri: "${server.uri}" }]
`;
    const token = await server.sign(claims());
    const request = req({ headers: { authorization: `Bearer ${token}` } });
    const calls: string[] = [];
    const withProvider = inbound(yaml, undefined, {
      jwks: {
        resolver: (uri) => {
          calls.push(uri);
          return createLocalJWKSet(server.jwks);
        },
      },
    });
    expect(calls).toEqual([server.uri]);
    expect(await authorizeInbound(withProvider, request)).toMatchObject({
      allow: true,
      requestPrincipal: `${ISS}/alice`,
    });
    const without = await authorizeInbound(inbound(yaml), request);
    expect(without).toMatchObject({ allow: false, status: 401 });
    expect(without.reason).toMatch(/no JWKS provider/);
  });

  it('a CORS preflight is not checked (Istio sets bypass_cors_preflight)', async () => {
    const expired = await server.sign(claims({ exp: 1562182856 }));
    const auth = { authorization: `Bearer ${expired}` };
    const preflight = {
      method: 'OPTIONS',
      headers: { ...auth, origin: 'https://istio.io', 'access-control-request-method': 'POST' },
    };
    expect(await outcome(ra(''), preflight)).toMatchObject({ kind: 'none' });
    expect(
      await outcome(ra(''), {
        method: 'OPTIONS',
        headers: { ...auth, origin: 'https://istio.io' },
      }),
    ).toMatchObject({ kind: 'invalid', status: 401 });
  });
});

describe('RequestAuthentication: identity, claims and output headers', () => {
  it('the request principal is iss/sub; scope and permission split on spaces, and the listed claims', async () => {
    const t = await server.sign(
      claims({
        aud: 'a1',
        azp: 'web',
        scope: 'read write',
        permission: 'x y',
        roles: 'admin editor',
        teams: 'red blue',
      }),
    );
    const o = await outcome(ra('spaceDelimitedClaims: [roles]'), {
      headers: { authorization: `Bearer ${t}` },
    });
    if (o.kind !== 'verified') throw new Error(o.kind);
    expect(o.identity).toMatchObject({
      principal: `${ISS}/alice`,
      issuer: ISS,
      subject: 'alice',
      audiences: ['a1'],
      presenter: 'web',
    });
    expect(o.identity.claims).toMatchObject({
      scope: ['read', 'write'],
      permission: ['x', 'y'],
      roles: ['admin', 'editor'],
      teams: 'red blue',
    });
  });

  // jwt.proto: outputPayloadToHeader "The forwarded data is base64_encoded(jwt_payload_in_JSON)";
  // outputClaimToHeaders: "Only claim of type string/int/bool is supported. The header will not
  // be there if the claim does not exist or the type of the claim is not supported.";
  // forwardOriginalToken: "If set to true, the original token will be kept for the upstream
  // request. Default is false."
  it('outputPayloadToHeader, outputClaimToHeaders (nested with "."), forwardOriginalToken', async () => {
    const t = await server.sign(
      claims({ iat: 1562182722, nested: { 'nested-2': { key2: 'v2' } }, obj: { a: 1 } }),
    );
    const rule = `outputPayloadToHeader: x-test-payload
outputClaimToHeaders:
- { header: x-jwt-iss, claim: iss }
- { header: x-jwt-iat, claim: iat }
- { header: x-jwt-nested-claim, claim: nested.nested-2.key2 }
- { header: x-jwt-obj, claim: obj }`;
    const o = await outcome(ra(rule), {
      headers: { authorization: `Bearer ${t}`, 'x-jwt-iss': 'forged' },
    });
    if (o.kind !== 'verified') throw new Error(o.kind);
    expect(o.headers?.set).toEqual({
      'x-test-payload': t.split('.')[1],
      'x-jwt-iss': ISS,
      'x-jwt-iat': '1562182722',
      'x-jwt-nested-claim': 'v2',
    });
    expect(o.headers?.remove).toEqual(
      expect.arrayContaining(['x-test-payload', 'x-jwt-iss', 'x-jwt-obj', 'authorization']),
    );
    const kept = await outcome(ra('forwardOriginalToken: true'), {
      headers: { authorization: `Bearer ${t}` },
    });
    expect(kept.kind).toBe('verified');
    expect(kept.kind === 'verified' && (kept.headers?.remove ?? []).includes('authorization')).toBe(
      false,
    );
    // No token: forged output headers are still removed.
    const none = await outcome(ra(rule), { headers: { 'x-jwt-iss': 'forged' } });
    expect(none).toMatchObject({ kind: 'none' });
    expect(none.kind === 'none' && none.headers?.remove).toContain('x-jwt-iss');
  });
});

describe('RequestAuthentication in the inbound decision', () => {
  const requireJwt = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require-jwt, namespace: foo }
spec:
  rules: [{ from: [{ source: { requestPrincipals: ["*"] } }] }]
`;

  it('no token: no principal, authorization decides (403); a bad token: 401 before it', async () => {
    // request_authentication.proto: "To restrict access to authenticated requests only, this
    // should be accompanied by an authorization rule" (requestPrincipals: ["*"]).
    const c = inbound(ra('') + requireJwt);
    expect(await authorizeInbound(c, req())).toMatchObject({ allow: false, status: 403 });
    const good = await server.sign(claims());
    const d = await authorizeInbound(c, req({ headers: { authorization: `Bearer ${good}` } }));
    expect(d).toMatchObject({ allow: true, status: 200, requestPrincipal: `${ISS}/alice` });
    expect(by(d)).toBe('foo/require-jwt rule 0');
    const bad = await server.signWithUnknownKey(claims());
    expect(
      await authorizeInbound(c, req({ headers: { authorization: `Bearer ${bad}` } })),
    ).toMatchObject({ allow: false, status: 401 });
  });

  it('evaluateInbound alone cannot verify a token that is present: 401, never a silent pass', async () => {
    const c = inbound(ra(''));
    const good = await server.sign(claims());
    const d = evaluateInbound(c, req({ headers: { authorization: `Bearer ${good}` } }));
    expect(d).toMatchObject({ allow: false, status: 401 });
    expect(evaluateInbound(c, req())).toMatchObject({ allow: true });
  });

  it('without a RequestAuthentication a token is not read', async () => {
    const c = inbound(requireJwt);
    const good = await server.sign(claims());
    const d = await authorizeInbound(c, req({ headers: { authorization: `Bearer ${good}` } }));
    expect(d).toMatchObject({ allow: false, status: 403 });
    expect(d.requestPrincipal).toBeUndefined();
  });

  it('a plaintext caller refused by STRICT is not authenticated at all', async () => {
    const strict = `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: foo }
spec: { mtls: { mode: STRICT } }
`;
    const c = inbound(ra('') + strict);
    const d = await authorizeInbound(c, plaintext({ headers: { authorization: 'Bearer junk' } }));
    expect(d).toMatchObject({ allow: false, plaintextRefused: true });
  });

  it('authenticateToken (explain --jwt) and authenticateClaims (explain --jwt-claims)', async () => {
    const c = inbound(ra('fromHeaders: [{ name: x-only-here }]'));
    const t = await server.sign(claims());
    expect(await authenticateToken(c.requestAuthentication, t)).toMatchObject({
      kind: 'verified',
      identity: { principal: `${ISS}/alice` },
    });
    expect(authenticateClaims(c.requestAuthentication, claims())).toMatchObject({
      kind: 'verified',
    });
    expect(authenticateClaims(c.requestAuthentication, claims({ exp: 1562182856 }))).toMatchObject({
      kind: 'invalid',
      status: 401,
    });
    expect(
      authenticateClaims(c.requestAuthentication, claims({ iss: 'https://elsewhere' })),
    ).toMatchObject({ kind: 'invalid', status: 401 });
    expect(authenticateClaims(inbound('').requestAuthentication, claims())).toMatchObject({
      kind: 'none',
    });
  });
});
