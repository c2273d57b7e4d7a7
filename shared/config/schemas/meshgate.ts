import { z } from 'zod';
import type { KindDefinition } from '../kinds.ts';
import { gatewayDuration, headerName, ifValid, namespaceName, objectName } from './common.ts';
import {
  checkTargets,
  policyTargetReference,
  selectorsAcrossNamespaces,
  targetSelector,
} from './envoy-gateway.ts';
import { GATEWAY_GROUP, secretObjectReference } from './gateway-api.ts';

// meshgate.io/v1alpha1: meshgate's own kinds. ApiDefinition binds an OpenAPI document to the
// HTTPRoute that serves the API, so the edge can publish it and, if asked, validate requests.

export const MESHGATE_GROUP = 'meshgate.io';

const TOKEN_INTROSPECTION_POLICY_KINDS = ['Gateway', 'HTTPRoute'];

/** The route the API is served on. Only HTTPRoutes carry APIs today. */
const apiTargetRef = z.strictObject({
  group: z.enum([GATEWAY_GROUP]).default(GATEWAY_GROUP),
  kind: z.enum(['HTTPRoute']).default('HTTPRoute'),
  name: objectName,
  /** Default: the ApiDefinition's namespace. Another namespace needs a ReferenceGrant there. */
  namespace: namespaceName.optional(),
});

/**
 * A path inside the config folder. Absolute paths and `..` segments are refused so that a
 * config set can only read its own files.
 */
const configRelativePath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(p), {
    message: 'must be relative to the config folder',
  })
  .refine((p) => !p.split(/[\\/]/).includes('..'), {
    message: 'must not contain ".." segments',
  });

/** An absolute http(s) URL, or an absolute path fetched from the route's own backend. */
const documentUrl = z
  .string()
  .min(1)
  .refine(
    (u) => {
      if (u.startsWith('/')) return !u.startsWith('//');
      try {
        const parsed = new URL(u);
        return parsed.protocol === 'http:' || parsed.protocol === 'https:';
      } catch {
        return false;
      }
    },
    { message: 'must be an http(s) URL or a path such as /openapi.json on the backend' },
  );

/** An OpenAPI 3.x (or Swagger 2.0) document written inline as YAML. */
const inlineDocument = z
  .record(z.string(), z.unknown())
  .refine((d) => typeof d.openapi === 'string' || typeof d.swagger === 'string', {
    message: 'must be an OpenAPI document with an "openapi" (or "swagger") version field',
  });

export const apiSource = z
  .strictObject({
    /** File relative to the config folder (YAML or JSON). */
    file: configRelativePath.optional(),
    /** The document itself. */
    inline: inlineDocument.optional(),
    /** Where the backend serves its own document; fetched by the control plane. */
    url: documentUrl.optional(),
  })
  .superRefine((s, ctx) => {
    const set = (['file', 'inline', 'url'] as const).filter((k) => s[k] !== undefined);
    if (set.length !== 1)
      ctx.addIssue({
        code: 'custom',
        path: set.length > 1 ? [set[1] as string] : [],
        message:
          set.length === 0
            ? 'one of file, inline or url is required'
            : `only one of file, inline or url may be set (found ${set.join(' and ')})`,
      });
  }, ifValid);
export type ApiSource = z.infer<typeof apiSource>;

export const enforcementMode = z.enum(['Off', 'ReportOnly', 'Enforce']);
export type EnforcementMode = z.infer<typeof enforcementMode>;

const DEFAULT_MAX_BODY_BYTES = 1_048_576;

export const apiEnforcement = z.strictObject({
  /** Off: not checked. ReportOnly: violations are logged and counted. Enforce: rejected with 400. */
  mode: enforcementMode.default('Off'),
  /** Largest request body validated; a bigger one is rejected (413) when enforcing. */
  maxBodyBytes: z.number().int().min(0).default(DEFAULT_MAX_BODY_BYTES),
});
export type ApiEnforcement = z.infer<typeof apiEnforcement>;

export const docsUi = z.enum(['Scalar', 'SwaggerUI', 'None']);

export const apiPublish = z.strictObject({
  /** Serve the document (and the docs page) at the edge. */
  enabled: z.boolean().default(true),
  /** The interactive docs page; None serves only the document. */
  docsUi: docsUi.default('Scalar'),
});
export type ApiPublish = z.infer<typeof apiPublish>;

export const apiDefinitionSpec = z.strictObject({
  targetRef: apiTargetRef,
  source: apiSource,
  /** Public path prefix of the API. Default: the route's first PathPrefix match. */
  basePath: z
    .string()
    .regex(/^\/([^\s?#]*)$/, 'must be an absolute path such as /v1/orders, without query')
    .refine((p) => !p.includes('//'), 'must not contain "//"')
    .optional(),
  enforcement: apiEnforcement.prefault({}),
  publish: apiPublish.prefault({}),
});
export type ApiDefinitionSpec = z.infer<typeof apiDefinitionSpec>;

// --- TokenIntrospectionPolicy ---
// OAuth 2.0 Token Introspection (RFC 7662) for opaque bearer tokens, which Envoy Gateway has no
// configuration for. Attached like Envoy Gateway's policies (targetRefs/targetSelectors on a
// Gateway, a listener, an HTTPRoute or a rule; the most specific wins) and compiled with them.

const httpUrl = z
  .string()
  .min(1)
  .refine(
    (u) => {
      try {
        const parsed = new URL(u);
        return (parsed.protocol === 'http:' || parsed.protocol === 'https:') && !parsed.hash;
      } catch {
        return false;
      }
    },
    { message: 'must be an absolute http(s) URL without a fragment' },
  );

export const tokenIntrospectionPolicySpec = z
  .strictObject({
    targetRefs: z.array(policyTargetReference).optional(),
    targetSelectors: z.array(targetSelector).optional(),
    /** The introspection endpoint (RFC 7662 section 2). */
    endpoint: httpUrl,
    /** The gateway's client id at the authorization server (client_secret_basic). */
    clientID: z.string().min(1),
    /** Secret with key `client-secret`. */
    clientSecretRef: secretObjectReference,
    /** Where the token is. Unset: `Authorization: Bearer`. */
    extractFrom: z
      .strictObject({
        headers: z
          .array(z.strictObject({ name: headerName, valuePrefix: z.string().optional() }))
          .optional(),
        cookies: z.array(z.string().min(1)).optional(),
        params: z.array(z.string().min(1)).optional(),
      })
      .optional(),
    /** Scopes the token must all carry (the response's `scope`); otherwise 403 insufficient_scope. */
    requiredScopes: z.array(z.string().min(1)).optional(),
    /** Longest time a result is reused; never past the token's own `exp`. */
    cacheMaxTTL: gatewayDuration.default('5m'),
    /** Time the endpoint has to answer; past it the request fails closed with 503. */
    timeout: gatewayDuration.default('2s'),
  })
  .superRefine((spec, ctx) => checkTargets(spec, ctx, TOKEN_INTROSPECTION_POLICY_KINDS), ifValid);
export type TokenIntrospectionPolicySpec = z.infer<typeof tokenIntrospectionPolicySpec>;

export const meshgateKinds: KindDefinition[] = [
  {
    group: MESHGATE_GROUP,
    kind: 'ApiDefinition',
    versions: ['v1alpha1'],
    namespaced: true,
    schema: apiDefinitionSpec,
  },
  {
    group: MESHGATE_GROUP,
    kind: 'TokenIntrospectionPolicy',
    versions: ['v1alpha1'],
    namespaced: true,
    schema: tokenIntrospectionPolicySpec,
    unsupported: [selectorsAcrossNamespaces],
  },
];
