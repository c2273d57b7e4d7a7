// A small OpenID Provider for tests, over HTTPS on 127.0.0.1 (OIDC requires an https issuer):
// discovery, an authorization endpoint that signs the configured user in without asking (or shows
// "signed out" after a logout), a token endpoint that checks client_secret_basic, the code, the
// redirect_uri and the PKCE verifier, the refresh_token grant (rotating refresh tokens), JWKS and
// end_session. Keys and the TLS certificate are generated at test time.

import { createHash, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import forge from 'node-forge';

export interface TestUser {
  sub: string;
  name: string;
  email?: string;
  groups?: string[];
}

export interface OidcProviderOptions {
  clientId: string;
  clientSecret: string;
  user: TestUser;
  /** ms since epoch; the gateway under test should share it. */
  now?: () => number;
  /** Access (and ID) token lifetime in seconds. */
  tokenTtlSeconds?: number;
}

interface IssuedCode {
  clientId: string;
  redirectUri: string;
  nonce: string;
  challenge: string;
  scope: string;
  user: TestUser;
  used: boolean;
}

export interface TestOidcProvider {
  issuer: string;
  /** PEM of the provider's self-signed certificate, for clients that must trust it. */
  caPem: string;
  user: TestUser;
  /** Times the authorization endpoint signed someone in. */
  authorizations: number;
  /** Token endpoint calls by grant type (successful or not). */
  tokenRequests: { authorization_code: number; refresh_token: number };
  /** end_session calls, with their parameters. */
  logouts: { idTokenHint: string | null; postLogoutRedirectUri: string | null }[];
  /** Signs an access token for `user` directly (a token an API client would bring). */
  accessToken(user?: TestUser): Promise<string>;
  /** Refresh tokens issued so far stop working (revocation). */
  revokeRefreshTokens(): void;
  /** The user is signed in at the provider again (after an end_session). */
  signIn(): void;
  close(): Promise<void>;
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<TestOidcProvider> {
  const now = options.now ?? (() => Date.now());
  const ttl = options.tokenTtlSeconds ?? 300;
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-1', alg: 'RS256', use: 'sig' };
  const tls = ipCertificate('127.0.0.1');
  const codes = new Map<string, IssuedCode>();
  const refreshTokens = new Map<string, { user: TestUser; scope: string }>();
  let signedIn = true;

  const state: Omit<
    TestOidcProvider,
    'issuer' | 'caPem' | 'accessToken' | 'revokeRefreshTokens' | 'signIn' | 'close'
  > = {
    user: options.user,
    authorizations: 0,
    tokenRequests: { authorization_code: 0, refresh_token: 0 },
    logouts: [],
  };

  const sign = (claims: Record<string, unknown>, audience: string, key: CryptoKey = privateKey) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'test-1' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt(Math.floor(now() / 1000))
      .setExpirationTime(Math.floor(now() / 1000) + ttl)
      .sign(key);
  const userClaims = (u: TestUser) => ({
    sub: u.sub,
    name: u.name,
    ...(u.email ? { email: u.email } : {}),
    ...(u.groups ? { groups: u.groups } : {}),
  });
  const accessToken = (u: TestUser, scope = 'openid') =>
    sign({ ...userClaims(u), scope, client_id: options.clientId }, 'orders-api');

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  };

  const issueTokens = async (u: TestUser, scope: string, nonce: string | undefined) => {
    const refresh = randomBytes(24).toString('base64url');
    refreshTokens.set(refresh, { user: u, scope });
    return {
      access_token: await accessToken(u, scope),
      id_token: await sign({ ...userClaims(u), ...(nonce ? { nonce } : {}) }, options.clientId),
      refresh_token: refresh,
      token_type: 'Bearer',
      expires_in: ttl,
      scope,
    };
  };

  const authorize = (url: URL, res: ServerResponse) => {
    const q = url.searchParams;
    const redirectUri = q.get('redirect_uri') ?? '';
    if (q.get('client_id') !== options.clientId || !redirectUri)
      return json(res, 400, { error: 'invalid_request', error_description: 'unknown client' });
    if (q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256')
      return json(res, 400, { error: 'invalid_request', error_description: 'code flow with S256' });
    if (!signedIn) {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>Signed out</title><h1>You are signed out</h1>');
      return;
    }
    state.authorizations++;
    const code = randomBytes(16).toString('base64url');
    codes.set(code, {
      clientId: options.clientId,
      redirectUri,
      nonce: q.get('nonce') ?? '',
      challenge: q.get('code_challenge') ?? '',
      scope: q.get('scope') ?? '',
      user: state.user,
      used: false,
    });
    const back = new URL(redirectUri);
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state') ?? '');
    res.writeHead(302, { location: back.toString() });
    res.end();
  };

  const clientAuthenticated = (req: IncomingMessage) => {
    const h = req.headers.authorization ?? '';
    if (!h.startsWith('Basic ')) return false;
    const [id, secret] = Buffer.from(h.slice(6), 'base64')
      .toString()
      .split(':')
      .map((s) => decodeURIComponent(s.replace(/\+/g, ' ')));
    const a = Buffer.from(`${id}\0${secret}`);
    const b = Buffer.from(`${options.clientId}\0${options.clientSecret}`);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const token = async (req: IncomingMessage, res: ServerResponse, body: string) => {
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded')
      return json(res, 400, { error: 'invalid_request' });
    const form = new URLSearchParams(body);
    const grant = form.get('grant_type');
    if (grant === 'authorization_code' || grant === 'refresh_token') state.tokenRequests[grant]++;
    if (!clientAuthenticated(req)) return json(res, 401, { error: 'invalid_client' });
    if (grant === 'authorization_code') {
      const issued = codes.get(form.get('code') ?? '');
      if (!issued || issued.used) return json(res, 400, { error: 'invalid_grant' });
      issued.used = true;
      if (form.get('redirect_uri') !== issued.redirectUri)
        return json(res, 400, { error: 'invalid_grant', error_description: 'redirect_uri' });
      const verifier = form.get('code_verifier') ?? '';
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      if (challenge !== issued.challenge)
        return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE' });
      return json(res, 200, await issueTokens(issued.user, issued.scope, issued.nonce));
    }
    if (grant === 'refresh_token') {
      const presented = form.get('refresh_token') ?? '';
      const known = refreshTokens.get(presented);
      if (!known) return json(res, 400, { error: 'invalid_grant' });
      refreshTokens.delete(presented); // rotation: a refresh token works once
      return json(res, 200, await issueTokens(known.user, known.scope, undefined));
    }
    return json(res, 400, { error: 'unsupported_grant_type' });
  };

  const endSession = (url: URL, res: ServerResponse) => {
    const q = url.searchParams;
    state.logouts.push({
      idTokenHint: q.get('id_token_hint'),
      postLogoutRedirectUri: q.get('post_logout_redirect_uri'),
    });
    signedIn = false;
    const back = q.get('post_logout_redirect_uri');
    if (back) res.writeHead(302, { location: back }).end();
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Signed out</h1>');
  };

  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const route = `${req.method} ${url.pathname}`;
      const handle = async () => {
        switch (route) {
          case 'GET /.well-known/openid-configuration':
            return json(res, 200, {
              issuer,
              authorization_endpoint: `${issuer}/authorize`,
              token_endpoint: `${issuer}/token`,
              jwks_uri: `${issuer}/jwks`,
              end_session_endpoint: `${issuer}/end_session`,
              response_types_supported: ['code'],
              code_challenge_methods_supported: ['S256'],
              token_endpoint_auth_methods_supported: ['client_secret_basic'],
            });
          case 'GET /jwks':
            return json(res, 200, { keys: [jwk] });
          case 'GET /authorize':
            return authorize(url, res);
          case 'POST /token':
            return token(req, res, body);
          case 'GET /end_session':
            return endSession(url, res);
          default:
            return json(res, 404, { error: 'not_found' });
        }
      };
      handle().catch((err: unknown) => json(res, 500, { error: String(err) }));
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return Object.assign(state, {
    issuer,
    caPem: tls.certPem,
    accessToken: (u?: TestUser) => accessToken(u ?? state.user),
    revokeRefreshTokens: () => refreshTokens.clear(),
    signIn: () => {
      signedIn = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** A self-signed certificate for an IP address (an IP SAN, which the DNS-only helper lacks). */
function ipCertificate(ip: string): { certPem: string; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.rsa.setPublicKey(key.n, key.e);
  cert.serialNumber = '02';
  cert.validity.notBefore = new Date('2026-01-01T00:00:00Z');
  cert.validity.notAfter = new Date('2036-01-01T00:00:00Z');
  const attrs = [{ name: 'commonName', value: ip }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip }] },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}
