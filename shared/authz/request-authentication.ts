// RequestAuthentication: end-user JWTs checked at the workload, with Istio's semantics.
//
// request_authentication.proto: "It will reject a request if the request contains invalid
// authentication information, based on the configured authentication rules. A request that does
// not contain any authentication credentials will be accepted but will not have any
// authenticated identity." and "if more than one token is presented (at different locations),
// the output principal is nondeterministic" (meshgate takes the first location's).
//
// The jwtRules of every RequestAuthentication that selects the workload are merged, as Istio does
// (policy_applier.go: "processedJwtRules is the consolidate JWT rules from all jwtPolicies").
// Each token found is checked in the order Envoy's jwt_authn checks it (authenticator.cc):
// time constraints (exp/nbf, 60 s skew), issuer known for the location it was found at, audience,
// then the signature. Every token present must be valid ("If a request has multiple tokens, all
// of them must be valid"). Failures answer 401, except an audience that is not allowed, which
// Envoy answers 403 (filter.cc: `status == Status::JwtAudienceNotAllowed ? Forbidden :
// Unauthorized`); Istio's integration test "invalid-aud" expects that 403.
// CORS preflights bypass the check (Istio sets `bypass_cors_preflight: true`).

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
  REMOTE_JWKS_MAX_AGE_MS,
} from '../auth/jwt-verification.ts';
import type { IstioPolicyIR } from '../config/snapshot.ts';
import type { JWTRule } from '../config/schemas/istio-security.ts';
import type { Selection } from './workload-selection.ts';

/**
 * Remote JWKS documents: `resolver(uri, maxAgeMs)` gives jose a key resolver. The gateway's
 * JwksCache (gateway/auth/jwks-cache.ts) has this shape; the sidecar and explain pass one.
 */
export interface JwksProvider {
  resolver(uri: string, maxAgeMs: number): JWTVerifyGetKey;
}

/** Istio always splits these claims on spaces (authn buildSpaceDelimitedClaims). */
const DEFAULT_SPACE_DELIMITED = ['scope', 'permission'];

export type TokenLocation =
  | { kind: 'header'; name: string; prefix: string }
  | { kind: 'param'; name: string }
  | { kind: 'cookie'; name: string };

export interface CompiledJwtRule {
  /** "ns/name jwtRules[i]" */
  label: string;
  policy: string;
  index: number;
  issuer?: string;
  audiences?: readonly string[];
  keys?: JWTVerifyGetKey;
  /** Why there are no keys (jwksUri without a JWKS provider, unreadable inline jwks). */
  keysProblem?: string;
  keySource: string;
  locations: TokenLocation[];
  outputPayloadToHeader?: string;
  outputClaimToHeaders: { header: string; claim: string }[];
  forwardOriginalToken: boolean;
  spaceDelimited: ReadonlySet<string>;
}

export interface CompiledRequestAuthentication {
  policies: { policy: string; selection: Selection }[];
  rules: CompiledJwtRule[];
  /** Every location any rule reads, in rule order, without repeats. */
  locations: TokenLocation[];
  /** Output headers of every rule: removed from what the client sent, so none can be forged. */
  outputHeaders: string[];
}

export interface RequestIdentity {
  /** `<iss>/<sub>`, the request principal. */
  principal: string;
  issuer?: string;
  subject?: string;
  audiences: string[];
  /** `azp`. */
  presenter?: string;
  /** Claims as authorization sees them: the rule's space-delimited claims split into lists. */
  claims: Record<string, unknown>;
}

export interface HeaderMutation {
  remove: string[];
  set: Record<string, string>;
}

export type RequestAuthOutcome =
  /** No token (or nothing reads tokens here): the request continues with no request principal. */
  | { kind: 'none'; note: string; headers?: HeaderMutation }
  | { kind: 'verified'; identity: RequestIdentity; rule: string; headers?: HeaderMutation }
  | { kind: 'invalid'; status: 401 | 403; reason: string; rule?: string };

export interface RequestAuthDeps {
  jwks?: JwksProvider;
}

/** What request authentication reads from a request. */
export interface TokenSources {
  method: string;
  /** Query string without "?" ("" when none). */
  query: string;
  header(name: string): string | undefined;
}

export function compileRequestAuthentication(
  selected: readonly { policy: IstioPolicyIR; selection: Selection }[],
  deps: RequestAuthDeps = {},
): CompiledRequestAuthentication {
  const rules: CompiledJwtRule[] = [];
  for (const { policy } of selected) {
    const jwtRules = (policy.spec as { jwtRules?: JWTRule[] }).jwtRules ?? [];
    jwtRules.forEach((r, index) => rules.push(compileRule(policy, r, index, deps)));
  }
  const locations: TokenLocation[] = [];
  for (const r of rules)
    for (const l of r.locations) if (!locations.some((x) => sameLocation(x, l))) locations.push(l);
  const outputHeaders = [
    ...new Set(
      rules.flatMap((r) => [
        ...(r.outputPayloadToHeader ? [r.outputPayloadToHeader.toLowerCase()] : []),
        ...r.outputClaimToHeaders.map((c) => c.header.toLowerCase()),
      ]),
    ),
  ];
  return {
    policies: selected.map((s) => ({
      policy: `${s.policy.namespace}/${s.policy.name}`,
      selection: s.selection,
    })),
    rules,
    locations,
    outputHeaders,
  };
}

function compileRule(
  policy: IstioPolicyIR,
  r: JWTRule,
  index: number,
  deps: RequestAuthDeps,
): CompiledJwtRule {
  const key = `${policy.namespace}/${policy.name}`;
  let keys: JWTVerifyGetKey | undefined;
  let keysProblem: string | undefined;
  let keySource: string;
  if (r.jwks !== undefined) {
    keySource = 'inline jwks';
    try {
      keys = createLocalJWKSet(JSON.parse(r.jwks) as JSONWebKeySet);
    } catch (err) {
      keysProblem = `inline jwks is not a usable JWKS: ${(err as Error).message}`;
    }
  } else if (r.jwksUri !== undefined) {
    keySource = `jwksUri ${r.jwksUri}`;
    if (deps.jwks) keys = deps.jwks.resolver(r.jwksUri, REMOTE_JWKS_MAX_AGE_MS);
    else keysProblem = `no JWKS provider to fetch ${r.jwksUri}`;
  } else {
    // Istio would discover the keys through OpenID Connect discovery of the issuer.
    keySource = 'none';
    keysProblem = 'the rule has neither jwks nor jwksUri (OpenID discovery is not supported)';
  }
  // The compiler writes Istio's default locations out; a rule built elsewhere gets them here.
  const locations: TokenLocation[] =
    r.fromHeaders || r.fromParams || r.fromCookies
      ? [
          ...(r.fromHeaders ?? []).map((h): TokenLocation => ({
            kind: 'header',
            name: h.name.toLowerCase(),
            prefix: h.prefix ?? '',
          })),
          ...(r.fromParams ?? []).map((name): TokenLocation => ({ kind: 'param', name })),
          ...(r.fromCookies ?? []).map((name): TokenLocation => ({ kind: 'cookie', name })),
        ]
      : [
          { kind: 'header', name: 'authorization', prefix: 'Bearer ' },
          { kind: 'param', name: 'access_token' },
        ];
  return {
    label: `${key} jwtRules[${index}]`,
    policy: key,
    index,
    ...(r.issuer !== undefined ? { issuer: r.issuer } : {}),
    ...(r.audiences?.length ? { audiences: r.audiences } : {}),
    ...(keys ? { keys } : {}),
    ...(keysProblem ? { keysProblem } : {}),
    keySource,
    locations,
    ...(r.outputPayloadToHeader ? { outputPayloadToHeader: r.outputPayloadToHeader } : {}),
    outputClaimToHeaders: r.outputClaimToHeaders ?? [],
    forwardOriginalToken: r.forwardOriginalToken ?? false,
    spaceDelimited: new Set([...DEFAULT_SPACE_DELIMITED, ...(r.spaceDelimitedClaims ?? [])]),
  };
}

function sameLocation(a: TokenLocation, b: TokenLocation): boolean {
  if (a.kind !== b.kind || a.name !== b.name) return false;
  return a.kind !== 'header' || b.kind !== 'header' || a.prefix === b.prefix;
}

export interface FoundToken {
  token: string;
  location: TokenLocation;
}

/** Tokens present at the locations the rules read, first location first, without repeats. */
export function extractTokens(
  ra: CompiledRequestAuthentication,
  req: Pick<TokenSources, 'query' | 'header'>,
): FoundToken[] {
  const out: FoundToken[] = [];
  let params: URLSearchParams | undefined;
  for (const location of ra.locations) {
    let value: string | undefined;
    switch (location.kind) {
      case 'header': {
        const h = req.header(location.name);
        if (h === undefined) break;
        if (!location.prefix) value = h.trim();
        else if (
          h.length > location.prefix.length &&
          h.slice(0, location.prefix.length).toLowerCase() === location.prefix.toLowerCase()
        )
          value = h.slice(location.prefix.length).trim();
        break;
      }
      case 'param':
        if (req.query) value = (params ??= new URLSearchParams(req.query)).get(location.name) ?? '';
        break;
      case 'cookie':
        value = cookieValue(req.header('cookie'), location.name);
        break;
    }
    if (value && !out.some((t) => t.token === value)) out.push({ token: value, location });
  }
  return out;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq >= 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** A CORS preflight carries no credentials: Envoy lets it through (bypass_cors_preflight). */
function isCorsPreflight(req: TokenSources): boolean {
  return (
    req.method === 'OPTIONS' &&
    req.header('origin') !== undefined &&
    req.header('access-control-request-method') !== undefined
  );
}

export interface AuthenticateOptions {
  /** ms since epoch. */
  now?: () => number;
}

/** Checks the tokens a request carries (the sidecar's path, and explain's `--header`). */
export async function authenticateRequest(
  ra: CompiledRequestAuthentication,
  req: TokenSources,
  options: AuthenticateOptions = {},
): Promise<RequestAuthOutcome> {
  if (ra.rules.length === 0)
    return { kind: 'none', note: 'no RequestAuthentication selects the workload' };
  const sanitize: HeaderMutation | undefined =
    ra.outputHeaders.length > 0 ? { remove: [...ra.outputHeaders], set: {} } : undefined;
  if (isCorsPreflight(req))
    return {
      kind: 'none',
      note: 'CORS preflight: JWTs are not checked',
      ...(sanitize ? { headers: sanitize } : {}),
    };
  const tokens = extractTokens(ra, req);
  if (tokens.length === 0)
    return {
      kind: 'none',
      note: 'no token: no request principal',
      ...(sanitize ? { headers: sanitize } : {}),
    };
  let first: Extract<RequestAuthOutcome, { kind: 'verified' }> | undefined;
  for (const t of tokens) {
    const candidates = ra.rules.filter((r) => r.locations.some((l) => sameLocation(l, t.location)));
    const outcome = await checkToken(t.token, candidates, options);
    if (outcome.kind !== 'verified') return outcome;
    if (!first) {
      first = outcome;
      first.headers = outputHeaders(ra, outcome, t);
    }
  }
  return first as RequestAuthOutcome;
}

/** Checks one token as if it were found at a location every rule reads (explain `--jwt`). */
export async function authenticateToken(
  ra: CompiledRequestAuthentication,
  token: string,
  options: AuthenticateOptions = {},
): Promise<RequestAuthOutcome> {
  if (ra.rules.length === 0)
    return {
      kind: 'none',
      note: 'no RequestAuthentication selects the workload: the token is not read',
    };
  return checkToken(token, ra.rules, options);
}

/**
 * Claims taken as if their signature verified (explain `--jwt-claims`): issuer, time and audience
 * are still checked against the rules, as the sidecar would for a token signed with a good key.
 */
export function authenticateClaims(
  ra: CompiledRequestAuthentication,
  claims: JWTPayload,
  options: AuthenticateOptions = {},
): RequestAuthOutcome {
  if (ra.rules.length === 0)
    return {
      kind: 'none',
      note: 'no RequestAuthentication selects the workload: a token would not be read',
    };
  const pre = precheck(claims, ra.rules, options);
  if (pre.kind === 'invalid') return pre;
  const rule = pre.candidates[0] as CompiledJwtRule;
  return { kind: 'verified', identity: identityOf(claims, rule), rule: rule.label };
}

type Precheck =
  | { kind: 'invalid'; status: 401 | 403; reason: string; rule?: string }
  | { kind: 'ok'; candidates: CompiledJwtRule[]; audienceFailures: CompiledJwtRule[] };

/** Envoy's order before the signature: exp/nbf, issuer for the location, audience. */
function precheck(
  claims: JWTPayload,
  rules: readonly CompiledJwtRule[],
  options: AuthenticateOptions,
): Precheck {
  const nowSec = Math.floor((options.now?.() ?? Date.now()) / 1000);
  if (typeof claims.nbf === 'number' && nowSec + JWT_CLOCK_SKEW_SECONDS < claims.nbf)
    return { kind: 'invalid', status: 401, reason: 'Jwt not yet valid (nbf)' };
  if (typeof claims.exp === 'number' && nowSec > claims.exp + JWT_CLOCK_SKEW_SECONDS)
    return { kind: 'invalid', status: 401, reason: 'Jwt is expired' };
  const iss = typeof claims.iss === 'string' ? claims.iss : undefined;
  const byIssuer = rules.filter((r) => r.issuer === undefined || r.issuer === iss);
  if (byIssuer.length === 0)
    return {
      kind: 'invalid',
      status: 401,
      reason: `Jwt issuer is not configured (${JSON.stringify(iss ?? null)} is not the issuer of any jwtRule reading this location)`,
    };
  const aud = audiencesOf(claims);
  const candidates: CompiledJwtRule[] = [];
  const audienceFailures: CompiledJwtRule[] = [];
  for (const r of byIssuer) {
    if (r.audiences && !r.audiences.some((a) => aud.includes(a))) audienceFailures.push(r);
    else candidates.push(r);
  }
  if (candidates.length === 0)
    return {
      kind: 'invalid',
      status: 403,
      reason: `Audiences in Jwt are not allowed (token aud ${JSON.stringify(aud)}, ${audienceFailures[0]?.label} wants ${JSON.stringify(audienceFailures[0]?.audiences ?? [])})`,
      rule: audienceFailures[0]?.label as string,
    };
  return { kind: 'ok', candidates, audienceFailures };
}

async function checkToken(
  token: string,
  rules: readonly CompiledJwtRule[],
  options: AuthenticateOptions,
): Promise<RequestAuthOutcome> {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch {
    return {
      kind: 'invalid',
      status: 401,
      reason: 'Jwt is not in the form of Header.Payload.Signature',
    };
  }
  const pre = precheck(claims, rules, options);
  if (pre.kind === 'invalid') return pre;
  let reason = '';
  let rule: string | undefined;
  for (const r of pre.candidates) {
    if (!r.keys) {
      reason ||= `${r.label}: ${r.keysProblem ?? 'no keys'}`;
      rule ??= r.label;
      continue;
    }
    try {
      await jwtVerify(token, r.keys, {
        algorithms: JWT_ALGORITHMS,
        clockTolerance: JWT_CLOCK_SKEW_SECONDS,
        currentDate: new Date(options.now?.() ?? Date.now()),
      });
      return { kind: 'verified', identity: identityOf(claims, r), rule: r.label };
    } catch (err) {
      reason ||= `${r.label}: ${describeJwtError(err)}`;
      rule ??= r.label;
    }
  }
  return { kind: 'invalid', status: 401, reason, ...(rule ? { rule } : {}) };
}

function audiencesOf(claims: JWTPayload): string[] {
  const aud = claims.aud;
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === 'string');
  return [];
}

function identityOf(claims: JWTPayload, rule: CompiledJwtRule): RequestIdentity {
  const normalized: Record<string, unknown> = { ...claims };
  // Envoy's normalize_payload_in_metadata: a top-level string claim listed as space-delimited
  // becomes the list of its words.
  for (const name of rule.spaceDelimited) {
    const v = claims[name];
    if (typeof v === 'string') normalized[name] = v.split(' ').filter((w) => w.length > 0);
  }
  const iss = typeof claims.iss === 'string' ? claims.iss : undefined;
  const sub = typeof claims.sub === 'string' ? claims.sub : undefined;
  return {
    principal: `${iss ?? ''}/${sub ?? ''}`,
    ...(iss !== undefined ? { issuer: iss } : {}),
    ...(sub !== undefined ? { subject: sub } : {}),
    audiences: audiencesOf(claims),
    ...(typeof claims.azp === 'string' ? { presenter: claims.azp } : {}),
    claims: normalized,
  };
}

/** What the workload receives: payload and claim headers, the token removed unless forwarded. */
function outputHeaders(
  ra: CompiledRequestAuthentication,
  outcome: Extract<RequestAuthOutcome, { kind: 'verified' }>,
  found: FoundToken,
): HeaderMutation | undefined {
  const rule = ra.rules.find((r) => r.label === outcome.rule);
  const m: HeaderMutation = { remove: [...ra.outputHeaders], set: {} };
  if (rule) {
    if (rule.outputPayloadToHeader)
      // The token's own payload segment, base64url as sent (Istio's test compares it verbatim).
      m.set[rule.outputPayloadToHeader.toLowerCase()] = found.token.split('.')[1] ?? '';
    for (const { header, claim } of rule.outputClaimToHeaders) {
      const v = claimByDots(outcome.identity.claims, claim);
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
        m.set[header.toLowerCase()] = String(v);
    }
    // Envoy removes a token it verified from the header it came in unless told to forward it.
    if (!rule.forwardOriginalToken && found.location.kind === 'header')
      m.remove.push(found.location.name);
  }
  return m.remove.length > 0 || Object.keys(m.set).length > 0 ? m : undefined;
}

/** outputClaimToHeaders names nested claims with "." ("nested.nested-2.key2"). */
function claimByDots(claims: Record<string, unknown>, path: string): unknown {
  let v: unknown = claims;
  for (const seg of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}
