import { z } from 'zod';
import type { KindDefinition } from '../kinds.ts';
import { ifValid, isIpOrCidr } from './common.ts';

// security.istio.io v1 (and the identical v1beta1) as istio/api defines them: field names from the
// protos, bounds and rules from the generated CRD (x-kubernetes-validations) and from the istiod
// validating webhook, which rejects some shapes the CRD lets through.

export const ISTIO_SECURITY_GROUP = 'security.istio.io';

const istioVersions = ['v1', 'v1beta1'] as const;

/** Go/protobuf duration ("10ms", "1.5s", "1m30s"), the form Istio writes for timeouts. */
const GO_DURATION = /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/;
const GO_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

export function goDurationToMs(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g))
    total += Number(m[1]) * (GO_UNIT_MS[m[2] as string] ?? 0);
  return total;
}

const istioDuration = z
  .string()
  .regex(GO_DURATION, 'must be a duration such as 5s, 500ms or 1m30s')
  .refine((d) => goDurationToMs(d) >= 1, 'must be at least 1ms');

// --- shared types (istio.type.v1beta1) ---

/** WorkloadSelector: label match only; the CRD forbids wildcards and empty keys. */
export const workloadSelector = z.strictObject({
  matchLabels: z
    .record(
      z.string(),
      z
        .string()
        .max(63)
        .refine((v) => !v.includes('*'), 'wildcard not allowed in label value match'),
    )
    .superRefine((labels, ctx) => {
      const keys = Object.keys(labels);
      if (keys.length > 4096)
        ctx.addIssue({ code: 'custom', message: 'must have at most 4096 labels' });
      for (const key of keys) {
        if (key.length === 0)
          ctx.addIssue({ code: 'custom', path: [key], message: 'label key must not be empty' });
        else if (key.includes('*'))
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: 'wildcard not allowed in label key match',
          });
      }
    }, ifValid)
    .optional(),
});
export type WorkloadSelector = z.infer<typeof workloadSelector>;

// Istio's CRD allows these target kinds (core Service, Gateway API Gateway, ServiceEntry); whether
// meshgate can honour one is the compiler's call.
const TARGET_KINDS: readonly (readonly [string, string])[] = [
  ['', 'Service'],
  ['core', 'Service'],
  ['gateway.networking.k8s.io', 'Gateway'],
  ['networking.istio.io', 'ServiceEntry'],
];

export const istioPolicyTargetReference = z
  .strictObject({
    group: z
      .string()
      .max(253)
      .regex(
        /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
        'must be empty or a DNS subdomain',
      )
      .default(''),
    kind: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/, 'must be a Kind name'),
    name: z.string().min(1).max(253),
    namespace: z
      .string()
      .refine((ns) => ns.length === 0, 'cross namespace referencing is not currently supported')
      .optional(),
  })
  .superRefine((ref, ctx) => {
    if (!TARGET_KINDS.some(([g, k]) => g === ref.group && k === ref.kind))
      ctx.addIssue({
        code: 'custom',
        path: ['kind'],
        message:
          'supported targets are core/Service, gateway.networking.k8s.io/Gateway and networking.istio.io/ServiceEntry',
      });
  }, ifValid);
export type IstioPolicyTargetReference = z.infer<typeof istioPolicyTargetReference>;

const targetRefs = z.array(istioPolicyTargetReference).max(16);

/** At most one way of choosing workloads (CRD rule and webhook `validateOneOfSelectorType`). */
function checkOneSelectorKind(
  spec: { selector?: unknown; targetRef?: unknown; targetRefs?: unknown[] },
  ctx: z.RefinementCtx,
): void {
  const set = [
    spec.selector !== undefined ? 'selector' : undefined,
    spec.targetRef !== undefined ? 'targetRef' : undefined,
    spec.targetRefs !== undefined && spec.targetRefs.length > 0 ? 'targetRefs' : undefined,
  ].filter((s): s is string => s !== undefined);
  if (set.length > 1)
    ctx.addIssue({
      code: 'custom',
      path: [set[1] as string],
      message: `only one of selector, targetRef or targetRefs can be set (found ${set.join(' and ')})`,
    });
}

// --- PeerAuthentication ---

export const mtlsMode = z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);
export type MTLSMode = z.infer<typeof mtlsMode>;

const mutualTLS = z.strictObject({
  /** proto3 enum: an omitted mode is UNSET, which inherits from the parent scope. */
  mode: mtlsMode.default('UNSET'),
});

export const peerAuthenticationSpec = z
  .strictObject({
    selector: workloadSelector.optional(),
    mtls: mutualTLS.optional(),
    /** Keyed by the workload (container) port, not the Service port. */
    portLevelMtls: z.record(z.string(), mutualTLS).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.portLevelMtls === undefined) return;
    for (const port of Object.keys(spec.portLevelMtls))
      if (!/^[0-9]+$/.test(port) || Number(port) < 1 || Number(port) > 65535)
        ctx.addIssue({
          code: 'custom',
          path: ['portLevelMtls', port],
          message: 'port must be between 1-65535',
        });
    const labels = spec.selector?.matchLabels;
    if (labels === undefined || Object.keys(labels).length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['portLevelMtls'],
        message: 'portLevelMtls requires selector (a workload policy with matchLabels)',
      });
    if (Object.keys(spec.portLevelMtls).length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['portLevelMtls'],
        message: 'port level mTLS, if defined, must have at least one element',
      });
  }, ifValid);
export type PeerAuthenticationSpec = z.infer<typeof peerAuthenticationSpec>;

// --- AuthorizationPolicy ---

const nonEmptyStrings = z.array(z.string().min(1));
const ipBlocks = z.array(
  z.string().refine(isIpOrCidr, 'must be an IP address or a CIDR such as 10.0.0.0/8'),
);
const ports = z.array(
  z
    .string()
    .refine(
      (p) => /^[0-9]+$/.test(p) && Number(p) <= 65535,
      'must be a port number between 0 and 65535, written as a string',
    ),
);
const serviceAccounts = z
  .array(
    z
      .string()
      .min(1)
      .max(320)
      .refine((s) => !s.includes('*'), 'wildcard not allowed in serviceAccounts'),
  )
  .max(16);

export const authorizationSource = z
  .strictObject({
    principals: nonEmptyStrings.optional(),
    notPrincipals: nonEmptyStrings.optional(),
    requestPrincipals: nonEmptyStrings.optional(),
    notRequestPrincipals: nonEmptyStrings.optional(),
    namespaces: nonEmptyStrings.optional(),
    notNamespaces: nonEmptyStrings.optional(),
    /** `<namespace>/<serviceaccount>`, or `<serviceaccount>` in the policy's namespace. */
    serviceAccounts: serviceAccounts.optional(),
    notServiceAccounts: serviceAccounts.optional(),
    ipBlocks: ipBlocks.optional(),
    notIpBlocks: ipBlocks.optional(),
    /** From X-Forwarded-For or the PROXY protocol rather than the connection. */
    remoteIpBlocks: ipBlocks.optional(),
    notRemoteIpBlocks: ipBlocks.optional(),
    /** Trust domain of the peer's SPIFFE identity. */
    trustDomains: nonEmptyStrings.optional(),
    notTrustDomains: nonEmptyStrings.optional(),
  })
  .superRefine((src, ctx) => {
    const identity =
      (src.principals?.length ?? 0) +
      (src.notPrincipals?.length ?? 0) +
      (src.namespaces?.length ?? 0) +
      (src.notNamespaces?.length ?? 0);
    const accounts = (src.serviceAccounts?.length ?? 0) + (src.notServiceAccounts?.length ?? 0);
    if (identity > 0 && accounts > 0)
      ctx.addIssue({
        code: 'custom',
        path: [src.serviceAccounts !== undefined ? 'serviceAccounts' : 'notServiceAccounts'],
        message: 'cannot set serviceAccounts with namespaces or principals',
      });
    if (Object.values(src).every((v) => v === undefined || v.length === 0))
      ctx.addIssue({ code: 'custom', message: 'source must not be empty' });
  }, ifValid);
export type AuthorizationSource = z.infer<typeof authorizationSource>;

export const authorizationOperation = z
  .strictObject({
    hosts: nonEmptyStrings.optional(),
    notHosts: nonEmptyStrings.optional(),
    ports: ports.optional(),
    notPorts: ports.optional(),
    methods: nonEmptyStrings.optional(),
    notMethods: nonEmptyStrings.optional(),
    paths: nonEmptyStrings.optional(),
    notPaths: nonEmptyStrings.optional(),
  })
  .superRefine((op, ctx) => {
    if (Object.values(op).every((v) => v === undefined || v.length === 0))
      ctx.addIssue({ code: 'custom', message: 'operation must not be empty' });
  }, ifValid);
export type AuthorizationOperation = z.infer<typeof authorizationOperation>;

export const authorizationCondition = z
  .strictObject({
    key: z.string().min(1),
    values: z.array(z.string()).optional(),
    notValues: z.array(z.string()).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.values?.length ?? 0) === 0 && (c.notValues?.length ?? 0) === 0)
      ctx.addIssue({
        code: 'custom',
        message: `at least one of values or notValues must be set for key ${c.key}`,
      });
  }, ifValid);
export type AuthorizationCondition = z.infer<typeof authorizationCondition>;

export const authorizationRule = z.strictObject({
  // `from: []` and `to: []` are rejected by the webhook: an empty list would match nothing.
  from: z
    .array(z.strictObject({ source: authorizationSource }))
    .min(1)
    .max(512)
    .optional(),
  to: z
    .array(z.strictObject({ operation: authorizationOperation }))
    .min(1)
    .max(512)
    .optional(),
  when: z.array(authorizationCondition).optional(),
});
export type AuthorizationRule = z.infer<typeof authorizationRule>;

export const authorizationAction = z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']);
export type AuthorizationAction = z.infer<typeof authorizationAction>;

export const authorizationPolicySpec = z
  .strictObject({
    selector: workloadSelector.optional(),
    /** Deprecated upstream in favour of targetRefs; still accepted. */
    targetRef: istioPolicyTargetReference.optional(),
    targetRefs: targetRefs.optional(),
    /** Unset: the policy never matches (for ALLOW that denies everything selected). */
    rules: z.array(authorizationRule).max(512).optional(),
    action: authorizationAction.default('ALLOW'),
    /** Only with action CUSTOM: names an extension provider from MeshConfig. */
    provider: z.strictObject({ name: z.string() }).optional(),
  })
  .superRefine((spec, ctx) => {
    checkOneSelectorKind(spec, ctx);
    if (spec.action === 'CUSTOM') {
      if (spec.rules === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['action'],
          message:
            'CUSTOM action without rules never triggers; add an empty rule {} to apply it to every request',
        });
      else if (!spec.provider?.name)
        ctx.addIssue({
          code: 'custom',
          path: ['provider'],
          message: 'action CUSTOM needs provider.name',
        });
    } else if (spec.provider !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['provider'],
        message: `provider must only be used with action CUSTOM, not ${spec.action}`,
      });
    if (spec.action === 'DENY' && spec.rules === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['action'],
        message:
          'DENY action without rules never triggers; add an empty rule {} to deny every request',
      });
  }, ifValid);
export type AuthorizationPolicySpec = z.infer<typeof authorizationPolicySpec>;

// --- RequestAuthentication ---

export const jwtRule = z
  .strictObject({
    /** The `iss` claim; may be left out only when jwksUri is set. */
    issuer: z.string().min(1).optional(),
    audiences: nonEmptyStrings.optional(),
    // Not checked as a URL here: manifests are often templates ("{JWKS_URI}"); the compiler
    // resolves and checks it.
    jwksUri: z.string().min(1).max(2048).optional(),
    /** Inline JWKS document (JSON string). */
    jwks: z.string().min(1).optional(),
    /** Default when no location is given: `Authorization: Bearer` and `?access_token=`. */
    fromHeaders: z
      .array(z.strictObject({ name: z.string().min(1), prefix: z.string().optional() }))
      .optional(),
    fromParams: nonEmptyStrings.optional(),
    fromCookies: nonEmptyStrings.optional(),
    /** Header that receives the verified payload, base64url-encoded JSON. */
    outputPayloadToHeader: z.string().min(1).optional(),
    forwardOriginalToken: z.boolean().optional(),
    outputClaimToHeaders: z
      .array(
        z.strictObject({
          header: z
            .string()
            .min(1)
            .regex(/^[-_A-Za-z0-9]+$/, 'must contain only letters, digits, "-" and "_"'),
          claim: z.string().min(1),
        }),
      )
      .optional(),
    /** JWKS fetch timeout; upstream default 5s. */
    timeout: istioDuration.optional(),
    /** Claims whose string value is a space-separated list (like `scope`). */
    spaceDelimitedClaims: nonEmptyStrings.max(64).optional(),
  })
  .superRefine((rule, ctx) => {
    if (rule.jwks !== undefined && rule.jwksUri !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['jwks'],
        message: 'only one of jwks or jwksUri can be set',
      });
    if (rule.issuer === undefined && rule.jwksUri === undefined)
      ctx.addIssue({ code: 'custom', message: 'issuer or jwksUri must be set' });
    const headers = new Set<string>();
    rule.outputClaimToHeaders?.forEach((c, i) => {
      const h = c.header.toLowerCase();
      if (headers.has(h))
        ctx.addIssue({
          code: 'custom',
          path: ['outputClaimToHeaders', i, 'header'],
          message: `header "${c.header}" is already the output of another claim`,
        });
      headers.add(h);
    });
  }, ifValid);
export type JWTRule = z.infer<typeof jwtRule>;

export const requestAuthenticationSpec = z
  .strictObject({
    selector: workloadSelector.optional(),
    targetRef: istioPolicyTargetReference.optional(),
    targetRefs: targetRefs.optional(),
    jwtRules: z.array(jwtRule).max(4096).optional(),
  })
  .superRefine(checkOneSelectorKind, ifValid);
export type RequestAuthenticationSpec = z.infer<typeof requestAuthenticationSpec>;

export const istioSecurityKinds: KindDefinition[] = [
  {
    group: ISTIO_SECURITY_GROUP,
    kind: 'PeerAuthentication',
    versions: istioVersions,
    namespaced: true,
    schema: peerAuthenticationSpec,
    specOptional: true,
  },
  {
    group: ISTIO_SECURITY_GROUP,
    kind: 'AuthorizationPolicy',
    versions: istioVersions,
    namespaced: true,
    schema: authorizationPolicySpec,
    // `spec: {}` is the documented allow-nothing policy; an omitted spec means the same.
    specOptional: true,
    unsupported: [
      {
        path: 'spec.provider',
        message:
          'external authorization providers (action CUSTOM) are not available in meshgate; the policy is not applied',
        effect: 'reject',
      },
    ],
  },
  {
    group: ISTIO_SECURITY_GROUP,
    kind: 'RequestAuthentication',
    versions: istioVersions,
    namespaced: true,
    schema: requestAuthenticationSpec,
    specOptional: true,
  },
];
