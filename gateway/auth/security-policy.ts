// An effective SecurityPolicy, compiled once per view into what the authn and authz layers run.

import { durationToMs } from '../../shared/config/schemas/common.ts';
import type { SecurityPolicySpec } from '../../shared/config/schemas/envoy-gateway.ts';
import type { CorsConfig } from '../../shared/proxy/cors.ts';
import { ApiKeyAuthenticator } from './api-key-authenticator.ts';
import { compileAuthorization, type AuthzDecision, type AuthzInput } from './authorization.ts';
import type { JwksCache } from './jwks-cache.ts';
import { JwtAuthenticator, type JwtPrincipal } from './jwt-authenticator.ts';
import type { TokenCache } from './token-cache.ts';

export interface AuthRuntime {
  jwks: JwksCache;
  tokens: TokenCache<JwtPrincipal>;
  /** ms since epoch. */
  wallClock: () => number;
}

export interface CompiledSecurityPolicy {
  id: string;
  jwt?: JwtAuthenticator;
  apiKey?: ApiKeyAuthenticator;
  authorize?: (input: AuthzInput) => AuthzDecision;
  cors?: CorsConfig;
  /** Realm for WWW-Authenticate: the policy, so a client can tell which one asked. */
  realm: string;
}

export function compileSecurityPolicy(
  id: string,
  spec: SecurityPolicySpec,
  secrets: Record<string, Record<string, string>>,
  runtime: AuthRuntime,
): CompiledSecurityPolicy {
  const out: CompiledSecurityPolicy = { id, realm: 'meshgate' };
  if (spec.jwt)
    out.jwt = new JwtAuthenticator(
      spec.jwt,
      { jwks: runtime.jwks, tokens: runtime.tokens, now: runtime.wallClock },
      `${id}:${JSON.stringify(spec.jwt)}`,
    );
  if (spec.apiKeyAuth) out.apiKey = new ApiKeyAuthenticator(spec.apiKeyAuth, secrets);
  if (spec.authorization) out.authorize = compileAuthorization(spec.authorization);
  if (spec.cors)
    out.cors = {
      allowOrigins: spec.cors.allowOrigins ?? [],
      allowMethods: spec.cors.allowMethods ?? [],
      allowHeaders: spec.cors.allowHeaders ?? [],
      exposeHeaders: spec.cors.exposeHeaders ?? [],
      allowCredentials: spec.cors.allowCredentials ?? false,
      maxAge: spec.cors.maxAge ? Math.round(durationToMs(spec.cors.maxAge) / 1000) : 5,
    };
  return out;
}
