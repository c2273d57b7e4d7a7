import { isIP } from 'node:net';
import { z } from 'zod';

/** RFC 1123 label rules as Kubernetes applies them to object names. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(DNS_SUBDOMAIN, 'must be a lowercase RFC 1123 subdomain (a-z, 0-9, "-", ".")');

export const namespaceName = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS_LABEL, 'must be a lowercase RFC 1123 label (a-z, 0-9, "-")');

export const labels = z.record(z.string(), z.string());

/** ObjectMeta: loose, because exported manifests carry managedFields, uid and the like. */
export const objectMeta = z.looseObject({
  name: objectName,
  namespace: namespaceName.optional(),
  labels: labels.optional(),
  annotations: labels.optional(),
  creationTimestamp: z.iso.datetime({ offset: true }).optional(),
  generation: z.number().int().min(1).optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
});

export const labelSelectorRequirement = z.strictObject({
  key: z.string().min(1),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
  values: z.array(z.string()).optional(),
});

export const labelSelector = z.strictObject({
  matchLabels: labels.optional(),
  matchExpressions: z.array(labelSelectorRequirement).optional(),
});
export type LabelSelector = z.infer<typeof labelSelector>;

/** GEP-2257 duration: up to four number+unit pairs, units h, m, s, ms. */
export const gatewayDuration = z
  .string()
  .regex(
    /^([0-9]{1,5}(h|m|s|ms)){1,4}$/,
    'must be a Gateway API duration such as 10s, 1m30s or 500ms',
  );

export const portNumber = z.number().int().min(1).max(65535);

/** Hostname as Gateway API defines it: RFC 1123, optionally prefixed by one `*.` label, no IPs. */
export const gatewayHostname = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be a lowercase hostname, optionally starting with "*."',
  );

export const preciseHostname = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be a lowercase hostname without wildcard',
  );

/** Header names per RFC 7230 token rules, as Gateway API's HeaderName. */
export const headerName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/, 'must be a valid HTTP header name');

/** Cross-field rules run only on an otherwise valid object, so one typo gives one error. */
export const ifValid = { when: (payload: z.core.ParsePayload) => payload.issues.length === 0 };

/** Single IP or CIDR. */
export function isIpOrCidr(value: string): boolean {
  const slash = value.indexOf('/');
  if (slash < 0) return isIP(value) !== 0;
  const family = isIP(value.slice(0, slash));
  const bits = value.slice(slash + 1);
  if (family === 0 || !/^[0-9]{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** An API group: empty (core) or a DNS subdomain. */
export const apiGroup = z
  .string()
  .max(253)
  .regex(
    /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be empty or a DNS subdomain',
  );

export const kindName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/, 'must be a Kind name');

/** Gateway API SectionName: a listener or rule name. */
export const sectionName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'must be a lowercase RFC 1123 subdomain',
  );
