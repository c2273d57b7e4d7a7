// What every JWT check in meshgate accepts, in one place: SecurityPolicy `jwt` and the OIDC ID
// token at the edge (gateway/auth), RequestAuthentication at the workload (shared/authz). They
// play Envoy's jwt_authn filter in both places, so they share its defaults and its words.

import { errors as joseErrors } from 'jose';

/**
 * Asymmetric algorithms only: a shared-secret (HS*) or `none` token is never accepted. Frozen:
 * typed as jose's mutable option, but no caller may change it.
 */
export const JWT_ALGORITHMS = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]) as string[];

/** Envoy jwt_authn's default clock skew for exp and nbf. */
export const JWT_CLOCK_SKEW_SECONDS = 60;

/** Envoy jwt_authn's default remote JWKS cache duration (what Istio leaves it at). */
export const REMOTE_JWKS_MAX_AGE_MS = 5 * 60_000;

/** Why jose refused a token, in Envoy jwt_authn's words where it has them. */
export function describeJwtError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'Jwt is expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return `claim ${err.claim} ${err.reason}: ${err.message}`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'Jwt verification fails';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no JWKS key matches the token header';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  return err instanceof Error ? err.message : String(err);
}
