// SecurityPolicy `oidc`: the browser login of Envoy's oauth2 filter as Envoy Gateway configures it
// (api/v1alpha1/oidc_types.go), done here: a request without a session is redirected to the
// provider (authorization code flow with PKCE S256, `state` and `nonce` bound to an encrypted
// login-flow cookie); the callback at redirectURL exchanges the code with client_secret_basic,
// verifies the ID token (issuer, audience = client id, nonce, exp) and sets an encrypted session
// cookie; an expired access token is refreshed with the refresh token without the user seeing the
// provider; logoutPath clears the cookies and ends the provider's session when it has an
// end_session_endpoint.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import {
  describeJwtError,
  JWT_ALGORITHMS,
  JWT_CLOCK_SKEW_SECONDS,
  REMOTE_JWKS_MAX_AGE_MS,
} from '../../shared/auth/jwt-verification.ts';
import { durationToMs } from '../../shared/config/duration.ts';
import type { OIDCSpec } from '../../shared/config/schemas/envoy-gateway.ts';
import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';
import type { JwksCache } from './jwks-cache.ts';
import { scopesOf, type JwtPrincipal } from './jwt-authenticator.ts';
import { clientSecretBasic, postForm, type EndpointAnswer } from './oauth-client.ts';
import type { OidcDiscovery } from './oidc-discovery.ts';
import {
  addResponseCookies,
  clearChunked,
  clearCookie,
  readChunked,
  readCookies,
  SessionCodec,
  setChunked,
  setCookie,
  withoutCookies,
  type CookieAttributes,
  type LoginFlow,
  type SessionTokens,
} from './oidc-session.ts';
import { TokenCache } from './token-cache.ts';

/** Envoy Gateway's defaults (oidc_types.go). */
const DEFAULT_REDIRECT_PATH = '/oauth2/callback';
const DEFAULT_LOGOUT_PATH = '/logout';
const DEFAULT_CSRF_TTL_MS = 10 * 60_000;
const DEFAULT_REFRESH_TOKEN_TTL_MS = 604_800_000;
/** Envoy Gateway gives the token endpoint 10 s. */
const TOKEN_ENDPOINT_TIMEOUT_MS = 10_000;
/** How long a finished refresh is handed to requests that still carry the old cookie. */
const REFRESH_REUSE_MS = 60_000;

/** A session as the gateway reads it: the tokens and what the ID token says. */
export interface OpenSession {
  tokens: SessionTokens;
  claims: JWTPayload;
  scopes: ReadonlySet<string>;
}

interface Refreshed {
  session: OpenSession;
  /** The new session cookie value (a JWE). */
  cookie: string;
  maxAgeSeconds: number;
}

/** State every view shares, so a reload keeps sessions decrypted and refreshes coalesced. */
export interface OidcShared {
  discovery: OidcDiscovery;
  /** Decrypted sessions by cookie digest, until the access token expires. */
  sessions: TokenCache<OpenSession>;
  /** Refreshes in flight by refresh-token digest: a page's parallel requests refresh once. */
  refreshing: Map<string, Promise<Refreshed | undefined>>;
  refreshed: TokenCache<Refreshed>;
}

export interface OidcDeps {
  shared: OidcShared;
  jwks: JwksCache;
  /** ms since epoch. */
  now: () => number;
  logger?: { warn: (fields: object, message: string) => void } | undefined;
}

export type OidcOutcome =
  | { kind: 'ok'; principal: JwtPrincipal }
  /** The authenticator answered the request: a redirect to the provider, the callback, the logout. */
  | { kind: 'answered' };

type DenyMatcher = { name: string; test: (value: string) => boolean };

export class OidcAuthenticator {
  readonly issuer: string;
  readonly passThroughAuthHeader: boolean;
  /** Why the policy cannot run (a missing client secret): its requests fail closed. */
  private readonly misconfigured: string | undefined;
  private readonly clientId: string;
  private readonly basicAuth: string;
  private readonly codec: SessionCodec | undefined;
  private readonly scopes: string;
  private readonly resources: readonly string[];
  private readonly redirectURL: string | undefined;
  private readonly callbackPath: string;
  private readonly logoutPath: string;
  private readonly sessionCookie: string;
  private readonly flowCookiePrefix: string;
  private readonly sameSite: CookieAttributes['sameSite'];
  private readonly cookieDomain: string | undefined;
  private readonly csrfTtlMs: number;
  private readonly defaultTokenTtlMs: number | undefined;
  private readonly refreshTokens: boolean;
  private readonly refreshTokenTtlMs: number;
  private readonly forwardAccessToken: boolean;
  private readonly idTokenHeader: string | undefined;
  private readonly denyRedirect: DenyMatcher[];
  /** Separates this client's cached sessions from another's (another key decrypts nothing). */
  private readonly scope: string;
  /** Endpoints written in the policy; they win over the discovered ones. */
  private readonly explicit: Record<Endpoint, string | undefined>;

  /**
   * `principalProvider`: the JWT provider of the same policy whose issuer is the OIDC issuer, so
   * authorization rules written for that provider's claims apply to a login's ID token.
   */
  constructor(
    readonly policyId: string,
    spec: OIDCSpec,
    secrets: Record<string, Record<string, string>>,
    private readonly deps: OidcDeps,
    private readonly principalProvider: string = spec.provider.issuer,
  ) {
    const secretOf = (ref: { name: string; namespace?: string | undefined }, key: string) =>
      secrets[`${ref.namespace ?? ''}/${ref.name}`]?.[key];
    this.issuer = spec.provider.issuer;
    this.clientId =
      spec.clientID ?? (spec.clientIDRef ? (secretOf(spec.clientIDRef, 'client-id') ?? '') : '');
    const clientSecret = secretOf(spec.clientSecret, 'client-secret');
    this.passThroughAuthHeader = spec.passThroughAuthHeader ?? false;
    const scopes = spec.scopes ?? [];
    // Envoy Gateway appends `openid` when it is missing (appendOpenidScopeIfNotExist).
    this.scopes = (scopes.includes('openid') ? scopes : [...scopes, 'openid']).join(' ');
    this.resources = spec.resources ?? [];
    this.redirectURL = spec.redirectURL;
    this.callbackPath = spec.redirectURL ? redirectPathOf(spec.redirectURL) : DEFAULT_REDIRECT_PATH;
    this.logoutPath = spec.logoutPath ?? DEFAULT_LOGOUT_PATH;
    // One client, one session: every policy (and replica) with this provider and client shares the
    // cookies. Envoy Gateway suffixes its names with a digest of the owning policy's UID; meshgate
    // has no UIDs, and the OIDC client is what the session belongs to.
    const suffix = createHash('sha256')
      .update(`${this.issuer}\0${this.clientId}`)
      .digest('hex')
      .slice(0, 8);
    this.sessionCookie = spec.cookieNames?.accessToken ?? `OauthSession-${suffix}`;
    this.flowCookiePrefix = `OauthFlow-${suffix}.`;
    this.sameSite = spec.cookieConfig?.sameSite ?? 'Lax';
    this.cookieDomain = spec.cookieDomain;
    this.csrfTtlMs = spec.csrfTokenTTL ? durationToMs(spec.csrfTokenTTL) : DEFAULT_CSRF_TTL_MS;
    this.defaultTokenTtlMs = spec.defaultTokenTTL ? durationToMs(spec.defaultTokenTTL) : undefined;
    this.refreshTokens = spec.refreshToken;
    this.refreshTokenTtlMs = spec.defaultRefreshTokenTTL
      ? durationToMs(spec.defaultRefreshTokenTTL)
      : DEFAULT_REFRESH_TOKEN_TTL_MS;
    this.forwardAccessToken = spec.forwardAccessToken ?? false;
    this.idTokenHeader = spec.forwardIDToken?.header.toLowerCase();
    let misconfigured: string | undefined;
    this.denyRedirect = (spec.denyRedirect?.headers ?? []).map((h) => {
      const name = h.name.toLowerCase();
      const v = h.value;
      switch (h.type) {
        case 'Exact':
          return { name, test: (x: string) => x === v };
        case 'Prefix':
          return { name, test: (x: string) => x.startsWith(v) };
        case 'Suffix':
          return { name, test: (x: string) => x.endsWith(v) };
        case 'RegularExpression':
          try {
            // Envoy's safe_regex matches the whole value.
            const re = new RegExp(`^(?:${v})$`);
            return { name, test: (x: string) => re.test(x) };
          } catch (err) {
            misconfigured = `denyRedirect header ${h.name}: ${(err as Error).message}`;
            return { name, test: () => false };
          }
      }
    });
    if (!this.clientId) misconfigured = 'the client id is not in the snapshot';
    if (clientSecret === undefined) misconfigured = 'the client secret is not in the snapshot';
    this.misconfigured = misconfigured;
    this.basicAuth = clientSecretBasic(this.clientId, clientSecret ?? '');
    const context = `${this.issuer}\0${this.clientId}`;
    this.codec = clientSecret === undefined ? undefined : new SessionCodec(clientSecret, context);
    this.scope = `oidc\0${createHash('sha256')
      .update(clientSecret ?? '')
      .update('\0')
      .update(context)
      .digest('base64url')}`;
    this.explicit = {
      authorization_endpoint: spec.provider.authorizationEndpoint,
      token_endpoint: spec.provider.tokenEndpoint,
      end_session_endpoint: spec.provider.endSessionEndpoint,
      jwks_uri: undefined,
    };
    deps.shared.discovery.prefetch(this.issuer);
  }

  async authenticate(r: EdgeRequest): Promise<OidcOutcome> {
    if (this.misconfigured || !this.codec)
      throw new ProxyError('MG_ERR_INVALID_CONFIG', `${this.policyId} oidc: ${this.misconfigured}`);
    const cookies = readCookies(r.header('cookie'));
    if (r.path === this.logoutPath) return this.logout(r, cookies, this.codec);
    if (r.path === this.callbackPath) return this.callback(r, cookies, this.codec);
    const session = await this.currentSession(r, cookies, this.codec);
    if (session) {
      this.forward(r, session.tokens);
      return {
        kind: 'ok',
        principal: {
          provider: this.principalProvider,
          claims: session.claims,
          scopes: session.scopes,
        },
      };
    }
    return this.startLogin(r);
  }

  // --- the session ---

  private async currentSession(
    r: EdgeRequest,
    cookies: Map<string, string>,
    codec: SessionCodec,
  ): Promise<OpenSession | undefined> {
    const jwe = readChunked(cookies, this.sessionCookie);
    if (!jwe) return undefined;
    const key = TokenCache.digest(this.scope, jwe);
    const cached = this.deps.shared.sessions.get(key);
    if (cached) return cached;
    // Tampered, from another key, or not a session: as if there were none (a new login).
    const tokens = await codec.openSession(jwe);
    if (!tokens) return undefined;
    if (tokens.exp > this.deps.now()) {
      const session = openSession(tokens);
      this.deps.shared.sessions.set(key, session, tokens.exp);
      return session;
    }
    return this.refresh(r, cookies, tokens, codec);
  }

  /** An expired access token with a refresh token: a new one from the token endpoint, set as the new cookie. */
  private async refresh(
    r: EdgeRequest,
    cookies: Map<string, string>,
    tokens: SessionTokens,
    codec: SessionCodec,
  ): Promise<OpenSession | undefined> {
    if (!tokens.rt || !this.refreshTokens) return undefined;
    const key = TokenCache.digest(this.scope, tokens.rt);
    const { refreshing, refreshed } = this.deps.shared;
    let done = refreshed.get(key);
    if (!done) {
      let pending = refreshing.get(key);
      if (!pending) {
        pending = this.callRefresh(key, tokens, codec).finally(() => refreshing.delete(key));
        refreshing.set(key, pending);
      }
      done = await pending;
    }
    if (!done) return undefined;
    addResponseCookies(
      r.res,
      setChunked(cookies, this.sessionCookie, done.cookie, this.cookieAttrs(r), done.maxAgeSeconds),
    );
    return done.session;
  }

  private async callRefresh(
    key: string,
    old: SessionTokens,
    codec: SessionCodec,
  ): Promise<Refreshed | undefined> {
    try {
      const tokenEndpoint = (await this.endpoint('token_endpoint')) as string;
      const answer = await postForm(
        tokenEndpoint,
        { grant_type: 'refresh_token', refresh_token: old.rt as string },
        { authorization: this.basicAuth, timeoutMs: TOKEN_ENDPOINT_TIMEOUT_MS },
      );
      if (answer.status !== 200 || typeof answer.body?.access_token !== 'string')
        throw new Error(`the token endpoint answered ${describeAnswer(answer)}`);
      const body = answer.body;
      let it = old.it;
      if (typeof body.id_token === 'string') {
        // OIDC Core section 12.2: same issuer, subject and audience; a nonce is not required.
        const claims = await this.verifyIdToken(body.id_token, undefined);
        if (claims.sub !== decodeJwt(old.it).sub)
          throw new Error('the refreshed ID token is for another subject');
        it = body.id_token;
      }
      const tokens = this.sessionTokens(
        body,
        it,
        typeof body.refresh_token === 'string' ? body.refresh_token : old.rt,
      );
      const session = openSession(tokens);
      const cookie = await codec.sealSession(tokens);
      const now = this.deps.now();
      const done: Refreshed = { session, cookie, maxAgeSeconds: this.sessionMaxAge(tokens) };
      this.deps.shared.refreshed.set(key, done, now + REFRESH_REUSE_MS);
      this.deps.shared.sessions.set(TokenCache.digest(this.scope, cookie), session, tokens.exp);
      return done;
    } catch (err) {
      // The provider refused (revoked, expired refresh token) or is down: the user logs in again.
      this.deps.logger?.warn(
        { policy: this.policyId, issuer: this.issuer, err: describeError(err) },
        'OIDC token refresh failed; starting a new login',
      );
      return undefined;
    }
  }

  /** forwardAccessToken, forwardIDToken; the gateway's own cookies never reach the upstream. */
  private forward(r: EdgeRequest, tokens: SessionTokens): void {
    const headers = r.client.headers;
    if (this.forwardAccessToken) headers.authorization = `Bearer ${tokens.at}`;
    if (this.idTokenHeader)
      headers[this.idTokenHeader] =
        this.idTokenHeader === 'authorization' ? `Bearer ${tokens.it}` : tokens.it;
    const cookie = withoutCookies(r.header('cookie'), (n) => this.isOwnCookie(n));
    if (cookie === undefined) delete headers.cookie;
    else headers.cookie = cookie;
  }

  private isOwnCookie(name: string): boolean {
    return (
      name === this.sessionCookie ||
      name.startsWith(`${this.sessionCookie}.`) ||
      name.startsWith(this.flowCookiePrefix)
    );
  }

  // --- the login ---

  private async startLogin(r: EdgeRequest): Promise<OidcOutcome> {
    if (this.denyRedirect.some((m) => hasMatch(r.header(m.name), m.test)))
      throw new ProxyError(
        'MG_ERR_UNAUTHENTICATED',
        `${this.policyId}: no OIDC session (denyRedirect)`,
        {
          headers: { 'www-authenticate': 'Bearer realm="meshgate"' },
          publicDetail: 'A login session is required.',
        },
      );
    const authorizationEndpoint = (await this.endpoint('authorization_endpoint')) as string;
    const state = random();
    const flow: LoginFlow = {
      v: 1,
      state,
      nonce: random(),
      verifier: random(),
      returnTo: localPath(r.query ? `${r.path}?${r.query}` : r.path),
      exp: this.deps.now() + this.csrfTtlMs,
    };
    const redirectUri = this.redirectUri(r);
    const url = new URL(authorizationEndpoint);
    const q = url.searchParams;
    q.set('response_type', 'code');
    q.set('client_id', this.clientId);
    q.set('redirect_uri', redirectUri);
    q.set('scope', this.scopes);
    q.set('state', state);
    q.set('nonce', flow.nonce);
    q.set('code_challenge', createHash('sha256').update(flow.verifier).digest('base64url'));
    q.set('code_challenge_method', 'S256');
    for (const resource of this.resources) q.append('resource', resource);
    const sealed = await (this.codec as SessionCodec).sealFlow(flow);
    answer(r, 302, {
      location: url.toString(),
      'set-cookie': setCookie(
        this.flowCookieName(state),
        sealed,
        this.flowCookieAttrs(r),
        this.csrfTtlMs / 1000,
      ),
    });
    return { kind: 'answered' };
  }

  /** The provider sent the browser back: check state, exchange the code, verify the ID token. */
  private async callback(
    r: EdgeRequest,
    cookies: Map<string, string>,
    codec: SessionCodec,
  ): Promise<OidcOutcome> {
    const q = new URLSearchParams(r.query);
    const fail = (detail: string, publicDetail = 'The login could not be completed; try again.') =>
      new ProxyError('MG_ERR_UNAUTHENTICATED', `${this.policyId} oidc callback: ${detail}`, {
        headers: { 'www-authenticate': 'Bearer realm="meshgate"' },
        publicDetail,
      });
    const error = q.get('error');
    if (error) throw fail(`the provider answered ${error}`, 'The login was not completed.');
    const state = q.get('state');
    const code = q.get('code');
    if (!state || !code) throw fail('no code or state in the callback');
    const flowCookie = this.flowCookieName(state);
    const sealed = cookies.get(flowCookie);
    const flow = sealed ? await codec.openFlow(sealed) : undefined;
    // CSRF: only the browser that started this login holds a flow cookie for this state.
    if (!flow || !safeEqual(flow.state, state))
      throw fail('the state does not match a login this browser started');
    if (flow.exp <= this.deps.now()) throw fail('the login took longer than csrfTokenTTL');

    const tokenEndpoint = (await this.endpoint('token_endpoint')) as string;
    let tokenAnswer: EndpointAnswer;
    try {
      tokenAnswer = await postForm(
        tokenEndpoint,
        {
          grant_type: 'authorization_code',
          code,
          redirect_uri: this.redirectUri(r),
          code_verifier: flow.verifier,
        },
        { authorization: this.basicAuth, timeoutMs: TOKEN_ENDPOINT_TIMEOUT_MS },
      );
    } catch (err) {
      throw providerDown(this.policyId, `token endpoint: ${describeError(err)}`, err);
    }
    const body = tokenAnswer.body;
    if (tokenAnswer.status !== 200 || typeof body?.access_token !== 'string')
      throw fail(`the token endpoint answered ${describeAnswer(tokenAnswer)}`);
    if (typeof body.id_token !== 'string') throw fail('the token response has no id_token');
    try {
      await this.verifyIdToken(body.id_token, flow.nonce);
    } catch (err) {
      if (err instanceof ProxyError) throw err;
      throw fail(`the ID token does not verify: ${describeError(err)}`);
    }
    const tokens = this.sessionTokens(
      body,
      body.id_token,
      typeof body.refresh_token === 'string' ? body.refresh_token : undefined,
    );
    const sessionCookies = setChunked(
      cookies,
      this.sessionCookie,
      await codec.sealSession(tokens),
      this.cookieAttrs(r),
      this.sessionMaxAge(tokens),
    );
    const setCookies = [...sessionCookies, clearCookie(flowCookie, this.flowCookieAttrs(r))];
    if (this.sameSite === 'Strict') {
      // The browser arrived here from the provider's site: a Strict cookie set now would not be
      // sent on a redirect that continues that navigation, and the login would start over. A page
      // that navigates by itself is a same-site navigation.
      const to = escapeHtml(flow.returnTo);
      const html = `<!doctype html><meta http-equiv="refresh" content="0;url=${to}"><a href="${to}">Continue</a>`;
      answer(
        r,
        200,
        { 'content-type': 'text/html; charset=utf-8', 'set-cookie': setCookies },
        html,
      );
    } else answer(r, 302, { location: flow.returnTo, 'set-cookie': setCookies });
    return { kind: 'answered' };
  }

  /** logoutPath: the cookies go; the provider's session too when it has an end_session_endpoint. */
  private async logout(
    r: EdgeRequest,
    cookies: Map<string, string>,
    codec: SessionCodec,
  ): Promise<OidcOutcome> {
    const jwe = readChunked(cookies, this.sessionCookie);
    const tokens = jwe ? await codec.openSession(jwe) : undefined;
    const setCookies = clearChunked(cookies, this.sessionCookie, this.cookieAttrs(r));
    for (const name of cookies.keys())
      if (name.startsWith(this.flowCookiePrefix))
        setCookies.push(clearCookie(name, this.flowCookieAttrs(r)));
    let location = '/';
    const endSession = tokens ? await this.endpoint('end_session_endpoint', false) : undefined;
    if (endSession && tokens) {
      // OpenID Connect RP-Initiated Logout 1.0 section 2.
      const url = new URL(endSession);
      url.searchParams.set('id_token_hint', tokens.it);
      url.searchParams.set('client_id', this.clientId);
      url.searchParams.set('post_logout_redirect_uri', `${r.scheme}://${r.client.host}/`);
      location = url.toString();
    }
    answer(r, 302, { location, 'set-cookie': setCookies });
    return { kind: 'answered' };
  }

  // --- helpers ---

  private async verifyIdToken(idToken: string, nonce: string | undefined): Promise<JWTPayload> {
    const jwksUri = (await this.endpoint('jwks_uri')) as string;
    const { payload } = await jwtVerify(
      idToken,
      this.deps.jwks.resolver(jwksUri, REMOTE_JWKS_MAX_AGE_MS),
      {
        algorithms: JWT_ALGORITHMS,
        issuer: this.issuer,
        audience: this.clientId,
        clockTolerance: JWT_CLOCK_SKEW_SECONDS,
        currentDate: new Date(this.deps.now()),
        requiredClaims: ['sub', 'exp', 'iat'],
      },
    );
    if (
      nonce !== undefined &&
      (typeof payload.nonce !== 'string' || !safeEqual(payload.nonce, nonce))
    )
      throw new Error('the nonce does not match the login');
    // OIDC Core section 3.1.3.7: with several audiences, azp must be this client.
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== this.clientId)
      throw new Error('azp is not this client');
    return payload;
  }

  /** The token response as a session: expiry from expires_in, else defaultTokenTTL, else the ID token's exp. */
  private sessionTokens(
    body: Record<string, unknown>,
    idToken: string,
    refreshToken: string | undefined,
  ): SessionTokens {
    const now = this.deps.now();
    const expiresIn = Number(body.expires_in);
    let exp: number;
    if (Number.isFinite(expiresIn) && expiresIn > 0) exp = now + expiresIn * 1000;
    else if (this.defaultTokenTtlMs !== undefined) exp = now + this.defaultTokenTtlMs;
    else exp = (decodeJwt(idToken).exp ?? 0) * 1000;
    return {
      v: 1,
      at: body.access_token as string,
      it: idToken,
      ...(refreshToken && this.refreshTokens ? { rt: refreshToken } : {}),
      exp,
      ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
    };
  }

  /** The cookie outlives the access token only when a refresh token can renew it. */
  private sessionMaxAge(tokens: SessionTokens): number {
    const now = this.deps.now();
    if (!tokens.rt) return (tokens.exp - now) / 1000;
    let rtExp: number | undefined;
    try {
      rtExp = decodeJwt(tokens.rt).exp;
    } catch {
      rtExp = undefined; // an opaque refresh token: defaultRefreshTokenTTL
    }
    return rtExp !== undefined ? rtExp - now / 1000 : this.refreshTokenTtlMs / 1000;
  }

  /** An endpoint from the policy, else from discovery; the provider being down is a 503. */
  private async endpoint(name: Endpoint, required = true): Promise<string | undefined> {
    const explicit = this.explicit[name];
    if (explicit) return explicit;
    try {
      const found = (await this.deps.shared.discovery.metadata(this.issuer))[name];
      if (!found && required) throw new Error(`the provider's metadata has no ${name}`);
      return found;
    } catch (err) {
      if (!required) return undefined;
      throw providerDown(this.policyId, describeError(err), err);
    }
  }

  /** redirectURL, with Envoy Gateway's %REQ(...)% placeholders; default `<scheme>://<host>/oauth2/callback`. */
  private redirectUri(r: EdgeRequest): string {
    const host = r.client.host as string;
    if (!this.redirectURL) return `${r.scheme}://${host}${DEFAULT_REDIRECT_PATH}`;
    return this.redirectURL
      .replaceAll('%REQ(x-forwarded-proto)%', r.scheme)
      .replaceAll('%REQ(:authority)%', host);
  }

  /** One flow cookie per login, so logins started in two tabs do not overwrite each other. */
  private flowCookieName(state: string): string {
    return `${this.flowCookiePrefix}${createHash('sha256').update(state).digest('base64url').slice(0, 10)}`;
  }

  private cookieAttrs(r: EdgeRequest): CookieAttributes {
    return {
      path: '/',
      sameSite: this.sameSite,
      // SameSite=None is only kept by browsers on a Secure cookie.
      secure: r.scheme === 'https' || this.sameSite === 'None',
      ...(this.cookieDomain ? { domain: this.cookieDomain } : {}),
    };
  }

  /**
   * The flow cookie is only sent to the callback, and must come with the provider's redirect back
   * (a cross-site top-level navigation), which SameSite=Strict would not allow.
   */
  private flowCookieAttrs(r: EdgeRequest): CookieAttributes {
    return {
      ...this.cookieAttrs(r),
      path: this.callbackPath,
      sameSite: this.sameSite === 'None' ? 'None' : 'Lax',
    };
  }
}

type Endpoint = 'authorization_endpoint' | 'token_endpoint' | 'end_session_endpoint' | 'jwks_uri';

function openSession(tokens: SessionTokens): OpenSession {
  const claims = decodeJwt(tokens.it);
  const scopes = scopesOf(claims);
  for (const s of (tokens.scope ?? '').split(' ')) if (s) scopes.add(s);
  return { tokens, claims, scopes };
}

/** The path of a redirectURL (Envoy Gateway's extractRedirectPath). */
function redirectPathOf(url: string): string {
  const rest = url.slice(url.indexOf('://') + 3);
  const slash = rest.indexOf('/');
  if (slash < 0) return DEFAULT_REDIRECT_PATH;
  const path = rest.slice(slash).split('?')[0] as string;
  return path || DEFAULT_REDIRECT_PATH;
}

function answer(
  r: EdgeRequest,
  status: number,
  headers: Record<string, string | string[]>,
  body = '',
): void {
  r.done = true;
  r.res.writeHead(status, {
    ...headers,
    'cache-control': 'no-store',
    'x-request-id': r.requestId,
    'content-length': String(Buffer.byteLength(body)),
  });
  r.res.end(body);
}

function providerDown(policyId: string, detail: string, cause: unknown): ProxyError {
  return new ProxyError('MG_ERR_UPSTREAM_CONNECT', `${policyId} oidc provider: ${detail}`, {
    cause,
    publicDetail: 'The identity provider is not reachable; try again later.',
  });
}

/**
 * Where the callback sends the browser back: a path on this host only. "//host/x" (kept when a
 * ClientTrafficPolicy turns off mergeSlashes) would be another site: an open redirect.
 */
function localPath(path: string): string {
  return path.startsWith('/') && !path.startsWith('//') && !path.startsWith('/\\') ? path : '/';
}

function hasMatch(value: string | undefined, test: (v: string) => boolean): boolean {
  return value !== undefined && test(value);
}

function random(): string {
  return randomBytes(32).toString('base64url');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function describeAnswer(a: EndpointAnswer): string {
  const error = typeof a.body?.error === 'string' ? ` ${a.body.error}` : '';
  return `HTTP ${a.status}${error}`;
}

function describeError(err: unknown): string {
  if (err instanceof joseErrors.JOSEError) return describeJwtError(err);
  const e = err as Error & { code?: string };
  return e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message;
}
