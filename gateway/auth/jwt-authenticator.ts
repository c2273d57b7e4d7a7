// SecurityPolicy `jwt`: bearer tokens verified with jose against each provider's JWKS (remote,
// through the shared JwksCache, or inline), issuer and audiences checked, exp/nbf with clock skew.

import {
  createLocalJWKSet,
  decodeJwt,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import {
  describeJwtError,
  JWT_ALGORITHMS,
  JWT_CLOCK_SKEW_SECONDS,
} from '../../shared/auth/jwt-verification.ts';
import { durationToMs } from '../../shared/config/duration.ts';
import type { JWTSpec } from '../../shared/config/schemas/envoy-gateway.ts';
import type { EdgeRequest } from '../request-context.ts';
import { findCredential, type CredentialSource } from './credentials.ts';
import type { JwksCache } from './jwks-cache.ts';
import { TokenCache } from './token-cache.ts';

export interface JwtPrincipal {
  provider: string;
  claims: JWTPayload;
  scopes: ReadonlySet<string>;
}

export type JwtOutcome =
  | { kind: 'ok'; principal: JwtPrincipal }
  | { kind: 'missing' }
  /** `reason` is for the log only; the client gets RFC 6750's invalid_token and nothing more. */
  | { kind: 'invalid'; reason: string };

const MISSING: JwtOutcome = { kind: 'missing' };

interface Provider {
  name: string;
  issuer?: string;
  audiences?: string[];
  keys: JWTVerifyGetKey;
  sources: CredentialSource[];
  claimToHeaders: { header: string; claim: string }[];
}

export interface JwtDeps {
  jwks: JwksCache;
  tokens: TokenCache<JwtPrincipal>;
  /** ms since epoch. */
  now: () => number;
  clockSkewSeconds?: number;
}

export class JwtAuthenticator {
  private readonly providers: Provider[];
  readonly optional: boolean;
  /** Signature verifications done (cache misses), for tests and metrics. */
  verifications = 0;
  private readonly sources: CredentialSource[];
  /** Separates this policy's cache entries from another policy's (audiences differ). */
  private readonly scope: string;

  constructor(
    spec: JWTSpec,
    private readonly deps: JwtDeps,
    scope: string,
  ) {
    this.optional = spec.optional ?? false;
    this.scope = scope;
    this.providers = spec.providers.map((p) => ({
      name: p.name,
      ...(p.issuer ? { issuer: p.issuer } : {}),
      ...(p.audiences?.length ? { audiences: p.audiences } : {}),
      keys: p.remoteJWKS
        ? deps.jwks.resolver(p.remoteJWKS.uri, durationToMs(p.remoteJWKS.cacheDuration))
        : createLocalJWKSet(JSON.parse(p.localJWKS?.inline ?? '{"keys":[]}') as JSONWebKeySet),
      sources: sourcesOf(p.extractFrom),
      claimToHeaders: p.claimToHeaders ?? [],
    }));
    const all = this.providers.flatMap((p) => p.sources);
    this.sources = all.filter(
      (s, i) => all.findIndex((t) => t.kind === s.kind && t.name === s.name) === i,
    );
  }

  get providerNames(): string[] {
    return this.providers.map((p) => p.name);
  }

  /**
   * The outcome when it needs no signature check (no token, or a token verified before), else
   * undefined: the authn layer stays synchronous for hot tokens.
   */
  authenticateCached(r: EdgeRequest): JwtOutcome | undefined {
    const found = findCredential(r, this.sources);
    if (!found) return MISSING;
    const cached = this.deps.tokens.get(TokenCache.digest(this.scope, found.value));
    if (!cached) return undefined;
    this.forwardClaims(r, cached);
    return { kind: 'ok', principal: cached };
  }

  async authenticate(r: EdgeRequest): Promise<JwtOutcome> {
    const found = findCredential(r, this.sources);
    if (!found) return MISSING;
    const token = found.value;
    const key = TokenCache.digest(this.scope, token);
    const cached = this.deps.tokens.get(key);
    if (cached) {
      this.forwardClaims(r, cached);
      return { kind: 'ok', principal: cached };
    }
    let unverifiedIssuer: string | undefined;
    try {
      unverifiedIssuer = decodeJwt(token).iss;
    } catch {
      return { kind: 'invalid', reason: 'not a JWT' };
    }
    // A provider whose issuer is the token's goes first; providers without an issuer take any.
    const candidates = this.providers.filter(
      (p) =>
        p.sources.some((s) => s.kind === found.source.kind && s.name === found.source.name) &&
        (p.issuer === undefined || p.issuer === unverifiedIssuer),
    );
    if (candidates.length === 0)
      return {
        kind: 'invalid',
        reason: `no provider for issuer ${JSON.stringify(unverifiedIssuer)}`,
      };
    let reason = '';
    this.verifications++;
    for (const p of candidates) {
      try {
        const { payload } = await jwtVerify(token, p.keys, {
          algorithms: JWT_ALGORITHMS,
          clockTolerance: this.deps.clockSkewSeconds ?? JWT_CLOCK_SKEW_SECONDS,
          currentDate: new Date(this.deps.now()),
          ...(p.issuer ? { issuer: p.issuer } : {}),
          ...(p.audiences ? { audience: p.audiences } : {}),
        });
        const principal: JwtPrincipal = {
          provider: p.name,
          claims: payload,
          scopes: scopesOf(payload),
        };
        // Cached until the token expires; a token without exp is re-verified every minute.
        this.deps.tokens.set(
          key,
          principal,
          payload.exp !== undefined ? payload.exp * 1000 : this.deps.now() + 60_000,
        );
        this.forwardClaims(r, principal);
        return { kind: 'ok', principal };
      } catch (err) {
        reason = `${p.name}: ${describeJwtError(err)}`;
      }
    }
    return { kind: 'invalid', reason };
  }

  private forwardClaims(r: EdgeRequest, principal: JwtPrincipal): void {
    const p = this.providers.find((x) => x.name === principal.provider);
    for (const { header, claim } of p?.claimToHeaders ?? []) {
      const v = claimAt(principal.claims, claim);
      if (v === undefined) continue;
      r.client.headers[header.toLowerCase()] = typeof v === 'string' ? v : JSON.stringify(v);
    }
  }
}

/** Default sources: `Authorization: Bearer` and the `access_token` query parameter (Envoy's). */
function sourcesOf(e: JWTSpec['providers'][number]['extractFrom']): CredentialSource[] {
  if (!e)
    return [
      { kind: 'header', name: 'authorization', prefix: 'Bearer ' },
      { kind: 'param', name: 'access_token' },
    ];
  return [
    ...(e.headers ?? []).map((h) => ({
      kind: 'header' as const,
      name: h.name.toLowerCase(),
      prefix: h.valuePrefix ?? '',
    })),
    ...(e.cookies ?? []).map((name) => ({ kind: 'cookie' as const, name })),
    ...(e.params ?? []).map((name) => ({ kind: 'param' as const, name })),
  ];
}

/** OAuth scopes from `scope` (space-separated, RFC 8693) or `scp` (a list). */
export function scopesOf(claims: JWTPayload): Set<string> {
  const out = new Set<string>();
  const scope = claims.scope;
  if (typeof scope === 'string') for (const s of scope.split(' ')) if (s) out.add(s);
  const scp = claims.scp;
  if (Array.isArray(scp)) {
    for (const s of scp) if (typeof s === 'string') out.add(s);
  } else if (typeof scp === 'string') {
    for (const s of scp.split(' ')) if (s) out.add(s);
  }
  return out;
}

/** A claim by dot path ("realm.roles"). */
export function claimAt(claims: JWTPayload, path: string): unknown {
  let v: unknown = claims;
  for (const seg of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}
