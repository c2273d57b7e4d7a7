import { z } from 'zod';
import {
  apiGroup,
  kindName,
  sectionName,
  gatewayDuration,
  gatewayHostname,
  headerName,
  labelSelector,
  namespaceName,
  objectName,
  portNumber,
  preciseHostname,
} from './common.ts';
import { durationToMs } from '../duration.ts';

// gateway.networking.k8s.io/v1 as the upstream Go types define it (apis/v1/*_types.go):
// field names, defaults and enums are upstream's; CEL rules that matter to us are refinements.

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

const group = apiGroup;
const kind = kindName;

// --- GatewayClass ---

export const gatewayClassSpec = z.strictObject({
  controllerName: z
    .string()
    .min(1)
    .max(253)
    .regex(
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/,
      'must be a domain-prefixed path such as example.com/controller',
    ),
  parametersRef: z
    .strictObject({ group, kind, name: z.string().min(1), namespace: namespaceName.optional() })
    .optional(),
  description: z.string().max(64).optional(),
});
export type GatewayClassSpec = z.infer<typeof gatewayClassSpec>;

// --- Gateway ---

export const secretObjectReference = z.strictObject({
  group: group.default(''),
  kind: kind.default('Secret'),
  name: objectName,
  namespace: namespaceName.optional(),
});
export type SecretObjectReference = z.infer<typeof secretObjectReference>;

const objectReference = z.strictObject({
  group,
  kind,
  name: objectName,
  namespace: namespaceName.optional(),
});

export const routeGroupKind = z.strictObject({
  group: group.default(GATEWAY_GROUP),
  kind,
});

export const allowedRoutes = z.strictObject({
  namespaces: z
    .strictObject({
      from: z.enum(['All', 'Same', 'Selector', 'None']).default('Same'),
      selector: labelSelector.optional(),
    })
    .default({ from: 'Same' }),
  kinds: z.array(routeGroupKind).max(8).optional(),
});
export type AllowedRoutes = z.infer<typeof allowedRoutes>;

export const gatewayTLSConfig = z.strictObject({
  mode: z.enum(['Terminate', 'Passthrough']).default('Terminate'),
  certificateRefs: z.array(secretObjectReference).max(64).optional(),
  frontendValidation: z
    .strictObject({ caCertificateRefs: z.array(objectReference).min(1).max(8).optional() })
    .optional(),
  options: z.record(z.string(), z.string()).optional(),
});

export const listener = z.strictObject({
  name: sectionName,
  hostname: gatewayHostname.optional(),
  port: portNumber,
  protocol: z
    .string()
    .min(1)
    .max(255)
    .regex(
      /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$/,
      'must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed protocol',
    ),
  tls: gatewayTLSConfig.optional(),
  allowedRoutes: allowedRoutes.default({ namespaces: { from: 'Same' } }),
});
export type Listener = z.infer<typeof listener>;

export const gatewaySpec = z
  .strictObject({
    gatewayClassName: objectName,
    listeners: z.array(listener).min(1).max(64),
    addresses: z
      .array(
        z.strictObject({
          type: z.string().default('IPAddress'),
          value: z.string().min(1).max(253).optional(),
        }),
      )
      .max(16)
      .optional(),
    infrastructure: z
      .strictObject({
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
        parametersRef: z.strictObject({ group, kind, name: z.string().min(1) }).optional(),
      })
      .optional(),
    backendTLS: z
      .strictObject({ clientCertificateRef: secretObjectReference.optional() })
      .optional(),
    allowedListeners: z
      .strictObject({
        namespaces: z
          .strictObject({
            from: z.enum(['All', 'Same', 'Selector', 'None']).default('None'),
            selector: labelSelector.optional(),
          })
          .optional(),
      })
      .optional(),
    tls: z.looseObject({}).optional(),
  })
  .superRefine((spec, ctx) => {
    const seen = new Map<string, number>();
    spec.listeners.forEach((l, i) => {
      const prev = seen.get(l.name);
      if (prev !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', i, 'name'],
          message: `listener name "${l.name}" is already used by listeners[${prev}]; names must be unique`,
        });
      else seen.set(l.name, i);
      if (l.protocol === 'HTTPS' && l.tls === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', i, 'tls'],
          message: 'an HTTPS listener needs tls (certificateRefs)',
        });
      if (l.protocol === 'HTTP' && l.tls !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', i, 'tls'],
          message: 'tls must not be set on an HTTP listener',
        });
    });
  });
export type GatewaySpec = z.infer<typeof gatewaySpec>;

// --- HTTPRoute ---

export const parentReference = z.strictObject({
  group: group.default(GATEWAY_GROUP),
  kind: kind.default('Gateway'),
  namespace: namespaceName.optional(),
  name: objectName,
  sectionName: sectionName.optional(),
  port: portNumber.optional(),
});
export type ParentReference = z.infer<typeof parentReference>;

const backendObjectReferenceFields = {
  group: group.default(''),
  kind: kind.default('Service'),
  name: objectName,
  namespace: namespaceName.optional(),
  port: portNumber.optional(),
};

/** Upstream CEL: a Service reference must name a port. */
function requirePortForService(
  ref: { group: string; kind: string; port?: number | undefined },
  ctx: z.RefinementCtx,
) {
  if (
    (ref.group === '' || ref.group === 'core') &&
    ref.kind === 'Service' &&
    ref.port === undefined
  )
    ctx.addIssue({
      code: 'custom',
      path: ['port'],
      message: 'required: a Service reference must name a port',
    });
}

export const backendObjectReference = z
  .strictObject(backendObjectReferenceFields)
  .superRefine(requirePortForService);
export type BackendObjectReference = z.infer<typeof backendObjectReference>;

const pathValueChars = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;

export const httpPathMatch = z
  .strictObject({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
    value: z.string().max(1024).default('/'),
  })
  .superRefine((m, ctx) => {
    if (m.type === 'RegularExpression') {
      try {
        new RegExp(m.value);
      } catch (err) {
        ctx.addIssue({
          code: 'custom',
          path: ['value'],
          message: `invalid regular expression: ${(err as Error).message}`,
        });
      }
      return;
    }
    const bad = (message: string) => ctx.addIssue({ code: 'custom', path: ['value'], message });
    const v = m.value;
    if (!v.startsWith('/')) bad("must be an absolute path starting with '/'");
    else if (v.includes('//')) bad("must not contain '//'");
    else if (v.includes('/./') || v.endsWith('/.')) bad("must not contain '/./' or end with '/.'");
    else if (v.includes('/../') || v.endsWith('/..'))
      bad("must not contain '/../' or end with '/..'");
    else if (/%2f/i.test(v)) bad("must not contain '%2F'");
    else if (v.includes('#')) bad("must not contain '#'");
    else if (!pathValueChars.test(v)) bad('contains characters that are not valid in a URL path');
  });
export type HTTPPathMatch = z.infer<typeof httpPathMatch>;

const regexIfNeeded =
  (what: string) => (m: { type: string; value: string }, ctx: z.RefinementCtx) => {
    if (m.type !== 'RegularExpression') return;
    try {
      new RegExp(m.value);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: `invalid ${what} regular expression: ${(err as Error).message}`,
      });
    }
  };

export const httpHeaderMatch = z
  .strictObject({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: headerName,
    value: z.string().min(1).max(4096),
  })
  .superRefine(regexIfNeeded('header'));

export const httpQueryParamMatch = z
  .strictObject({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: z.string().min(1).max(256),
    value: z.string().min(1).max(1024),
  })
  .superRefine(regexIfNeeded('query parameter'));

export const httpMethod = z.enum([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);

export const httpRouteMatch = z.strictObject({
  path: httpPathMatch.default({ type: 'PathPrefix', value: '/' }),
  headers: z.array(httpHeaderMatch).max(16).optional(),
  queryParams: z.array(httpQueryParamMatch).max(16).optional(),
  method: httpMethod.optional(),
});
export type HTTPRouteMatch = z.infer<typeof httpRouteMatch>;

const httpHeader = z.strictObject({ name: headerName, value: z.string().max(4096) });

export const httpHeaderFilter = z
  .strictObject({
    set: z.array(httpHeader).max(16).optional(),
    add: z.array(httpHeader).max(16).optional(),
    remove: z.array(z.string().min(1)).max(16).optional(),
  })
  .superRefine((f, ctx) => {
    // Upstream: only one action for a given header name.
    const seen = new Set<string>();
    const check = (name: string, path: (string | number)[]) => {
      const key = name.toLowerCase();
      if (seen.has(key))
        ctx.addIssue({
          code: 'custom',
          path,
          message: `header "${name}" appears in more than one action; one action per header name`,
        });
      seen.add(key);
    };
    f.set?.forEach((h, i) => check(h.name, ['set', i, 'name']));
    f.add?.forEach((h, i) => check(h.name, ['add', i, 'name']));
    f.remove?.forEach((n, i) => check(n, ['remove', i]));
  });
export type HTTPHeaderFilter = z.infer<typeof httpHeaderFilter>;

export const httpPathModifier = z
  .strictObject({
    type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
    replaceFullPath: z.string().max(1024).optional(),
    replacePrefixMatch: z.string().max(1024).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.type === 'ReplaceFullPath' && p.replaceFullPath === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['replaceFullPath'],
        message: "replaceFullPath must be specified when type is 'ReplaceFullPath'",
      });
    if (p.type === 'ReplacePrefixMatch' && p.replacePrefixMatch === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['replacePrefixMatch'],
        message: "replacePrefixMatch must be specified when type is 'ReplacePrefixMatch'",
      });
    if (p.type !== 'ReplaceFullPath' && p.replaceFullPath !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['type'],
        message: "type must be 'ReplaceFullPath' when replaceFullPath is set",
      });
    if (p.type !== 'ReplacePrefixMatch' && p.replacePrefixMatch !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['type'],
        message: "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set",
      });
  });
export type HTTPPathModifier = z.infer<typeof httpPathModifier>;

export const httpRequestRedirectFilter = z.strictObject({
  scheme: z.enum(['http', 'https']).optional(),
  hostname: preciseHostname.optional(),
  path: httpPathModifier.optional(),
  port: portNumber.optional(),
  statusCode: z
    .union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)])
    .default(302),
});
export type HTTPRequestRedirectFilter = z.infer<typeof httpRequestRedirectFilter>;

export const httpURLRewriteFilter = z.strictObject({
  hostname: preciseHostname.optional(),
  path: httpPathModifier.optional(),
});
export type HTTPURLRewriteFilter = z.infer<typeof httpURLRewriteFilter>;

export const httpRequestMirrorFilter = z
  .strictObject({
    backendRef: backendObjectReference,
    percent: z.number().int().min(0).max(100).optional(),
    fraction: z
      .strictObject({
        numerator: z.number().int().min(0),
        denominator: z.number().int().min(1).default(100),
      })
      .refine((f) => f.numerator <= f.denominator, {
        message: 'numerator must be less than or equal to denominator',
      })
      .optional(),
  })
  .refine((m) => !(m.percent !== undefined && m.fraction !== undefined), {
    message: 'only one of percent or fraction may be specified',
  });
export type HTTPRequestMirrorFilter = z.infer<typeof httpRequestMirrorFilter>;

const corsOrigin = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^\*$|^(http|https):\/\/(\*|(\*\.)?(([\w-]+\.?)+)?[\w-]+)(:\d{1,5})?$/,
    'must be "*" or scheme://host[:port], the host optionally starting with "*."',
  );

export const httpCORSFilter = z.strictObject({
  allowOrigins: z.array(corsOrigin).max(64).optional(),
  allowCredentials: z.boolean().optional(),
  allowMethods: z
    .array(z.enum([...httpMethod.options, '*']))
    .max(9)
    .optional(),
  allowHeaders: z
    .array(z.union([headerName, z.literal('*')]))
    .max(64)
    .optional(),
  exposeHeaders: z
    .array(z.union([headerName, z.literal('*')]))
    .max(64)
    .optional(),
  maxAge: z.number().int().min(1).default(5),
});
export type HTTPCORSFilter = z.infer<typeof httpCORSFilter>;

export const httpExternalAuthFilter = z.strictObject({
  protocol: z.enum(['HTTP', 'GRPC']),
  backendRef: backendObjectReference,
  grpc: z.strictObject({ allowedHeaders: z.array(z.string()).optional() }).optional(),
  http: z
    .strictObject({
      path: z.string().optional(),
      allowedHeaders: z.array(z.string()).optional(),
      allowedResponseHeaders: z.array(z.string()).optional(),
    })
    .optional(),
  forwardBody: z.strictObject({ maxSize: z.number().int().min(0).optional() }).optional(),
});

const filterTypes = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'RequestRedirect',
  'URLRewrite',
  'ExtensionRef',
  'CORS',
  'ExternalAuth',
] as const;

const filterField = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
} as const;

export const httpRouteFilter = z
  .strictObject({
    type: z.enum(filterTypes),
    requestHeaderModifier: httpHeaderFilter.optional(),
    responseHeaderModifier: httpHeaderFilter.optional(),
    requestMirror: httpRequestMirrorFilter.optional(),
    requestRedirect: httpRequestRedirectFilter.optional(),
    urlRewrite: httpURLRewriteFilter.optional(),
    cors: httpCORSFilter.optional(),
    externalAuth: httpExternalAuthFilter.optional(),
    extensionRef: z.strictObject({ group, kind, name: objectName }).optional(),
  })
  .superRefine((f, ctx) => {
    // Upstream CEL: the field named by `type` must be set, and no other.
    for (const t of filterTypes) {
      const field = filterField[t];
      const present = f[field] !== undefined;
      if (t === f.type && !present)
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `${field} must be specified for type ${t}`,
        });
      if (t !== f.type && present)
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `${field} must not be set when type is ${f.type}`,
        });
    }
  });
export type HTTPRouteFilter = z.infer<typeof httpRouteFilter>;

function checkFilterList(
  filters: HTTPRouteFilter[] | undefined,
  ctx: z.RefinementCtx,
  base: (string | number)[],
) {
  if (!filters) return;
  const count = new Map<string, number>();
  for (const f of filters) count.set(f.type, (count.get(f.type) ?? 0) + 1);
  if (count.has('RequestRedirect') && count.has('URLRewrite'))
    ctx.addIssue({
      code: 'custom',
      path: base,
      message: 'may specify either RequestRedirect or URLRewrite, but not both',
    });
  for (const t of [
    'CORS',
    'RequestHeaderModifier',
    'ResponseHeaderModifier',
    'RequestRedirect',
    'URLRewrite',
  ])
    if ((count.get(t) ?? 0) > 1)
      ctx.addIssue({ code: 'custom', path: base, message: `${t} filter cannot be repeated` });
}

export const httpBackendRef = z
  .strictObject({
    ...backendObjectReferenceFields,
    weight: z.number().int().min(0).max(1_000_000).default(1),
    filters: z.array(httpRouteFilter).max(16).optional(),
  })
  .superRefine((b, ctx) => {
    requirePortForService(b, ctx);
    checkFilterList(b.filters, ctx, ['filters']);
  });
export type HTTPBackendRef = z.infer<typeof httpBackendRef>;

export const httpRouteTimeouts = z
  .strictObject({
    request: gatewayDuration.optional(),
    backendRequest: gatewayDuration.optional(),
  })
  .superRefine((t, ctx) => {
    if (t.request === undefined || t.backendRequest === undefined) return;
    const request = durationToMs(t.request);
    if (request !== 0 && durationToMs(t.backendRequest) > request)
      ctx.addIssue({
        code: 'custom',
        path: ['backendRequest'],
        message: 'backendRequest timeout cannot be longer than request timeout',
      });
  });

export const httpRouteRetry = z.strictObject({
  codes: z.array(z.number().int().min(400).max(599)).optional(),
  attempts: z.number().int().min(0).optional(),
  backoff: gatewayDuration.optional(),
});

export const sessionPersistence = z.strictObject({
  sessionName: z.string().max(128).optional(),
  absoluteTimeout: gatewayDuration.optional(),
  idleTimeout: gatewayDuration.optional(),
  type: z.enum(['Cookie', 'Header']).default('Cookie'),
  cookieConfig: z
    .strictObject({ lifetimeType: z.enum(['Permanent', 'Session']).default('Session') })
    .optional(),
});

export const httpRouteRule = z
  .strictObject({
    name: sectionName.optional(),
    matches: z
      .array(httpRouteMatch)
      .max(64)
      .default([{ path: { type: 'PathPrefix', value: '/' } }]),
    filters: z.array(httpRouteFilter).max(16).optional(),
    backendRefs: z.array(httpBackendRef).max(16).optional(),
    timeouts: httpRouteTimeouts.optional(),
    retry: httpRouteRetry.optional(),
    sessionPersistence: sessionPersistence.optional(),
  })
  .superRefine((r, ctx) => {
    checkFilterList(r.filters, ctx, ['filters']);
    if (r.backendRefs?.length && r.filters?.some((f) => f.type === 'RequestRedirect'))
      ctx.addIssue({
        code: 'custom',
        path: ['filters'],
        message: 'RequestRedirect filter must not be used together with backendRefs',
      });
    const usesReplacePrefix = [
      ...(r.filters ?? []),
      ...(r.backendRefs ?? []).flatMap((b) => b.filters ?? []),
    ].some((f) => (f.requestRedirect?.path ?? f.urlRewrite?.path)?.type === 'ReplacePrefixMatch');
    if (usesReplacePrefix && (r.matches.length !== 1 || r.matches[0]?.path.type !== 'PathPrefix'))
      ctx.addIssue({
        code: 'custom',
        path: ['matches'],
        message:
          'when a filter uses path.replacePrefixMatch, exactly one PathPrefix match must be specified',
      });
  });
export type HTTPRouteRule = z.infer<typeof httpRouteRule>;

export const httpRouteSpec = z
  .strictObject({
    parentRefs: z.array(parentReference).max(32).optional(),
    hostnames: z.array(gatewayHostname).max(16).optional(),
    rules: z
      .array(httpRouteRule)
      .min(1)
      .max(16)
      .default([{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }]),
    useDefaultGateways: z.enum(['All', 'None']).optional(),
  })
  .superRefine((s, ctx) => {
    const names = new Map<string, number>();
    s.rules.forEach((r, i) => {
      if (r.name === undefined) return;
      const prev = names.get(r.name);
      if (prev !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'name'],
          message: `rule name "${r.name}" is already used by rules[${prev}]`,
        });
      else names.set(r.name, i);
    });
    const total = s.rules.reduce((n, r) => n + r.matches.length, 0);
    if (total > 128)
      ctx.addIssue({
        code: 'custom',
        path: ['rules'],
        message: `a route may have at most 128 matches across its rules; it has ${total}`,
      });
  });
export type HTTPRouteSpec = z.infer<typeof httpRouteSpec>;

// --- ReferenceGrant ---

export const referenceGrantSpec = z.strictObject({
  from: z
    .array(z.strictObject({ group, kind, namespace: namespaceName }))
    .min(1)
    .max(16),
  to: z
    .array(z.strictObject({ group, kind, name: objectName.optional() }))
    .min(1)
    .max(16),
});
export type ReferenceGrantSpec = z.infer<typeof referenceGrantSpec>;
