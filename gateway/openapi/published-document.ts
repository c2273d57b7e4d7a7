// The document as the edge publishes it. The gateway is the source of truth for how a request
// gets in: `servers` becomes the gateway's public URL plus the API's base path, and the security
// schemes and requirements are derived from the SecurityPolicy in effect on the route (whatever
// the document claimed is replaced, and an `x-meshgate` note says so).

import type { SecurityPolicySpec } from '../../shared/config/schemas/envoy-gateway.ts';

type Json = Record<string, unknown>;

export interface DerivedSecurity {
  schemes: Record<string, Json>;
  /** OpenAPI security requirements: any one object suffices; all schemes within one are needed. */
  requirements: Record<string, string[]>[];
  /** The SecurityPolicies merged into the effective one ("namespace/name"), for the note. */
  policies: string[];
}

export const NO_SECURITY: DerivedSecurity = { schemes: {}, requirements: [], policies: [] };

/**
 * Schemes for what `authenticate` checks: every configured authenticator must pass (AND), and
 * each one takes its credential from any of its sources (OR). So the requirements are the
 * product of each authenticator's alternatives; an optional JWT adds "no token" as an alternative.
 */
export function deriveSecurity(
  spec: (SecurityPolicySpec & { invalid?: unknown }) | undefined,
  policies: string[],
  introspection?: Json,
): DerivedSecurity {
  // An invalid policy fails its routes closed (500): nothing gets in, so nothing is described.
  if (spec?.invalid) return { ...NO_SECURITY, policies };
  spec ??= {} as SecurityPolicySpec;
  const schemes: Record<string, Json> = {};
  const groups: string[][] = [];

  if (spec.jwt) {
    const alternatives: string[] = [];
    const issuers = spec.jwt.providers.map((p) => p.issuer).filter((i): i is string => !!i);
    const description = `A JWT${issuers.length ? ` issued by ${issuers.join(' or ')}` : ''}, checked by the gateway.`;
    for (const p of spec.jwt.providers) {
      const e = p.extractFrom;
      const headers = e ? (e.headers ?? []) : [{ name: 'Authorization', valuePrefix: 'Bearer ' }];
      const params = e ? (e.params ?? []) : ['access_token'];
      for (const h of headers) {
        if (h.name.toLowerCase() === 'authorization' && /^bearer\s*$/i.test(h.valuePrefix ?? '')) {
          schemes.bearerAuth = { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description };
          alternatives.push('bearerAuth');
        } else alternatives.push(apiKeyScheme(schemes, 'jwt', 'header', h.name, description));
      }
      for (const c of e?.cookies ?? [])
        alternatives.push(apiKeyScheme(schemes, 'jwt', 'cookie', c, description));
      for (const q of params)
        alternatives.push(apiKeyScheme(schemes, 'jwt', 'query', q, description));
    }
    if (spec.oidc) {
      schemes.openIdConnect = {
        type: 'openIdConnect',
        openIdConnectUrl: `${spec.oidc.provider.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
      };
      alternatives.push('openIdConnect');
    }
    groups.push(unique(alternatives));
    if (spec.jwt.optional) (groups[groups.length - 1] as string[]).push('');
  } else if (spec.oidc) {
    schemes.openIdConnect = {
      type: 'openIdConnect',
      openIdConnectUrl: `${spec.oidc.provider.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
    };
    groups.push(['openIdConnect']);
  }

  if (spec.apiKeyAuth) {
    const alternatives: string[] = [];
    const description = 'An API key issued for this API, checked by the gateway.';
    for (const e of spec.apiKeyAuth.extractFrom) {
      for (const h of e.headers ?? [])
        alternatives.push(apiKeyScheme(schemes, 'apiKey', 'header', h, description));
      for (const q of e.params ?? [])
        alternatives.push(apiKeyScheme(schemes, 'apiKey', 'query', q, description));
      for (const c of e.cookies ?? [])
        alternatives.push(apiKeyScheme(schemes, 'apiKey', 'cookie', c, description));
    }
    groups.push(unique(alternatives));
  }

  const scopes: Record<string, string[]> = {};
  if (introspection) {
    const e = introspection.extractFrom as
      | {
          headers?: { name: string; valuePrefix?: string }[];
          cookies?: string[];
          params?: string[];
        }
      | undefined;
    const description =
      'An OAuth 2.0 access token, checked by the gateway with token introspection (RFC 7662).';
    const alternatives: string[] = [];
    for (const h of e ? (e.headers ?? []) : [{ name: 'Authorization', valuePrefix: 'Bearer ' }]) {
      if (h.name.toLowerCase() === 'authorization' && /^bearer\s*$/i.test(h.valuePrefix ?? '')) {
        // The flows are the authorization server's business; the gateway only knows the token.
        schemes.oauth2 = { type: 'oauth2', description, flows: {} };
        alternatives.push('oauth2');
      } else alternatives.push(apiKeyScheme(schemes, 'token', 'header', h.name, description));
    }
    for (const c of e?.cookies ?? [])
      alternatives.push(apiKeyScheme(schemes, 'token', 'cookie', c, description));
    for (const q of e?.params ?? [])
      alternatives.push(apiKeyScheme(schemes, 'token', 'query', q, description));
    const required = introspection.requiredScopes;
    if (Array.isArray(required) && schemes.oauth2) scopes.oauth2 = required.map(String);
    groups.push(unique(alternatives));
  }

  return { schemes, requirements: product(groups, scopes), policies };
}

function apiKeyScheme(
  schemes: Record<string, Json>,
  prefix: string,
  location: 'header' | 'query' | 'cookie',
  name: string,
  description: string,
): string {
  const id = `${prefix}${location[0]?.toUpperCase()}${location.slice(1)}_${name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  schemes[id] = { type: 'apiKey', in: location, name, description };
  return id;
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

/** Every combination of one alternative per group; "" is "nothing from this group". */
function product(groups: string[][], scopes: Record<string, string[]>): Record<string, string[]>[] {
  if (groups.length === 0) return [];
  let out: string[][] = [[]];
  for (const g of groups)
    out = out.flatMap((combo) => g.map((alt) => (alt ? [...combo, alt] : combo)));
  return out.map((combo) => Object.fromEntries(combo.map((s) => [s, scopes[s] ?? []])));
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * The document with the derived security, once per (listener, document version): `security`
 * per operation where operations differ, at the top otherwise. `servers` is added per request.
 */
export function securedDocument(
  document: Json,
  operationSecurity: (method: string, template: string) => DerivedSecurity,
): Json {
  const doc = structuredClone(document);
  const schemes: Record<string, Json> = {};
  const perOperation: { op: Json; security: DerivedSecurity }[] = [];
  const policies = new Set<string>();
  for (const [template, item] of Object.entries((doc.paths as Json | undefined) ?? {})) {
    if (!item || typeof item !== 'object') continue;
    for (const method of METHODS) {
      const op = (item as Json)[method] as Json | undefined;
      if (!op || typeof op !== 'object') continue;
      const security = operationSecurity(method.toUpperCase(), template);
      Object.assign(schemes, security.schemes);
      for (const p of security.policies) policies.add(p);
      perOperation.push({ op, security });
      delete op.security;
    }
  }
  const distinct = new Set(perOperation.map((o) => JSON.stringify(o.security.requirements)));
  if (distinct.size <= 1) {
    doc.security = perOperation[0]?.security.requirements ?? [];
  } else {
    doc.security = [];
    for (const { op, security } of perOperation) op.security = security.requirements;
  }
  const components = { ...((doc.components as Json | undefined) ?? {}) };
  components.securitySchemes = schemes;
  doc.components = components;
  doc['x-meshgate'] = {
    security:
      'The security schemes and requirements are derived from what the gateway enforces; the ones the document declared were replaced.',
    securityPolicies: [...policies].sort(),
    servers:
      'servers is the gateway address this document was requested on, plus the API base path.',
  };
  return doc;
}

/** The published document for one request: `servers` set to the public URL of the API. */
export function withServer(secured: Json, serverUrl: string): Json {
  const { openapi, info, ...rest } = secured;
  return { openapi, info, servers: [{ url: serverUrl }], ...rest };
}
