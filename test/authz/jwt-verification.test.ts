// The one JWT verification policy (shared/auth/jwt-verification.ts) that SecurityPolicy `jwt`, the
// OIDC ID token check and RequestAuthentication all use.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors as joseErrors } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  describeJwtError,
  JWT_ALGORITHMS,
  JWT_CLOCK_SKEW_SECONDS,
  REMOTE_JWKS_MAX_AGE_MS,
} from '../../shared/auth/jwt-verification.ts';

const REPO = join(import.meta.dirname, '../..');
const VERIFIERS = [
  'gateway/auth/jwt-authenticator.ts',
  'gateway/auth/oidc-authenticator.ts',
  'shared/authz/request-authentication.ts',
];

describe('JWT verification policy', () => {
  it('accepts asymmetric algorithms only, and the list cannot be changed at run time', () => {
    expect(JWT_ALGORITHMS).toEqual(
      expect.arrayContaining(['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519']),
    );
    for (const alg of JWT_ALGORITHMS) expect(alg).not.toMatch(/^(HS|none)/i);
    expect(() => JWT_ALGORITHMS.push('HS256')).toThrow();
    expect(JWT_CLOCK_SKEW_SECONDS).toBe(60);
    expect(REMOTE_JWKS_MAX_AGE_MS).toBe(300_000);
  });

  // Regression: the edge's SecurityPolicy jwt, its OIDC ID token check and the workload's
  // RequestAuthentication each kept a copy of the algorithm allowlist and the clock skew.
  it('is the only allowlist and skew: the three verifiers import it and keep no copy', () => {
    for (const file of VERIFIERS) {
      const source = readFileSync(join(REPO, file), 'utf8');
      expect(source, file).toMatch(/from '[./]+\/(shared\/)?auth\/jwt-verification\.ts'/);
      expect(source, file).not.toMatch(/'RS256'|'ES256'|SKEW_SECONDS = |5 \* 60_000/);
    }
  });

  it('describes jose refusals in Envoy jwt_authn words', () => {
    expect(
      describeJwtError(new joseErrors.JWTExpired('"exp" claim timestamp check failed', {})),
    ).toBe('Jwt is expired');
    expect(describeJwtError(new joseErrors.JWSSignatureVerificationFailed())).toBe(
      'Jwt verification fails',
    );
    expect(describeJwtError(new joseErrors.JOSEAlgNotAllowed('no'))).toBe('algorithm not allowed');
    expect(describeJwtError(new Error('other'))).toBe('other');
  });
});
