// meshgate.io TokenIntrospectionPolicy: opaque bearer tokens checked with the authorization
// server's introspection endpoint (RFC 7662). Results are cached by token digest until the token
// expires (never longer than cacheMaxTTL), and concurrent requests with one token share one call.

import type { JWTPayload } from 'jose';
import { durationToMs } from '../../shared/config/duration.ts';
import type { TokenIntrospectionPolicySpec } from '../../shared/config/schemas/meshgate.ts';
import type { EdgeRequest } from '../request-context.ts';
import { findCredential, type CredentialSource } from './credentials.ts';
import { scopesOf, type JwtPrincipal } from './jwt-authenticator.ts';
import { clientSecretBasic, postForm } from './oauth-client.ts';
import { TokenCache } from './token-cache.ts';

/** What the endpoint said about one token, kept in the cache. */
export interface Introspected {
  active: boolean;
  /** The response's members (sub, client_id, scope, exp, …): RFC 7662 reuses JWT claim names. */
  claims: JWTPayload;
  scopes: ReadonlySet<string>;
  /** ms since epoch; when the endpoint was asked. */
  fetchedAt: number;
}

export type IntrospectionOutcome =
  | { kind: 'ok'; principal: JwtPrincipal }
  | { kind: 'missing' }
  /** Inactive, expired or unreadable: 401 invalid_token. */
  | { kind: 'invalid'; reason: string }
  | { kind: 'insufficient_scope'; missing: string[] }
  /** The endpoint could not be asked or did not answer properly: fail closed with 503. */
  | { kind: 'unavailable'; reason: string };

/** State shared by every view of one gateway: the cache, the calls in flight, outages seen. */
export interface IntrospectionShared {
  cache: TokenCache<Introspected>;
  inflight: Map<string, Promise<Introspected>>;
  /** Endpoints that failed last time, so an outage is logged once, not per request. */
  failing: Set<string>;
}

export interface IntrospectionDeps {
  shared: IntrospectionShared;
  /** ms since epoch. */
  now: () => number;
  logger?: { warn: (fields: object, message: string) => void } | undefined;
}

/** An inactive token never turns active, but the answer is kept only briefly (a token may be issued late). */
const INACTIVE_TTL_MS = 60_000;

export class IntrospectionAuthenticator {
  /** Calls made to the endpoint (cache misses after coalescing), for tests and metrics. */
  calls = 0;
  readonly requiredScopes: readonly string[];
  private readonly sources: CredentialSource[];
  private readonly authorization: string | undefined;
  private readonly cacheMaxTTLMs: number;
  private readonly timeoutMs: number;
  /** Cache entries are per endpoint and client: what the server says does not depend on the policy. */
  private readonly scope: string;

  constructor(
    readonly id: string,
    private readonly spec: TokenIntrospectionPolicySpec,
    secrets: Record<string, Record<string, string>>,
    private readonly deps: IntrospectionDeps,
  ) {
    const ref = spec.clientSecretRef;
    const secret = secrets[`${ref.namespace ?? ''}/${ref.name}`]?.['client-secret'];
    // The compiler already refused a policy whose Secret lacks the key; guard anyway (fail closed).
    this.authorization =
      secret === undefined ? undefined : clientSecretBasic(spec.clientID, secret);
    this.requiredScopes = spec.requiredScopes ?? [];
    this.cacheMaxTTLMs = durationToMs(spec.cacheMaxTTL);
    this.timeoutMs = durationToMs(spec.timeout);
    this.sources = sourcesOf(spec.extractFrom);
    this.scope = `introspection\0${spec.endpoint}\0${spec.clientID}`;
  }

  async authenticate(r: EdgeRequest): Promise<IntrospectionOutcome> {
    const found = findCredential(r, this.sources);
    if (!found) return { kind: 'missing' };
    const key = TokenCache.digest(this.scope, found.value);
    const now = this.deps.now();
    let result = this.deps.shared.cache.get(key);
    // Another policy may have cached it with a longer cacheMaxTTL than this one allows.
    if (result && now - result.fetchedAt >= this.cacheMaxTTLMs) result = undefined;
    if (!result) {
      try {
        result = await this.introspect(key, found.value);
      } catch (err) {
        return { kind: 'unavailable', reason: (err as Error).message };
      }
    }
    if (!result.active) return { kind: 'invalid', reason: 'the token is not active' };
    const exp = result.claims.exp;
    if (typeof exp === 'number' && exp * 1000 <= this.deps.now())
      return { kind: 'invalid', reason: 'the token has expired' };
    const missing = this.requiredScopes.filter((s) => !result.scopes.has(s));
    if (missing.length > 0) return { kind: 'insufficient_scope', missing };
    return {
      kind: 'ok',
      principal: { provider: this.id, claims: result.claims, scopes: result.scopes },
    };
  }

  /** One call per token at a time: concurrent requests with the same token wait for the first. */
  private introspect(key: string, token: string): Promise<Introspected> {
    const { inflight } = this.deps.shared;
    let pending = inflight.get(key);
    if (!pending) {
      pending = this.call(key, token).finally(() => inflight.delete(key));
      inflight.set(key, pending);
    }
    return pending;
  }

  private async call(key: string, token: string): Promise<Introspected> {
    if (!this.authorization)
      throw new Error(`${this.id}: the client secret is not in the snapshot`);
    this.calls++;
    const endpoint = this.spec.endpoint;
    let answer;
    try {
      answer = await postForm(
        endpoint,
        { token, token_type_hint: 'access_token' },
        { authorization: this.authorization, timeoutMs: this.timeoutMs },
      );
      if (answer.status !== 200 || !answer.body)
        throw new Error(
          `HTTP ${answer.status}${answer.body ? '' : ' without a JSON body'} from the endpoint`,
        );
    } catch (err) {
      const reason = describe(err, this.timeoutMs);
      if (!this.deps.shared.failing.has(endpoint)) {
        this.deps.shared.failing.add(endpoint);
        this.deps.logger?.warn(
          { policy: this.id, endpoint, err: reason },
          'token introspection endpoint unavailable; requests it covers fail closed (503)',
        );
      }
      throw new Error(reason, { cause: err });
    }
    this.deps.shared.failing.delete(endpoint);
    const body = answer.body;
    const now = this.deps.now();
    // RFC 7662 section 2.2: `active` is the one required member; anything but true is inactive.
    const active = body.active === true;
    const claims = body as JWTPayload;
    const result: Introspected = { active, claims, scopes: scopesOf(claims), fetchedAt: now };
    const bound =
      now + (active ? this.cacheMaxTTLMs : Math.min(this.cacheMaxTTLMs, INACTIVE_TTL_MS));
    const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity;
    this.deps.shared.cache.set(key, result, Math.min(bound, exp));
    return result;
  }
}

/** Default source: `Authorization: Bearer` (RFC 6750 section 2.1). */
function sourcesOf(e: TokenIntrospectionPolicySpec['extractFrom']): CredentialSource[] {
  if (!e) return [{ kind: 'header', name: 'authorization', prefix: 'Bearer ' }];
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

function describe(err: unknown, timeoutMs: number): string {
  const e = err as Error & { code?: string };
  if (e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT')
    return `no answer within ${timeoutMs} ms`;
  return e.code ? `${e.code}: ${e.message}` : e.message;
}
