import type { ApiKeyAuthenticator } from '../auth/api-key-authenticator.ts';
import type { IntrospectionAuthenticator } from '../auth/introspection-authenticator.ts';
import type { JwtAuthenticator, JwtOutcome } from '../auth/jwt-authenticator.ts';
import type { OidcAuthenticator } from '../auth/oidc-authenticator.ts';
import type { CompiledSecurityPolicy } from '../auth/security-policy.ts';
import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';

/**
 * Every authenticator the rule's policies configure must pass: the SecurityPolicy's (OIDC login,
 * API key, JWT) and then a TokenIntrospectionPolicy's. JWT may be `optional` (a missing token
 * passes, an invalid one never does). 401 with RFC 6750's WWW-Authenticate; the reason goes to the
 * log only. A rule without either policy stays synchronous.
 */
export function authenticate(r: EdgeRequest): void | Promise<void> {
  const rule = r.rule;
  if (!rule || (!rule.security && !rule.tokenIntrospection)) return;
  const policy = rule.security;
  // JWT (and API keys) with a token seen before: decided without a promise.
  if (policy && !policy.oidc && !rule.tokenIntrospection && policy.jwt) {
    const outcome = policy.jwt.authenticateCached(r);
    if (outcome) {
      const realm = `realm="${policy.realm}"`;
      if (policy.apiKey) apiKey(r, policy.apiKey, realm);
      settleBearer(r, policy.jwt, outcome, realm);
      return;
    }
  }
  return authenticateRule(r, policy, rule.tokenIntrospection);
}

async function authenticateRule(
  r: EdgeRequest,
  policy: CompiledSecurityPolicy | undefined,
  introspection: IntrospectionAuthenticator | undefined,
): Promise<void> {
  if (policy) {
    const realm = `realm="${policy.realm}"`;
    let bearerChecked = false;
    if (policy.oidc) {
      bearerChecked = await oidcLogin(r, policy.oidc, policy.jwt, realm);
      if (r.done) return;
    }
    if (policy.apiKey) apiKey(r, policy.apiKey, realm);
    if (policy.jwt && !bearerChecked) await bearerJwt(r, policy.jwt, realm);
  }
  if (introspection) await introspectedToken(r, introspection);
}

/**
 * OIDC first (as Envoy Gateway orders oauth2 before jwt_authn). With passThroughAuthHeader a
 * request carrying a token the JWT providers extract skips the login and is judged by them (an
 * invalid one is a 401, not a login). Returns whether the JWT requirement is settled: a login
 * session stands for it, the way Envoy Gateway's forwarded token would.
 */
async function oidcLogin(
  r: EdgeRequest,
  oidc: OidcAuthenticator,
  jwt: JwtAuthenticator | undefined,
  realm: string,
): Promise<boolean> {
  if (oidc.passThroughAuthHeader && jwt) {
    const outcome = await jwt.authenticate(r);
    if (outcome.kind === 'ok') {
      r.principal.jwt = outcome.principal;
      return true;
    }
    if (outcome.kind === 'invalid') throw invalidBearer(outcome.reason, realm);
  }
  const outcome = await oidc.authenticate(r);
  if (outcome.kind === 'ok') r.principal.jwt = outcome.principal;
  return true;
}

function apiKey(r: EdgeRequest, apiKeys: ApiKeyAuthenticator, realm: string): void {
  const outcome = apiKeys.authenticate(r);
  if (outcome.kind !== 'ok')
    throw new ProxyError(
      'MG_ERR_UNAUTHENTICATED',
      outcome.kind === 'missing' ? 'no API key in the request' : outcome.reason,
      {
        headers: { 'www-authenticate': `APIKey ${realm}` },
        publicDetail: 'A valid API key is required.',
      },
    );
  r.principal.apiKeyClient = outcome.clientId;
}

async function bearerJwt(r: EdgeRequest, jwt: JwtAuthenticator, realm: string): Promise<void> {
  settleBearer(r, jwt, await jwt.authenticate(r), realm);
}

function settleBearer(
  r: EdgeRequest,
  jwt: JwtAuthenticator,
  outcome: JwtOutcome,
  realm: string,
): void {
  if (outcome.kind === 'ok') r.principal.jwt = outcome.principal;
  else if (outcome.kind === 'missing') {
    if (!jwt.optional)
      throw new ProxyError('MG_ERR_UNAUTHENTICATED', 'no bearer token in the request', {
        headers: { 'www-authenticate': `Bearer ${realm}` },
        publicDetail: 'A bearer token is required.',
      });
  } else throw invalidBearer(outcome.reason, realm);
}

/**
 * TokenIntrospectionPolicy (RFC 7662): inactive or expired → 401 invalid_token; missing required
 * scopes → 403 insufficient_scope (RFC 6750 section 3.1); the endpoint unreachable → 503, closed.
 */
async function introspectedToken(
  r: EdgeRequest,
  introspection: IntrospectionAuthenticator,
): Promise<void> {
  const realm = 'realm="meshgate"';
  const outcome = await introspection.authenticate(r);
  switch (outcome.kind) {
    case 'ok':
      r.principal.jwt = outcome.principal;
      return;
    case 'missing':
      throw new ProxyError('MG_ERR_UNAUTHENTICATED', 'no bearer token in the request', {
        headers: { 'www-authenticate': `Bearer ${realm}` },
        publicDetail: 'A bearer token is required.',
      });
    case 'invalid':
      throw invalidBearer(`${introspection.id}: ${outcome.reason}`, realm);
    case 'insufficient_scope':
      throw new ProxyError(
        'MG_ERR_FORBIDDEN',
        `${introspection.id}: the token lacks scopes ${outcome.missing.join(' ')}`,
        {
          headers: {
            'www-authenticate': `Bearer ${realm}, error="insufficient_scope", scope="${introspection.requiredScopes.join(' ')}"`,
          },
          publicDetail: 'The bearer token does not carry the scopes this resource requires.',
        },
      );
    case 'unavailable':
      throw new ProxyError(
        'MG_ERR_UPSTREAM_CONNECT',
        `${introspection.id}: token introspection failed: ${outcome.reason}`,
        { publicDetail: 'The token could not be checked; try again later.' },
      );
  }
}

function invalidBearer(reason: string, realm: string): ProxyError {
  return new ProxyError('MG_ERR_UNAUTHENTICATED', `invalid token: ${reason}`, {
    headers: { 'www-authenticate': `Bearer ${realm}, error="invalid_token"` },
    publicDetail: 'The bearer token is not valid.',
  });
}
