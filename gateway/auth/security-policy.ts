// An effective SecurityPolicy (and TokenIntrospectionPolicy), compiled once per view into what
// the authn and authz layers run.

import { durationToMs } from '../../shared/config/duration.ts';
import type { SecurityPolicySpec } from '../../shared/config/schemas/envoy-gateway.ts';
import type { TokenIntrospectionPolicySpec } from '../../shared/config/schemas/meshgate.ts';
import type { CorsConfig } from '../../shared/proxy/cors.ts';
import { ApiKeyAuthenticator } from './api-key-authenticator.ts';
import { compileAuthorization, type AuthzDecision, type AuthzInput } from './authorization.ts';
import {
  IntrospectionAuthenticator,
  type Introspected,
  type IntrospectionShared,
} from './introspection-authenticator.ts';
import type { JwksCache } from './jwks-cache.ts';
import { JwtAuthenticator, type JwtPrincipal } from './jwt-authenticator.ts';
import { OidcAuthenticator, type OidcShared, type OpenSession } from './oidc-authenticator.ts';
import { OidcDiscovery } from './oidc-discovery.ts';
import { TokenCache } from './token-cache.ts';

export interface AuthRuntime {
  jwks: JwksCache;
  tokens: TokenCache<JwtPrincipal>;
  /** ms since epoch. */
  wallClock: () => number;
  /** Where an identity provider or introspection endpoint going down is reported; unset: nowhere. */
  logger?: { warn: (fields: object, message: string) => void };
}

export interface CompiledSecurityPolicy {
  id: string;
  oidc?: OidcAuthenticator;
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
  if (spec.oidc) {
    // Envoy Gateway authorizes on claims only through a JWT provider of the same policy (the
    // JWTPrincipal's provider must be one of jwt.providers); a login's ID token counts as that
    // provider's token when the provider has the OIDC issuer.
    const issuer = spec.oidc.provider.issuer;
    const provider = spec.jwt?.providers.find((p) => p.issuer === issuer)?.name;
    out.oidc = new OidcAuthenticator(
      id,
      spec.oidc,
      secrets,
      {
        shared: shared(runtime).oidc,
        jwks: runtime.jwks,
        now: runtime.wallClock,
        logger: runtime.logger,
      },
      provider,
    );
  }
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

export function compileTokenIntrospectionPolicy(
  id: string,
  spec: TokenIntrospectionPolicySpec,
  secrets: Record<string, Record<string, string>>,
  runtime: AuthRuntime,
): IntrospectionAuthenticator {
  return new IntrospectionAuthenticator(id, spec, secrets, {
    shared: shared(runtime).introspection,
    now: runtime.wallClock,
    logger: runtime.logger,
  });
}

interface SharedAuthState {
  oidc: OidcShared;
  introspection: IntrospectionShared;
}

/**
 * What outlives a view (discovered provider metadata, decrypted sessions, introspection results,
 * calls in flight) hangs off the runtime the gateway passes to every view.
 */
const sharedStates = new WeakMap<AuthRuntime, SharedAuthState>();

function shared(runtime: AuthRuntime): SharedAuthState {
  let state = sharedStates.get(runtime);
  if (!state) {
    const now = runtime.wallClock;
    state = {
      oidc: {
        discovery: new OidcDiscovery({
          now,
          maxAgeMs: 3_600_000,
          retryMs: 10_000,
          fetchTimeoutMs: 5_000,
          onError: (issuer, err) =>
            runtime.logger?.warn(
              { issuer, err: err.message },
              'OIDC discovery failed; serving the metadata already known',
            ),
        }),
        sessions: new TokenCache<OpenSession>(10_000, now),
        refreshing: new Map(),
        refreshed: new TokenCache(10_000, now),
      },
      introspection: {
        cache: new TokenCache<Introspected>(10_000, now),
        inflight: new Map(),
        failing: new Set(),
      },
    };
    sharedStates.set(runtime, state);
  }
  return state;
}
