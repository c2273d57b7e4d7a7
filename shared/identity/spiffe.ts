// SPIFFE ids (standards/SPIFFE-ID.md of the SPIFFE project) and Istio's principal form of them.
// A workload's id is `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`; Istio's
// AuthorizationPolicy names the same identity without the scheme: `<trust-domain>/ns/<ns>/sa/<sa>`.
//
// Parsing is strict, as go-spiffe's is: only the canonical spelling of an id is accepted, so that
// two strings never name one identity (SPIFFE-ID §4: equality must be a string comparison).

import { IdentityError } from './errors.ts';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

const SCHEME_PREFIX = 'spiffe://';
/** SPIFFE-ID §2.3: implementations must support ids up to 2048 bytes and should not make longer. */
const MAX_ID_LENGTH = 2048;
/** SPIFFE-ID §2.3: RFC 3986 caps the host at 255 characters. */
const MAX_TRUST_DOMAIN_LENGTH = 255;
/** §2.1: lowercase letters, digits, dots, dashes, underscores; no percent-encoding, port or userinfo. */
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
/** §2.2: each path segment holds letters, digits, dots, dashes, underscores. */
const SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;

/** A parsed SPIFFE id: the trust domain and the path (`''` or `/seg/seg…`). */
export interface SpiffeId {
  trustDomain: string;
  path: string;
}

/** A mesh workload's identity: a Kubernetes service account in a namespace of a trust domain. */
export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** The parts a caller names; the trust domain defaults to `cluster.local`. */
export interface WorkloadIdentityInput {
  namespace: string;
  serviceAccount: string;
  trustDomain?: string;
}

function invalid(value: string, reason: string): IdentityError {
  return new IdentityError('MG_ERR_SPIFFE_ID_INVALID', `${JSON.stringify(value)}: ${reason}`);
}

/** Why `td` is not a valid trust domain name, or undefined when it is. */
export function trustDomainProblem(td: string): string | undefined {
  if (td === '') return 'the trust domain is missing';
  if (td.length > MAX_TRUST_DOMAIN_LENGTH)
    return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  if (td.includes('%')) return 'the trust domain must not contain percent-encoded characters';
  if (td.includes('@')) return 'the trust domain must not contain userinfo';
  if (td.startsWith('[')) return 'an IPv6 address is not a valid trust domain (§2.1)';
  if (td.includes(':')) return 'the trust domain must not contain a port';
  if (!TRUST_DOMAIN_CHARS.test(td))
    return 'trust domain characters are limited to lowercase letters, digits, dots, dashes and underscores';
  return undefined;
}

/** Why `segment` is not a valid SPIFFE path segment, or undefined when it is. */
export function pathSegmentProblem(segment: string): string | undefined {
  if (segment === '') return 'the path must not contain empty segments';
  if (segment === '.' || segment === '..')
    return 'the path must not contain dot segments ("." or "..")';
  if (segment.includes('%')) return 'the path must not contain percent-encoded characters';
  if (!SEGMENT_CHARS.test(segment))
    return 'path segment characters are limited to letters, digits, dots, dashes and underscores';
  return undefined;
}

/** Parses any SPIFFE id (not only workload ids), strictly. Throws MG_ERR_SPIFFE_ID_INVALID. */
export function parseSpiffeId(id: string): SpiffeId {
  if (id === '') throw invalid(id, 'a SPIFFE id cannot be empty');
  if (id.length > MAX_ID_LENGTH) throw invalid(id, `longer than ${MAX_ID_LENGTH} characters`);
  if (!id.startsWith(SCHEME_PREFIX)) {
    if (/^spiffe:\/\//i.test(id)) throw invalid(id, 'the scheme must be lowercase "spiffe"');
    throw invalid(id, 'the scheme must be "spiffe://"');
  }
  const rest = id.slice(SCHEME_PREFIX.length);
  if (rest.includes('?')) throw invalid(id, 'a SPIFFE id must not have a query');
  if (rest.includes('#')) throw invalid(id, 'a SPIFFE id must not have a fragment');
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) throw invalid(id, tdProblem);
  if (path !== '') {
    if (path === '/' || path.endsWith('/'))
      throw invalid(id, 'the path must not have a trailing "/"');
    for (const segment of path.slice(1).split('/')) {
      const problem = pathSegmentProblem(segment);
      if (problem) throw invalid(id, problem);
    }
  }
  return { trustDomain, path };
}

/** Whether `id` is a valid SPIFFE id. */
export function isSpiffeId(id: string): boolean {
  try {
    parseSpiffeId(id);
    return true;
  } catch {
    return false;
  }
}

/** `spiffe://td/seg/…` from a trust domain and path segments, each checked as the parser would. */
export function formatSpiffeId(trustDomain: string, segments: readonly string[] = []): string {
  const id = `${SCHEME_PREFIX}${trustDomain}${segments.map((s) => `/${s}`).join('')}`;
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) throw invalid(id, tdProblem);
  for (const s of segments) {
    if (s.includes('/')) throw invalid(id, `path segment ${JSON.stringify(s)} contains "/"`);
    const problem = pathSegmentProblem(s);
    if (problem) throw invalid(id, problem);
  }
  if (id.length > MAX_ID_LENGTH) throw invalid(id, `longer than ${MAX_ID_LENGTH} characters`);
  return id;
}

/** `spiffe://<td>/ns/<namespace>/sa/<service-account>`; the trust domain defaults to cluster.local. */
export function workloadSpiffeId(identity: WorkloadIdentityInput): string {
  return formatSpiffeId(identity.trustDomain ?? DEFAULT_TRUST_DOMAIN, [
    'ns',
    identity.namespace,
    'sa',
    identity.serviceAccount,
  ]);
}

/** Parses a workload id: a valid SPIFFE id whose path is exactly `/ns/<ns>/sa/<sa>`. */
export function parseWorkloadSpiffeId(id: string): WorkloadIdentity {
  const { trustDomain, path } = parseSpiffeId(id);
  const parts = path.split('/');
  // ['', 'ns', NS, 'sa', SA]
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa')
    throw invalid(id, 'a workload id has the path /ns/<namespace>/sa/<service-account>');
  return { trustDomain, namespace: parts[2] as string, serviceAccount: parts[4] as string };
}

/** Istio's principal: `<td>/ns/<namespace>/sa/<service-account>`. */
export function formatPrincipal(identity: WorkloadIdentityInput): string {
  return workloadSpiffeId(identity).slice(SCHEME_PREFIX.length);
}

/** Parses an Istio principal `<td>/ns/<ns>/sa/<sa>` (no scheme) with the SPIFFE id's rules. */
export function parsePrincipal(principal: string): WorkloadIdentity {
  if (principal.includes('://'))
    throw invalid(principal, 'a principal has no scheme: <trust-domain>/ns/<ns>/sa/<sa>');
  return parseWorkloadSpiffeId(`${SCHEME_PREFIX}${principal}`);
}

/** `spiffe://cluster.local/ns/a/sa/b` → `cluster.local/ns/a/sa/b`. */
export function spiffeIdToPrincipal(id: string): string {
  parseWorkloadSpiffeId(id);
  return id.slice(SCHEME_PREFIX.length);
}

/** `cluster.local/ns/a/sa/b` → `spiffe://cluster.local/ns/a/sa/b`. */
export function principalToSpiffeId(principal: string): string {
  parsePrincipal(principal);
  return `${SCHEME_PREFIX}${principal}`;
}

/**
 * A workload identity in either spelling (SPIFFE id or principal) as its SPIFFE id, so sets of
 * expected identities can be written either way.
 */
export function toWorkloadSpiffeId(idOrPrincipal: string): string {
  if (!idOrPrincipal.includes('://')) return principalToSpiffeId(idOrPrincipal);
  parseWorkloadSpiffeId(idOrPrincipal);
  return idOrPrincipal;
}

/** Kubernetes namespace names are DNS-1123 labels. */
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Kubernetes service account names are DNS-1123 subdomains. */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `ns` is not a Kubernetes namespace name (a DNS-1123 label), or undefined. */
export function namespaceProblem(ns: string): string | undefined {
  if (ns.length === 0 || ns.length > 63 || !DNS1123_LABEL.test(ns))
    return `namespace ${JSON.stringify(ns)} must be a DNS-1123 label: lowercase letters, digits and "-", at most 63 characters`;
  return undefined;
}

/** Why `sa` is not a Kubernetes service account name (a DNS-1123 subdomain), or undefined. */
export function serviceAccountProblem(sa: string): string | undefined {
  if (sa.length === 0 || sa.length > 253 || !DNS1123_SUBDOMAIN.test(sa))
    return `service account ${JSON.stringify(sa)} must be a DNS-1123 subdomain: lowercase letters, digits, "-" and ".", at most 253 characters`;
  return undefined;
}
