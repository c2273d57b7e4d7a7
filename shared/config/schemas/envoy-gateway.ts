import { z } from 'zod';
import type { KindDefinition } from '../kinds.ts';
import type { UnsupportedFieldRule } from '../resource.ts';
import {
  apiGroup,
  gatewayDuration,
  ifValid,
  isIpOrCidr,
  kindName,
  sectionName,
  headerName,
  labels,
  labelSelector,
  labelSelectorRequirement,
  namespaceName,
  objectName,
  portNumber,
} from './common.ts';
import { durationToMs } from '../duration.ts';
import { GATEWAY_GROUP, httpMethod, secretObjectReference } from './gateway-api.ts';

// gateway.envoyproxy.io/v1alpha1 SecurityPolicy, BackendTrafficPolicy and ClientTrafficPolicy as
// Envoy Gateway v1.8 documents them (api/v1alpha1/*_types.go, generated reference). Field names,
// enums, defaults and the CEL rules are upstream's. Subtrees meshgate does not implement are
// accepted as opaque objects (so a real manifest never fails on them) and reported through
// `unsupported`; everything meshgate acts on is validated field by field.

export const ENVOY_GATEWAY_GROUP = 'gateway.envoyproxy.io';

const group = apiGroup;
const kind = kindName;

/** Shape not validated: meshgate does not implement it, and the field is reported as unsupported. */
const opaque = z.looseObject({});
const opaqueList = z.array(opaque);

/** resource.Quantity: an integer or a string such as 32Ki, 1Mi, 500. */
const quantity = z.union([
  z.number().int().min(0),
  z
    .string()
    .regex(
      /^[+-]?([0-9]+|[0-9]+\.[0-9]*|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$/,
      'must be a quantity such as 32768, 64Ki or 1Mi',
    ),
]);

const cidr = z.string().refine((v) => v.includes('/') && isIpOrCidr(v), {
  message: 'must be a CIDR such as 192.168.1.0/24 or 2001:db8::/64',
});

const httpStatus = z.number().int().min(100).max(599);
const uint32 = z.number().int().min(0).max(4294967295);

const stringMatch = z.strictObject({
  type: z.enum(['Exact', 'Prefix', 'Suffix', 'RegularExpression']).default('Exact'),
  value: z.string().min(1).max(1024),
});

/** Envoy Gateway's BackendRef: a Gateway API BackendObjectReference plus weight and fallback. */
export const egBackendRef = z.strictObject({
  group: group.default(''),
  kind: kind.default('Service'),
  name: objectName,
  namespace: namespaceName.optional(),
  port: portNumber.optional(),
  weight: z.number().int().min(0).max(1_000_000).default(1),
  fallback: z.boolean().optional(),
});

/** The backendRef/backendRefs/backendSettings trio that every EG "call out" embeds. */
const backendCluster = {
  /** Deprecated upstream: use backendRefs. */
  backendRef: egBackendRef.omit({ weight: true, fallback: true }).optional(),
  backendRefs: z.array(egBackendRef).optional(),
  /** ClusterSettings for the call-out; not validated here. */
  backendSettings: opaque.optional(),
};

const localObjectReference = z.strictObject({
  group: group,
  kind: kind,
  name: objectName,
});

const httpHeader = z.strictObject({ name: headerName, value: z.string().max(4096) });

/** EG's HTTPHeaderFilter (Gateway API's plus addIfAbsent and removeOnMatch). */
const egHeaderFilter = z.strictObject({
  set: z.array(httpHeader).max(16).optional(),
  add: z.array(httpHeader).max(16).optional(),
  addIfAbsent: z.array(httpHeader).max(16).optional(),
  remove: z.array(z.string().min(1)).max(16).optional(),
  removeOnMatch: z.array(stringMatch).max(16).optional(),
});

// --- policy targets (policy_helpers.go) ---

/** Gateway API LocalPolicyTargetReferenceWithSectionName. */
export const policyTargetReference = z.strictObject({
  group,
  kind,
  name: z.string().min(1).max(253),
  sectionName: sectionName.optional(),
});
export type PolicyTargetReference = z.infer<typeof policyTargetReference>;

export const targetSelector = z.strictObject({
  group: group
    .refine((g) => g === GATEWAY_GROUP, `group must be ${GATEWAY_GROUP}`)
    .default(GATEWAY_GROUP),
  kind,
  /** Which namespaces to look in; unset means only the policy's own. */
  namespaces: z
    .strictObject({
      from: z.enum(['Same', 'All', 'Selector']).default('Same'),
      selector: labelSelector.optional(),
    })
    .optional(),
  matchLabels: labels.optional(),
  matchExpressions: z.array(labelSelectorRequirement).optional(),
});
export type TargetSelector = z.infer<typeof targetSelector>;

const policyTargets = {
  /** Deprecated upstream: use targetRefs or targetSelectors. */
  targetRef: policyTargetReference.optional(),
  targetRefs: z.array(policyTargetReference).optional(),
  targetSelectors: z.array(targetSelector).optional(),
};

const XROUTE_KINDS = ['HTTPRoute', 'GRPCRoute', 'UDPRoute', 'TCPRoute', 'TLSRoute'];

interface TargetedSpec {
  targetRef?: PolicyTargetReference | undefined;
  targetRefs?: PolicyTargetReference[] | undefined;
  targetSelectors?: TargetSelector[] | undefined;
  mergeType?: string | undefined;
}

/**
 * The CEL rules every EG policy carries on its spec. Upstream's first rule reads
 * `(has(targetRef) && !has(targetRefs)) || (!has(targetRef) && has(targetRefs)) ||
 * targetSelectors.size() > 0`: exactly one of targetRef and targetRefs, unless there are
 * selectors, which may then be combined with either.
 */
export function checkTargets(
  spec: TargetedSpec,
  ctx: z.RefinementCtx,
  allowedKinds: readonly string[],
  /** Kinds of the core group ("") this policy may target: meshgate's extension for mesh traffic. */
  coreKinds: readonly string[] = [],
): void {
  const hasRef = spec.targetRef !== undefined;
  const hasRefs = spec.targetRefs !== undefined;
  const hasSelectors = (spec.targetSelectors?.length ?? 0) > 0;
  if (!(hasRef !== hasRefs || hasSelectors))
    ctx.addIssue({
      code: 'custom',
      path: hasRef ? ['targetRefs'] : [],
      message: hasRef
        ? 'either targetRef or targetRefs must be used, not both'
        : 'a target is required: set targetRefs (or targetSelectors)',
    });
  const kinds = allowedKinds.join('/');
  const checkRef = (ref: PolicyTargetReference, path: (string | number)[]) => {
    if ((ref.group === '' || ref.group === 'core') && coreKinds.length > 0) {
      if (!coreKinds.includes(ref.kind))
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'kind'],
          message: `in the core group this policy can only target kind ${coreKinds.join('/')}`,
        });
      return;
    }
    if (ref.group !== GATEWAY_GROUP)
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'group'],
        message: `this policy can only target group ${GATEWAY_GROUP}`,
      });
    if (!allowedKinds.includes(ref.kind))
      ctx.addIssue({
        code: 'custom',
        path: [...path, 'kind'],
        message: `this policy can only target kind ${kinds}`,
      });
  };
  if (spec.targetRef) checkRef(spec.targetRef, ['targetRef']);
  spec.targetRefs?.forEach((r, i) => checkRef(r, ['targetRefs', i]));
  if (spec.mergeType !== undefined) {
    if (spec.mergeType === 'Replace')
      ctx.addIssue({
        code: 'custom',
        path: ['mergeType'],
        message: 'Replace is not a valid mergeType for this policy',
      });
    const refs = [...(spec.targetRef ? [spec.targetRef] : []), ...(spec.targetRefs ?? [])];
    if (
      refs.some((r) => !XROUTE_KINDS.includes(r.kind)) ||
      (spec.targetSelectors ?? []).some((s) => !XROUTE_KINDS.includes(s.kind))
    )
      ctx.addIssue({
        code: 'custom',
        path: ['mergeType'],
        message: 'mergeType can only be used with xRoute targets',
      });
  }
}

export const mergeType = z.enum(['StrategicMerge', 'JSONMerge', 'Replace']);

// ===================================================================================
// SecurityPolicy
// ===================================================================================

const origin = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^(\*|https?:\/\/(\*|(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)(:[0-9]{1,5})?)$/,
    'must be "*" or scheme://host[:port], the host optionally starting with "*."',
  );

export const corsSpec = z.strictObject({
  allowOrigins: z.array(origin).optional(),
  allowMethods: z.array(z.string().min(1)).optional(),
  allowHeaders: z.array(z.string().min(1)).optional(),
  exposeHeaders: z.array(z.string().min(1)).optional(),
  maxAge: gatewayDuration.optional(),
  allowCredentials: z.boolean().optional(),
});
export type CORSSpec = z.infer<typeof corsSpec>;

export const basicAuthSpec = z.strictObject({
  /** Secret with an `.htpasswd` key (SHA hashes). */
  users: secretObjectReference,
  forwardUsernameHeader: z.string().min(1).optional(),
});

export const apiKeyExtractFrom = z
  .strictObject({
    headers: z.array(z.string().min(1)).optional(),
    params: z.array(z.string().min(1)).optional(),
    cookies: z.array(z.string().min(1)).optional(),
  })
  .superRefine((e, ctx) => {
    const set = [e.headers, e.params, e.cookies].filter((l) => l !== undefined && l.length > 0);
    if (set.length !== 1)
      ctx.addIssue({
        code: 'custom',
        message: 'each extractFrom entry must set exactly one of headers, params or cookies',
      });
  }, ifValid);

export const apiKeyAuthSpec = z.strictObject({
  /** Opaque Secrets: each key is a client id, its value that client's API key. */
  credentialRefs: z.array(secretObjectReference).min(1),
  /** Sources tried in order; the first one holding a key wins. */
  extractFrom: z.array(apiKeyExtractFrom).min(1),
  forwardClientIDHeader: headerName.optional(),
  /** Remove the key from the request before it goes upstream. */
  sanitize: z.boolean().optional(),
});
export type APIKeyAuthSpec = z.infer<typeof apiKeyAuthSpec>;

const remoteJWKS = z.strictObject({
  ...backendCluster,
  /** HTTPS URI of the JWKS; fetched through backendRefs when those are set. */
  uri: z.string().min(1).max(253),
  cacheDuration: gatewayDuration.default('300s'),
});

const localJWKS = z
  .strictObject({
    type: z.enum(['Inline', 'ValueRef']).default('Inline'),
    inline: z.string().min(1).optional(),
    /** ConfigMap holding the JWKS under key `jwks`. */
    valueRef: localObjectReference.optional(),
  })
  .superRefine((l, ctx) => {
    if (l.type === 'Inline' && (l.inline === undefined || l.valueRef !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['inline'],
        message: 'type Inline needs inline (and no valueRef)',
      });
    if (l.type === 'ValueRef' && (l.valueRef === undefined || l.inline !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['valueRef'],
        message: 'type ValueRef needs valueRef (and no inline)',
      });
  }, ifValid);

export const jwtProvider = z
  .strictObject({
    name: z.string().min(1).max(253),
    /** Unset: the `iss` claim is not checked. */
    issuer: z.string().max(253).optional(),
    /** Unset: the `aud` claim is not checked. */
    audiences: z.array(z.string()).max(8).optional(),
    remoteJWKS: remoteJWKS.optional(),
    localJWKS: localJWKS.optional(),
    claimToHeaders: z
      .array(z.strictObject({ header: headerName, claim: z.string().min(1) }))
      .optional(),
    recomputeRoute: z.boolean().optional(),
    /** Unset: `Authorization: Bearer` and the `access_token` query parameter. */
    extractFrom: z
      .strictObject({
        headers: z
          .array(z.strictObject({ name: headerName, valuePrefix: z.string().optional() }))
          .optional(),
        cookies: z.array(z.string().min(1)).optional(),
        params: z.array(z.string().min(1)).optional(),
      })
      .optional(),
  })
  .superRefine((p, ctx) => {
    if ((p.remoteJWKS === undefined) === (p.localJWKS === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['remoteJWKS'],
        message: 'exactly one of remoteJWKS or localJWKS must be set',
      });
  }, ifValid);
export type JWTProvider = z.infer<typeof jwtProvider>;

export const jwtSpec = z
  .strictObject({
    /** A missing token is accepted; an invalid one never is. */
    optional: z.boolean().optional(),
    providers: z.array(jwtProvider).min(1).max(4),
  })
  .superRefine((j, ctx) => {
    const seen = new Set<string>();
    j.providers.forEach((p, i) => {
      if (seen.has(p.name))
        ctx.addIssue({
          code: 'custom',
          path: ['providers', i, 'name'],
          message: `provider name "${p.name}" is used twice`,
        });
      seen.add(p.name);
    });
  }, ifValid);
export type JWTSpec = z.infer<typeof jwtSpec>;

const oidcProvider = z.strictObject({
  ...backendCluster,
  /** https URI, no query or fragment; discovery starts here. */
  issuer: z.string().min(1),
  authorizationEndpoint: z.string().min(1).optional(),
  tokenEndpoint: z.string().min(1).optional(),
  endSessionEndpoint: z.string().min(1).optional(),
});

export const oidcSpec = z
  .strictObject({
    provider: oidcProvider,
    clientID: z.string().min(1).optional(),
    /** Secret with key `client-id`. */
    clientIDRef: secretObjectReference.optional(),
    /** Secret with key `client-secret`. */
    clientSecret: secretObjectReference,
    cookieNames: z
      .strictObject({
        accessToken: z.string().min(1).optional(),
        idToken: z.string().min(1).optional(),
      })
      .optional(),
    cookieConfig: z
      .strictObject({ sameSite: z.enum(['Lax', 'Strict', 'None']).optional() })
      .optional(),
    /** Share the session cookies with subdomains of this domain. */
    cookieDomain: z.string().min(1).optional(),
    /** `openid` is always added. */
    scopes: z.array(z.string().min(1)).optional(),
    resources: z.array(z.string().min(1)).optional(),
    /** Default `%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback`. */
    redirectURL: z.string().min(1).optional(),
    /** Requests matching these are answered 401 instead of being redirected to the provider. */
    denyRedirect: z
      .strictObject({
        headers: z
          .array(
            z.strictObject({
              name: z.string().min(1),
              type: z.enum(['Exact', 'Prefix', 'Suffix', 'RegularExpression']).default('Exact'),
              value: z.string().min(1),
            }),
          )
          .min(1)
          .max(16),
      })
      .optional(),
    /** Default `/logout`. */
    logoutPath: z.string().min(1).optional(),
    forwardAccessToken: z.boolean().optional(),
    forwardIDToken: z.strictObject({ header: headerName }).optional(),
    defaultTokenTTL: gatewayDuration.optional(),
    refreshToken: z.boolean().default(true),
    defaultRefreshTokenTTL: gatewayDuration.optional(),
    csrfTokenTTL: gatewayDuration.optional(),
    disableTokenEncryption: z.boolean().optional(),
    /** Skip the OIDC flow when the request carries a token the JWT config would take. */
    passThroughAuthHeader: z.boolean().optional(),
  })
  .superRefine((o, ctx) => {
    if ((o.clientID === undefined) === (o.clientIDRef === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['clientID'],
        message: 'exactly one of clientID or clientIDRef must be set',
      });
  }, ifValid);
export type OIDCSpec = z.infer<typeof oidcSpec>;

export const extAuthSpec = z
  .strictObject({
    grpc: z.strictObject({ ...backendCluster }).optional(),
    http: z
      .strictObject({
        ...backendCluster,
        path: z.string().optional(),
        pathOverride: z.string().optional(),
        headersToBackend: z.array(z.string()).optional(),
      })
      .optional(),
    headersToExtAuth: z.array(z.string()).optional(),
    bodyToExtAuth: z.strictObject({ maxRequestBytes: z.number().int().min(1) }).optional(),
    timeout: gatewayDuration.optional(),
    failOpen: z.boolean().default(false),
    recomputeRoute: z.boolean().optional(),
    includeRouteMetadata: z.boolean().optional(),
    contextExtensions: opaqueList.optional(),
    statusOnError: z.number().int().min(400).max(599).optional(),
  })
  .superRefine((e, ctx) => {
    if ((e.grpc === undefined) === (e.http === undefined))
      ctx.addIssue({
        code: 'custom',
        message: 'exactly one of grpc or http must be specified',
      });
  }, ifValid);

export const authorizationAction = z.enum(['Allow', 'Deny']);

const jwtPrincipal = z
  .strictObject({
    /** Name of a JWT provider in the same SecurityPolicy. */
    provider: z.string().min(1),
    claims: z
      .array(
        z.strictObject({
          /** Dot-separated path for nested claims. */
          name: z.string().min(1),
          valueType: z.enum(['String', 'StringArray']).default('String'),
          values: z.array(z.string()).min(1),
        }),
      )
      .optional(),
    scopes: z.array(z.string().min(1)).optional(),
  })
  .superRefine((j, ctx) => {
    if ((j.claims?.length ?? 0) === 0 && (j.scopes?.length ?? 0) === 0)
      ctx.addIssue({ code: 'custom', message: 'at least one of claims or scopes must be set' });
  }, ifValid);

const principal = z
  .strictObject({
    /** The client IP comes from ClientTrafficPolicy's clientIPDetection (or the peer address). */
    clientCIDRs: z.array(cidr).optional(),
    jwt: jwtPrincipal.optional(),
    headers: z
      .array(z.strictObject({ name: z.string().min(1), values: z.array(z.string()).min(1) }))
      .optional(),
    clientIPGeoLocations: opaqueList.optional(),
  })
  .superRefine((p, ctx) => {
    if (
      (p.clientCIDRs?.length ?? 0) === 0 &&
      p.jwt === undefined &&
      (p.headers?.length ?? 0) === 0 &&
      (p.clientIPGeoLocations?.length ?? 0) === 0
    )
      ctx.addIssue({
        code: 'custom',
        message: 'at least one of clientCIDRs, jwt, headers or clientIPGeoLocations must be set',
      });
  }, ifValid);

export const authorizationRule = z.strictObject({
  name: z.string().min(1).max(253).optional(),
  action: authorizationAction,
  /** Unset: every operation. */
  operation: z.strictObject({ methods: z.array(httpMethod).min(1) }).optional(),
  principal,
});
export type AuthorizationRule = z.infer<typeof authorizationRule>;

export const authorizationSpec = z.strictObject({
  /** Evaluated in order; the first match decides. */
  rules: z.array(authorizationRule).optional(),
  /** Unset means Deny. */
  defaultAction: authorizationAction.optional(),
});
export type AuthorizationSpec = z.infer<typeof authorizationSpec>;

const SECURITY_POLICY_KINDS = ['Gateway', 'ListenerSet', 'HTTPRoute', 'GRPCRoute', 'TCPRoute'];

export const securityPolicySpec = z
  .strictObject({
    ...policyTargets,
    mergeType: mergeType.optional(),
    apiKeyAuth: apiKeyAuthSpec.optional(),
    cors: corsSpec.optional(),
    basicAuth: basicAuthSpec.optional(),
    jwt: jwtSpec.optional(),
    oidc: oidcSpec.optional(),
    extAuth: extAuthSpec.optional(),
    authorization: authorizationSpec.optional(),
  })
  .superRefine((spec, ctx) => {
    checkTargets(spec, ctx, SECURITY_POLICY_KINDS);
    // A JWT principal refers to a provider of this policy's jwt section.
    const providers = new Set(spec.jwt?.providers.map((p) => p.name) ?? []);
    spec.authorization?.rules?.forEach((r, i) => {
      const jwt = r.principal.jwt;
      if (jwt && !providers.has(jwt.provider))
        ctx.addIssue({
          code: 'custom',
          path: ['authorization', 'rules', i, 'principal', 'jwt', 'provider'],
          message: `no JWT provider "${jwt.provider}" in this policy's jwt.providers`,
        });
    });
  }, ifValid);
export type SecurityPolicySpec = z.infer<typeof securityPolicySpec>;

// ===================================================================================
// BackendTrafficPolicy
// ===================================================================================

// --- load balancer ---

const consistentHash = z
  .strictObject({
    type: z.enum(['SourceIP', 'Header', 'Headers', 'Cookie', 'QueryParams']),
    /** Deprecated upstream: use headers. */
    header: z.strictObject({ name: z.string().min(1) }).optional(),
    headers: z.array(z.strictObject({ name: z.string().min(1) })).optional(),
    cookie: z
      .strictObject({
        name: z.string().min(1),
        /** Max-Age of the cookie the proxy sets when the request has none. */
        ttl: gatewayDuration.optional(),
        attributes: z.record(z.string(), z.string()).optional(),
      })
      .optional(),
    queryParams: z.array(z.strictObject({ name: z.string().min(1) })).optional(),
    tableSize: z.number().int().min(2).max(5000011).default(65537),
  })
  .superRefine((c, ctx) => {
    const field = {
      Header: 'header',
      Headers: 'headers',
      Cookie: 'cookie',
      QueryParams: 'queryParams',
    } as const;
    for (const [t, f] of Object.entries(field)) {
      const present = c[f] !== undefined;
      if (c.type === t && !present)
        ctx.addIssue({
          code: 'custom',
          path: [f],
          message: `consistent hash type ${t} needs the ${f} field`,
        });
      if (c.type !== t && present)
        ctx.addIssue({
          code: 'custom',
          path: [f],
          message: `${f} may only be set when type is ${t}`,
        });
    }
  }, ifValid);

export const loadBalancerSpec = z
  .strictObject({
    type: z.enum([
      'ConsistentHash',
      'LeastRequest',
      'Random',
      'RoundRobin',
      'BackendUtilization',
      'DynamicModule',
    ]),
    consistentHash: consistentHash.optional(),
    backendUtilization: opaque.optional(),
    endpointOverride: z
      .strictObject({
        extractFrom: z
          .array(z.strictObject({ header: z.string().min(1).optional() }))
          .min(1)
          .max(10),
      })
      .optional(),
    slowStart: z.strictObject({ window: gatewayDuration }).optional(),
    zoneAware: z
      .strictObject({
        preferLocal: z
          .strictObject({
            force: z.strictObject({ minEndpointsInZoneThreshold: uint32.optional() }).optional(),
            minEndpointsThreshold: z.number().int().min(0).optional(),
            percentageEnabled: z.number().int().min(0).max(100).optional(),
          })
          .optional(),
        weightedZones: z
          .array(z.strictObject({ zone: z.string().min(1), weight: uint32 }))
          .optional(),
      })
      .optional(),
  })
  .superRefine((lb, ctx) => {
    if ((lb.type === 'ConsistentHash') !== (lb.consistentHash !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['consistentHash'],
        message: 'consistentHash must be set exactly when type is ConsistentHash',
      });
    if ((lb.type === 'BackendUtilization') !== (lb.backendUtilization !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['backendUtilization'],
        message: 'backendUtilization must be set exactly when type is BackendUtilization',
      });
    if ((lb.type === 'Random' || lb.type === 'ConsistentHash') && lb.slowStart !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['slowStart'],
        message: 'slowStart is only supported for RoundRobin and LeastRequest load balancers',
      });
    const za = lb.zoneAware;
    if (za?.preferLocal !== undefined && lb.type === 'ConsistentHash')
      ctx.addIssue({
        code: 'custom',
        path: ['zoneAware', 'preferLocal'],
        message: 'preferLocal is not supported for ConsistentHash; use weightedZones',
      });
    if (za?.preferLocal !== undefined && za.weightedZones !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['zoneAware'],
        message: 'preferLocal and weightedZones cannot be set together',
      });
    const zones = new Set<string>();
    za?.weightedZones?.forEach((z, i) => {
      if (zones.has(z.zone))
        ctx.addIssue({
          code: 'custom',
          path: ['zoneAware', 'weightedZones', i, 'zone'],
          message: `zone "${z.zone}" is listed twice`,
        });
      zones.add(z.zone);
    });
  }, ifValid);
export type LoadBalancerSpec = z.infer<typeof loadBalancerSpec>;

// --- retry, timeout, circuit breaker ---

export const retryTrigger = z.enum([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

export const retrySpec = z.strictObject({
  numRetries: z.number().int().min(0).default(2),
  numAttemptsPerPriority: z.number().int().min(0).optional(),
  /** Unset: connect-failure, refused-stream, unavailable, cancelled and 503. */
  retryOn: z
    .strictObject({
      triggers: z.array(retryTrigger).optional(),
      /** Needs the retriable-status-codes trigger to take effect. */
      httpStatusCodes: z.array(httpStatus).optional(),
    })
    .optional(),
  perRetry: z
    .strictObject({
      timeout: gatewayDuration.optional(),
      backOff: z
        .strictObject({
          baseInterval: gatewayDuration.optional(),
          /** Default: 10 × baseInterval. */
          maxInterval: gatewayDuration.optional(),
        })
        .superRefine((b, ctx) => {
          if (
            b.baseInterval !== undefined &&
            b.maxInterval !== undefined &&
            durationToMs(b.maxInterval) < durationToMs(b.baseInterval)
          )
            ctx.addIssue({
              code: 'custom',
              path: ['maxInterval'],
              message: 'maxInterval must be greater than or equal to baseInterval',
            });
        }, ifValid)
        .optional(),
    })
    .optional(),
});
export type RetrySpec = z.infer<typeof retrySpec>;

export const backendTimeoutSpec = z.strictObject({
  tcp: z.strictObject({ connectTimeout: gatewayDuration.optional() }).optional(),
  http: z
    .strictObject({
      connectionIdleTimeout: gatewayDuration.optional(),
      maxConnectionDuration: gatewayDuration.optional(),
      /** Until the whole response is received from upstream. */
      requestTimeout: gatewayDuration.optional(),
      maxStreamDuration: gatewayDuration.optional(),
      streamIdleTimeout: gatewayDuration.optional(),
    })
    .optional(),
});
export type BackendTimeoutSpec = z.infer<typeof backendTimeoutSpec>;

export const circuitBreakerSpec = z.strictObject({
  maxConnections: uint32.default(1024),
  maxPendingRequests: uint32.default(1024),
  maxParallelRequests: uint32.default(1024),
  maxParallelRetries: uint32.default(1024),
  /** Unset: unlimited. */
  maxRequestsPerConnection: uint32.optional(),
  perEndpoint: z.strictObject({ maxConnections: uint32.default(1024) }).optional(),
  retryBudget: z
    .strictObject({
      percent: z.strictObject({
        numerator: z.number().int().min(0),
        denominator: z.number().int().min(1).default(100),
      }),
      minRetryConcurrency: uint32.optional(),
    })
    .optional(),
});
export type CircuitBreakerSpec = z.infer<typeof circuitBreakerSpec>;

// --- health checks ---

const healthCheckPayload = z
  .strictObject({
    type: z.enum(['Text', 'Binary']),
    text: z.string().optional(),
    binary: z.array(z.number().int().min(0).max(255)).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.type === 'Text' && (p.text === undefined || p.binary !== undefined))
      ctx.addIssue({ code: 'custom', path: ['text'], message: 'type Text needs text only' });
    if (p.type === 'Binary' && (p.binary === undefined || p.text !== undefined))
      ctx.addIssue({ code: 'custom', path: ['binary'], message: 'type Binary needs binary only' });
  }, ifValid);

export const activeHealthCheckSpec = z
  .strictObject({
    timeout: gatewayDuration.default('1s'),
    interval: gatewayDuration.default('3s'),
    initialJitter: gatewayDuration.optional(),
    unhealthyThreshold: z.number().int().min(1).default(3),
    healthyThreshold: z.number().int().min(1).default(1),
    type: z.enum(['HTTP', 'TCP', 'GRPC']),
    http: z
      .strictObject({
        /** Host header; default the Backend endpoint hostname, then the route hostname. */
        hostname: z.string().min(1).optional(),
        path: z.string().min(1).max(1024),
        /** Default GET. */
        method: z.string().min(1).optional(),
        /** Default [200]. */
        expectedStatuses: z.array(httpStatus).optional(),
        retriableStatuses: z.array(httpStatus).optional(),
        expectedResponse: healthCheckPayload.optional(),
      })
      .optional(),
    tcp: z
      .strictObject({
        send: healthCheckPayload.optional(),
        receive: healthCheckPayload.optional(),
      })
      .optional(),
    grpc: z.strictObject({ service: z.string().optional() }).optional(),
    overrides: z.strictObject({ port: portNumber.optional() }).optional(),
  })
  .superRefine((a, ctx) => {
    for (const [t, f] of [
      ['HTTP', 'http'],
      ['TCP', 'tcp'],
    ] as const) {
      if ((a.type === t) !== (a[f] !== undefined))
        ctx.addIssue({
          code: 'custom',
          path: [f],
          message: `${f} must be set exactly when type is ${t}`,
        });
    }
    if (a.grpc !== undefined && a.type !== 'GRPC')
      ctx.addIssue({
        code: 'custom',
        path: ['grpc'],
        message: 'grpc may only be set when type is GRPC',
      });
  }, ifValid);
export type ActiveHealthCheckSpec = z.infer<typeof activeHealthCheckSpec>;

/** Outlier detection. */
export const passiveHealthCheckSpec = z.strictObject({
  splitExternalLocalOriginErrors: z.boolean().default(false),
  interval: gatewayDuration.default('3s'),
  /** Only counted with splitExternalLocalOriginErrors. */
  consecutiveLocalOriginFailures: uint32.default(5),
  consecutiveGatewayErrors: uint32.optional(),
  consecutive5XxErrors: uint32.default(5),
  baseEjectionTime: gatewayDuration.default('30s'),
  maxEjectionPercent: z.number().int().min(0).max(100).default(10),
  failurePercentageThreshold: z.number().int().min(0).max(100).optional(),
  alwaysEjectOneEndpoint: z.boolean().default(false),
});
export type PassiveHealthCheckSpec = z.infer<typeof passiveHealthCheckSpec>;

export const healthCheckSpec = z.strictObject({
  active: activeHealthCheckSpec.optional(),
  passive: passiveHealthCheckSpec.optional(),
  /** Percent of unhealthy endpoints above which health is ignored; Envoy's default 50, 0 disables. */
  panicThreshold: z.number().int().min(0).max(100).optional(),
});
export type HealthCheckSpec = z.infer<typeof healthCheckSpec>;

// --- rate limit ---

const regexValid = (value: string | undefined, ctx: z.RefinementCtx, path: string[]) => {
  if (value === undefined) return;
  try {
    new RegExp(value);
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      path,
      message: `invalid regular expression: ${(err as Error).message}`,
    });
  }
};

/** Header and query-parameter selectors share their rules: Distinct takes no value or invert. */
function checkDistinctMatch(
  m: { type: string; value?: string | undefined; invert?: boolean | undefined },
  ctx: z.RefinementCtx,
): void {
  if (m.type === 'Distinct') {
    if (m.value !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: 'value must not be set for type Distinct',
      });
    if (m.invert === true)
      ctx.addIssue({
        code: 'custom',
        path: ['invert'],
        message: 'invert must not be set for type Distinct',
      });
  }
  if (m.type === 'RegularExpression') regexValid(m.value, ctx, ['value']);
}

export const rateLimitHeaderMatch = z
  .strictObject({
    type: z.enum(['Exact', 'RegularExpression', 'Distinct']).default('Exact'),
    name: z.string().min(1).max(256),
    value: z.string().min(1).max(1024).optional(),
    invert: z.boolean().default(false),
  })
  .superRefine(checkDistinctMatch, ifValid);

export const rateLimitSelectCondition = z
  .strictObject({
    headers: z.array(rateLimitHeaderMatch).optional(),
    methods: z
      .array(z.strictObject({ value: httpMethod, invert: z.boolean().default(false) }))
      .optional(),
    path: z
      .strictObject({
        type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
        value: z.string().min(1).max(1024).default('/'),
        invert: z.boolean().default(false),
      })
      .superRefine((p, ctx) => {
        if (p.type === 'RegularExpression') regexValid(p.value, ctx, ['value']);
        else if (!p.value.startsWith('/'))
          ctx.addIssue({ code: 'custom', path: ['value'], message: 'must start with "/"' });
      }, ifValid)
      .optional(),
    sourceCIDR: z
      .strictObject({
        /** Exact: the whole range shares a bucket; Distinct: one bucket per client IP. */
        type: z.enum(['Exact', 'Distinct']).default('Exact'),
        value: cidr,
        invert: z.boolean().default(false),
      })
      .optional(),
    queryParams: z
      .array(
        z
          .strictObject({
            type: z.enum(['Exact', 'RegularExpression', 'Distinct']).default('Exact'),
            name: z.string().min(1),
            value: z.string().min(1).optional(),
            invert: z.boolean().default(false),
          })
          .superRefine(checkDistinctMatch, ifValid),
      )
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (
      c.headers === undefined &&
      c.methods === undefined &&
      c.path === undefined &&
      c.sourceCIDR === undefined &&
      c.queryParams === undefined
    )
      ctx.addIssue({
        code: 'custom',
        message: 'at least one of headers, methods, path, sourceCIDR or queryParams must be set',
      });
  }, ifValid);
export type RateLimitSelectCondition = z.infer<typeof rateLimitSelectCondition>;

const rateLimitCostSpecifier = z
  .strictObject({
    from: z.enum(['Number', 'Metadata']),
    number: z.number().int().min(0).optional(),
    metadata: z.strictObject({ namespace: z.string().min(1), key: z.string().min(1) }).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.from === 'Number') !== (c.number !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['number'],
        message: 'number must be set exactly when from is Number',
      });
    if ((c.from === 'Metadata') !== (c.metadata !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['metadata'],
        message: 'metadata must be set exactly when from is Metadata',
      });
  }, ifValid);

export const rateLimitUnit = z.enum(['Second', 'Minute', 'Hour', 'Day', 'Month', 'Year']);

export const rateLimitRule = z.strictObject({
  /** All must match; none means every request of the target route. */
  clientSelectors: z.array(rateLimitSelectCondition).optional(),
  limit: z.strictObject({ requests: z.number().int().min(0), unit: rateLimitUnit }),
  /** Default: 1 per request, nothing on the response. */
  cost: z
    .strictObject({
      request: rateLimitCostSpecifier.optional(),
      response: rateLimitCostSpecifier.optional(),
    })
    .optional(),
  /** One bucket across all targets instead of one per route. */
  shared: z.boolean().optional(),
  /** Count but never enforce (global limits only). */
  shadowMode: z.boolean().optional(),
  xRateLimitHeaders: z.enum(['Disabled', 'DraftVersion03']).optional(),
});
export type RateLimitRule = z.infer<typeof rateLimitRule>;

export const rateLimitSpec = z
  .strictObject({
    /** Deprecated upstream: set global and/or local instead. */
    type: z.enum(['Global', 'Local']).optional(),
    global: z.strictObject({ rules: z.array(rateLimitRule) }).optional(),
    local: z.strictObject({ rules: z.array(rateLimitRule).optional() }).optional(),
  })
  .superRefine((r, ctx) => {
    if (r.type === 'Global' && r.global === undefined)
      ctx.addIssue({ code: 'custom', path: ['global'], message: 'type Global needs global' });
    if (r.type === 'Local' && r.local === undefined)
      ctx.addIssue({ code: 'custom', path: ['local'], message: 'type Local needs local' });
    if (r.global === undefined && r.local === undefined)
      ctx.addIssue({ code: 'custom', message: 'rateLimit needs global or local rules' });
  }, ifValid);
export type RateLimitSpec = z.infer<typeof rateLimitSpec>;

// --- fault injection ---

export const faultInjectionSpec = z
  .strictObject({
    delay: z
      .strictObject({
        fixedDelay: gatewayDuration,
        percentage: z.number().min(0).max(100).default(100),
      })
      .optional(),
    abort: z
      .strictObject({
        httpStatus: z.number().int().min(200).max(600).optional(),
        grpcStatus: z.number().int().min(0).optional(),
        percentage: z.number().min(0).max(100).default(100),
      })
      .superRefine((a, ctx) => {
        if (a.httpStatus !== undefined && a.grpcStatus !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['grpcStatus'],
            message: 'httpStatus and grpcStatus cannot be simultaneously defined',
          });
        if (a.httpStatus === undefined && a.grpcStatus === undefined)
          ctx.addIssue({ code: 'custom', message: 'one of httpStatus or grpcStatus must be set' });
      }, ifValid)
      .optional(),
  })
  .superRefine((f, ctx) => {
    if (f.delay === undefined && f.abort === undefined)
      ctx.addIssue({ code: 'custom', message: 'at least one of delay or abort must be set' });
  }, ifValid);
export type FaultInjectionSpec = z.infer<typeof faultInjectionSpec>;

// --- connection-level settings (small, strictly modelled even where unimplemented) ---

export const tcpKeepaliveSpec = z.strictObject({
  probes: uint32.optional(),
  idleTime: gatewayDuration.optional(),
  interval: gatewayDuration.optional(),
});

const http2Settings = z.strictObject({
  initialStreamWindowSize: quantity.optional(),
  initialConnectionWindowSize: quantity.optional(),
  maxConcurrentStreams: z.number().int().min(1).max(2147483647).optional(),
  onInvalidMessage: z.enum(['TerminateConnection', 'TerminateStream']).optional(),
  connectionKeepalive: z
    .strictObject({
      interval: gatewayDuration.optional(),
      timeout: gatewayDuration.optional(),
      intervalJitter: z.number().int().min(0).optional(),
      idleInterval: gatewayDuration.optional(),
    })
    .optional(),
});

const BACKEND_TRAFFIC_POLICY_KINDS = [
  'Gateway',
  'ListenerSet',
  'HTTPRoute',
  'GRPCRoute',
  'UDPRoute',
  'TCPRoute',
  'TLSRoute',
];

export const backendTrafficPolicySpec = z
  .strictObject({
    ...policyTargets,
    // ClusterSettings, inlined upstream.
    loadBalancer: loadBalancerSpec.optional(),
    retry: retrySpec.optional(),
    proxyProtocol: z.strictObject({ version: z.enum(['V1', 'V2']) }).optional(),
    tcpKeepalive: tcpKeepaliveSpec.optional(),
    healthCheck: healthCheckSpec.optional(),
    circuitBreaker: circuitBreakerSpec.optional(),
    timeout: backendTimeoutSpec.optional(),
    connection: z
      .strictObject({ bufferLimit: quantity.optional(), preconnect: opaque.optional() })
      .optional(),
    dns: z
      .strictObject({
        dnsRefreshRate: gatewayDuration.optional(),
        respectDnsTtl: z.boolean().optional(),
        lookupFamily: z
          .enum(['IPv4', 'IPv6', 'IPv4Preferred', 'IPv6Preferred', 'IPv4AndIPv6'])
          .optional(),
      })
      .optional(),
    http2: http2Settings.optional(),
    // BackendTrafficPolicy's own fields.
    mergeType: mergeType.optional(),
    rateLimit: rateLimitSpec.optional(),
    bandwidthLimit: opaque.optional(),
    faultInjection: faultInjectionSpec.optional(),
    admissionControl: opaque.optional(),
    useClientProtocol: z.boolean().optional(),
    /** Deprecated upstream: use compressor. */
    compression: opaqueList.optional(),
    compressor: opaqueList.optional(),
    responseOverride: opaqueList.optional(),
    httpUpgrade: z
      .array(
        z
          .strictObject({
            type: z.string().min(1),
            connect: z.strictObject({ terminate: z.boolean().optional() }).optional(),
          })
          .superRefine((u, ctx) => {
            if (u.connect !== undefined && u.type.toUpperCase() !== 'CONNECT')
              ctx.addIssue({
                code: 'custom',
                path: ['connect'],
                message: 'connect is only allowed when type is CONNECT',
              });
          }, ifValid),
      )
      .optional(),
    requestBuffer: z
      .strictObject({
        limit: quantity,
        mode: z.enum(['BufferAndLimit', 'LimitOnly']).default('BufferAndLimit'),
      })
      .optional(),
    telemetry: opaque.optional(),
    routingType: z.enum(['Service', 'Endpoint']).optional(),
  })
  .superRefine((spec, ctx) => {
    checkTargets(spec, ctx, BACKEND_TRAFFIC_POLICY_KINDS, ['Service']);
    if (spec.compression !== undefined && spec.compressor !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['compressor'],
        message: 'either compression or compressor can be set, not both',
      });
  }, ifValid);
export type BackendTrafficPolicySpec = z.infer<typeof backendTrafficPolicySpec>;

// ===================================================================================
// ClientTrafficPolicy
// ===================================================================================

export const clientIPDetectionSpec = z
  .strictObject({
    xForwardedFor: z
      .strictObject({
        /** Client address = the Nth entry from the right of X-Forwarded-For. */
        numTrustedHops: uint32.optional(),
        trustedCIDRs: z.array(cidr).min(1).optional(),
      })
      .superRefine((x, ctx) => {
        if (x.numTrustedHops !== undefined && x.trustedCIDRs !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['trustedCIDRs'],
            message: 'only one of numTrustedHops or trustedCIDRs may be set',
          });
      }, ifValid)
      .optional(),
    customHeader: z
      .strictObject({ name: headerName, failClosed: z.boolean().optional() })
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.xForwardedFor !== undefined && c.customHeader !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['customHeader'],
        message: 'customHeader cannot be used together with xForwardedFor',
      });
  }, ifValid);
export type ClientIPDetectionSpec = z.infer<typeof clientIPDetectionSpec>;

export const pathSettingsSpec = z.strictObject({
  /** Default UnescapeAndRedirect. */
  escapedSlashesAction: z
    .enum(['KeepUnchanged', 'RejectRequest', 'UnescapeAndRedirect', 'UnescapeAndForward'])
    .optional(),
  disableMergeSlashes: z.boolean().optional(),
});
export type PathSettingsSpec = z.infer<typeof pathSettingsSpec>;

export const headerSettingsSpec = z
  .strictObject({
    enableEnvoyHeaders: z.boolean().optional(),
    disableRateLimitHeaders: z.boolean().optional(),
    xForwardedClientCert: z
      .strictObject({
        mode: z
          .enum(['Sanitize', 'ForwardOnly', 'AppendForward', 'SanitizeSet', 'AlwaysForwardOnly'])
          .optional(),
        certDetailsToAdd: z.array(z.enum(['Subject', 'Cert', 'Chain', 'DNS', 'URI'])).optional(),
      })
      .optional(),
    /** Upstream's default RejectRequest; meshgate's Allow (gateway/client-traffic.ts says why). */
    withUnderscoresAction: z.enum(['Allow', 'RejectRequest', 'DropHeader']).optional(),
    /** Deprecated upstream: requestID PreserveOrGenerate. */
    preserveXRequestID: z.boolean().optional(),
    requestID: z.enum(['PreserveOrGenerate', 'Preserve', 'Generate', 'Disable']).optional(),
    earlyRequestHeaders: egHeaderFilter.optional(),
    lateResponseHeaders: egHeaderFilter.optional(),
  })
  .superRefine((h, ctx) => {
    if (h.preserveXRequestID !== undefined && h.requestID !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['requestID'],
        message: 'preserveXRequestID and requestID cannot both be set',
      });
  }, ifValid);
export type HeaderSettingsSpec = z.infer<typeof headerSettingsSpec>;

export const clientTimeoutSpec = z.strictObject({
  tcp: z.strictObject({ idleTimeout: gatewayDuration.optional() }).optional(),
  http: z
    .strictObject({
      requestReceivedTimeout: gatewayDuration.optional(),
      /** Default 1h. */
      idleTimeout: gatewayDuration.optional(),
      /** Default 5m. */
      streamIdleTimeout: gatewayDuration.optional(),
    })
    .optional(),
});
export type ClientTimeoutSpec = z.infer<typeof clientTimeoutSpec>;

export const clientConnectionSpec = z.strictObject({
  connectionLimit: z
    .strictObject({
      value: z.number().int().min(1).optional(),
      closeDelay: gatewayDuration.optional(),
      maxConnectionDuration: gatewayDuration.optional(),
      maxRequestsPerConnection: uint32.optional(),
      maxStreamDuration: gatewayDuration.optional(),
    })
    .optional(),
  bufferLimit: quantity.optional(),
  maxAcceptPerSocketEvent: uint32.default(1),
});
export type ClientConnectionSpec = z.infer<typeof clientConnectionSpec>;

export const http1SettingsSpec = z.strictObject({
  enableTrailers: z.boolean().optional(),
  preserveHeaderCase: z.boolean().optional(),
  http10: z.strictObject({ useDefaultHost: z.boolean().optional() }).optional(),
  disableSafeMaxConnectionDuration: z.boolean().optional(),
  ignoredUpgradeTypes: z.array(stringMatch).optional(),
});
export type HTTP1SettingsSpec = z.infer<typeof http1SettingsSpec>;

const CLIENT_TRAFFIC_POLICY_KINDS = ['Gateway', 'ListenerSet'];

export const clientTrafficPolicySpec = z
  .strictObject({
    ...policyTargets,
    tcpKeepalive: tcpKeepaliveSpec.optional(),
    /** Deprecated upstream: use proxyProtocol. */
    enableProxyProtocol: z.boolean().optional(),
    proxyProtocol: z.strictObject({ optional: z.boolean().optional() }).optional(),
    clientIPDetection: clientIPDetectionSpec.optional(),
    tls: opaque.optional(),
    path: pathSettingsSpec.optional(),
    headers: headerSettingsSpec.optional(),
    timeout: clientTimeoutSpec.optional(),
    connection: clientConnectionSpec.optional(),
    http1: http1SettingsSpec.optional(),
    http2: http2Settings.optional(),
    http3: z.strictObject({}).optional(),
    grpc: z.strictObject({ enableWeb: z.boolean().optional() }).optional(),
    healthCheck: z.strictObject({ path: z.string().min(1).max(1024) }).optional(),
    scheme: z.enum(['Preserve', 'MatchBackend']).optional(),
  })
  .superRefine((spec, ctx) => checkTargets(spec, ctx, CLIENT_TRAFFIC_POLICY_KINDS), ifValid);
export type ClientTrafficPolicySpec = z.infer<typeof clientTrafficPolicySpec>;

// ===================================================================================
// What meshgate does not implement
// ===================================================================================

export const selectorsAcrossNamespaces: UnsupportedFieldRule = {
  path: 'spec.targetSelectors[].namespaces.from',
  message: 'targetSelectors across namespaces are not supported; the policy is not applied',
  effect: 'reject',
  when: (v) => v !== 'Same',
};

const securityPolicyUnsupported: UnsupportedFieldRule[] = [
  selectorsAcrossNamespaces,
  {
    path: 'spec.oidc.cookieNames.idToken',
    message:
      'the ID token travels inside the encrypted session cookie; a separate cookie name has no effect',
    effect: 'ignore',
  },
  {
    path: 'spec.oidc.disableTokenEncryption',
    message: 'the OIDC session cookie is always encrypted',
    effect: 'ignore',
    when: (v) => v === true,
  },
  {
    path: 'spec.oidc.provider.backendRefs',
    message: 'the OIDC provider is reached at its URLs directly; backendRefs have no effect',
    effect: 'ignore',
  },
  {
    path: 'spec.oidc.provider.backendSettings',
    message: 'the OIDC provider is reached at its URLs directly; backendSettings have no effect',
    effect: 'ignore',
  },
  {
    path: 'spec.jwt.providers[].recomputeRoute',
    message:
      'recomputing the route after JWT claims are copied to headers is not supported; the policy is not applied',
    effect: 'reject',
    when: (v) => v === true,
  },
  {
    path: 'spec.basicAuth',
    message: 'HTTP Basic authentication is not supported; the policy is not applied',
    effect: 'reject',
  },
  {
    path: 'spec.extAuth',
    message: 'external authorization is not supported; the policy is not applied',
    effect: 'reject',
  },
  {
    path: 'spec.authorization.rules[].principal.clientIPGeoLocations',
    message: 'GeoIP principals are not supported; the policy is not applied',
    effect: 'reject',
  },
  {
    path: 'spec.jwt.providers[].localJWKS.valueRef',
    message: 'JWKS from a ConfigMap is not supported (ConfigMaps are not read); use inline',
    effect: 'reject',
  },
];

/** gRPC retry triggers read an answer's grpc-status, which meshgate's retry decision does not see. */
const GRPC_RETRY_TRIGGERS = new Set([
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

function isPrimeNumber(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

const backendTrafficPolicyUnsupported: UnsupportedFieldRule[] = [
  selectorsAcrossNamespaces,
  {
    path: 'spec.requestBuffer',
    message: 'request buffering and its size limit are not supported; the policy is not applied',
    effect: 'reject',
  },
  {
    // Envoy refuses a Maglev table whose size is not prime, and upstream then rejects the policy.
    path: 'spec.loadBalancer.consistentHash.tableSize',
    message: 'the consistent hash table size must be a prime number; the policy is not applied',
    effect: 'reject',
    when: (v) => typeof v === 'number' && !isPrimeNumber(v),
  },
  {
    path: 'spec.loadBalancer',
    message:
      'BackendUtilization and DynamicModule load balancers are not supported; the default (LeastRequest) is used',
    effect: 'ignore',
    when: (v) => {
      const type = (v as { type?: unknown }).type;
      return type === 'BackendUtilization' || type === 'DynamicModule';
    },
  },
  {
    path: 'spec.healthCheck.active',
    message: 'gRPC health checks are not supported; no active health check runs',
    effect: 'ignore',
    when: (v) => (v as { type?: unknown }).type === 'GRPC',
  },
  {
    path: 'spec.retry.retryOn.triggers[]',
    message: 'gRPC retry triggers are not supported (the grpc-status of an answer is not read)',
    effect: 'ignore',
    when: (v) => typeof v === 'string' && GRPC_RETRY_TRIGGERS.has(v),
  },
  ...(
    [
      ['spec.proxyProtocol', 'PROXY protocol towards backends is not supported'],
      ['spec.tcpKeepalive', 'TCP keepalive settings are not supported'],
      ['spec.connection', 'backend connection buffer and preconnect settings are not supported'],
      ['spec.dns', 'DNS settings are not supported'],
      ['spec.http2', 'HTTP/2 settings are not supported'],
      ['spec.bandwidthLimit', 'bandwidth limits are not supported'],
      ['spec.admissionControl', 'admission control is not supported'],
      ['spec.useClientProtocol', 'useClientProtocol is not supported'],
      ['spec.compression', 'response compression is not supported'],
      ['spec.compressor', 'response compression is not supported'],
      ['spec.responseOverride', 'response overrides are not supported'],
      ['spec.httpUpgrade', 'protocol upgrade settings are not supported'],
      ['spec.telemetry', 'per-policy telemetry settings are not supported'],
      ['spec.routingType', 'routingType is not supported; meshgate routes to endpoints'],
      ['spec.loadBalancer.slowStart', 'slow start is not supported'],
      ['spec.loadBalancer.zoneAware', 'zone-aware load balancing is not supported'],
      ['spec.loadBalancer.endpointOverride', 'endpoint override is not supported'],
      ['spec.retry.numAttemptsPerPriority', 'priority levels are not supported'],
      ['spec.timeout.http.streamIdleTimeout', 'upstream stream idle timeouts are not supported'],
    ] as const
  ).map(([path, message]): UnsupportedFieldRule => ({ path, message, effect: 'ignore' })),
];

const clientTrafficPolicyUnsupported: UnsupportedFieldRule[] = [
  selectorsAcrossNamespaces,
  {
    path: 'spec.enableProxyProtocol',
    message: 'the PROXY protocol is not supported; the policy is not applied',
    effect: 'reject',
    when: (v) => v === true,
  },
  {
    path: 'spec.proxyProtocol',
    message: 'the PROXY protocol is not supported on listeners; the policy is not applied',
    effect: 'reject',
  },
  {
    path: 'spec.clientIPDetection.customHeader',
    message: 'client IP from a custom header is not supported; the policy is not applied',
    effect: 'reject',
  },
  {
    path: 'spec.tls',
    message:
      'listener TLS settings (versions, ciphers, client certificates) are not supported; the policy is not applied',
    effect: 'reject',
  },
  {
    path: 'spec.headers.earlyRequestHeaders',
    message: 'early request header changes are not supported; the policy is not applied',
    effect: 'reject',
  },
  {
    path: 'spec.headers.lateResponseHeaders',
    message: 'late response header changes are not supported; the policy is not applied',
    effect: 'reject',
  },
  // false is what meshgate does anyway (header names go out in lowercase; no connection
  // duration to be safe about), so only true is a setting that is not applied.
  {
    path: 'spec.http1.preserveHeaderCase',
    message: 'header names are always forwarded in lowercase',
    effect: 'ignore',
    when: (v) => v === true,
  },
  {
    path: 'spec.http1.disableSafeMaxConnectionDuration',
    message: 'has no effect: connectionLimit.maxConnectionDuration is not supported',
    effect: 'ignore',
    when: (v) => v === true,
  },
  ...(
    [
      ['spec.tcpKeepalive', 'TCP keepalive settings are not supported'],
      ['spec.headers.enableEnvoyHeaders', 'x-envoy headers are never added'],
      ['spec.headers.xForwardedClientCert', 'x-forwarded-client-cert is always removed'],
      ['spec.headers.preserveXRequestID', 'request id handling is not configurable'],
      ['spec.headers.requestID', 'request id handling is not configurable'],
      ['spec.timeout.tcp', 'TCP idle timeouts are not supported'],
      ['spec.connection.bufferLimit', 'connection buffer limits are not supported'],
      ['spec.connection.maxAcceptPerSocketEvent', 'accept batching is not configurable'],
      [
        'spec.connection.connectionLimit.maxConnectionDuration',
        'a maximum connection duration is not supported; connections stay open until idle',
      ],
      [
        'spec.connection.connectionLimit.maxStreamDuration',
        'a maximum stream duration is not supported; requests are bounded by the route timeouts and the stream idle timeout',
      ],
      [
        'spec.http1.enableTrailers',
        'HTTP/1 trailers are not configurable: response trailers are relayed to clients that send TE: trailers, request trailers are dropped',
      ],
      ['spec.http1.http10', 'HTTP/1.0 is not supported'],
      ['spec.http1.ignoredUpgradeTypes', 'ignored upgrade types are not supported'],
      ['spec.http2', 'HTTP/2 listener settings are not supported'],
      ['spec.http3', 'HTTP/3 is not supported'],
      ['spec.grpc', 'gRPC-Web is not supported'],
      [
        'spec.healthCheck',
        'listener health check paths are not supported; use the 15021 health port',
      ],
      ['spec.scheme', 'the :scheme transform is not supported'],
    ] as const
  ).map(([path, message]): UnsupportedFieldRule => ({ path, message, effect: 'ignore' })),
];

export const envoyGatewayKinds: KindDefinition[] = [
  {
    group: ENVOY_GATEWAY_GROUP,
    kind: 'SecurityPolicy',
    versions: ['v1alpha1'],
    namespaced: true,
    schema: securityPolicySpec,
    unsupported: securityPolicyUnsupported,
  },
  {
    group: ENVOY_GATEWAY_GROUP,
    kind: 'BackendTrafficPolicy',
    versions: ['v1alpha1'],
    namespaced: true,
    schema: backendTrafficPolicySpec,
    unsupported: backendTrafficPolicyUnsupported,
  },
  {
    group: ENVOY_GATEWAY_GROUP,
    kind: 'ClientTrafficPolicy',
    versions: ['v1alpha1'],
    namespaced: true,
    schema: clientTrafficPolicySpec,
    unsupported: clientTrafficPolicyUnsupported,
  },
];
