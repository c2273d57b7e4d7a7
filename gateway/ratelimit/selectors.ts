// A rate-limit rule's clientSelectors, compiled once per view into one function per rule: does
// the rule apply to a request, and which bucket does it count in? The semantics are Envoy
// Gateway's (api/v1alpha1 ratelimit_types.go; the translation to Envoy descriptors):
//   - every select condition must hold, and within one every field; no condition: every request;
//   - headers and query parameters: Exact or RegularExpression (the whole value), `invert`
//     negating the match (a missing header does not match, so it matches inverted, as
//     header_value_match with expect_match=false does); Distinct: the request must carry it,
//     and each value gets its own bucket;
//   - methods: any of the listed methods, none of the inverted ones;
//   - path: Exact, PathPrefix (whole segments, as HTTPRoute matches) or RegularExpression on the
//     normalized path;
//   - sourceCIDR: the client address (after ClientTrafficPolicy's clientIPDetection) in the
//     range; Exact: the range shares one bucket, Distinct: one bucket per address.
// JWT claims select through SecurityPolicy jwt.providers[].claimToHeaders (upstream's way): the
// claim becomes a request header before this layer runs, and a header selector matches it.

import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { RateLimitSelectCondition } from '../../shared/config/schemas/envoy-gateway.ts';

/** What a selector reads from a request (EdgeRequest has all of it). */
export interface SelectableRequest {
  readonly method: string;
  /** Normalized path, without the query. */
  readonly path: string;
  /** Raw query, without "?". */
  readonly query: string;
  readonly clientIP: string;
  header(name: string): string | undefined;
}

/**
 * The rule's verdict: undefined when it does not apply, else the bucket suffix: '' for a rule
 * without Distinct selectors (one bucket), else the distinct values, each after a separator.
 */
export type RuleSelector = (r: SelectableRequest) => string | undefined;

type Check = (r: SelectableRequest) => boolean;
type Distinct = (r: SelectableRequest) => string | undefined;

/** Separates distinct values in a bucket key; header and query values cannot contain it. */
export const DISTINCT_SEPARATOR = '\u001f';
/** Longer distinct values are hashed, so a key stays short in memory and in Redis. */
const MAX_DISTINCT_LENGTH = 128;

export function compileSelectors(
  conditions: readonly RateLimitSelectCondition[] = [],
): RuleSelector {
  const checks: Check[] = [];
  const distinct: Distinct[] = [];
  for (const c of conditions) {
    for (const h of c.headers ?? []) {
      const name = h.name.toLowerCase();
      if (h.type === 'Distinct') distinct.push((r) => r.header(name));
      else checks.push(valueCheck((r) => r.header(name), h.type, h.value ?? '', h.invert));
    }
    for (const q of c.queryParams ?? []) {
      const read = (r: SelectableRequest) => queryParam(r.query, q.name);
      if (q.type === 'Distinct') distinct.push(read);
      else checks.push(valueCheck(read, q.type, q.value ?? '', q.invert));
    }
    if (c.methods && c.methods.length > 0) {
      const wanted = new Set<string>(c.methods.filter((m) => !m.invert).map((m) => m.value));
      const refused = new Set<string>(c.methods.filter((m) => m.invert).map((m) => m.value));
      checks.push((r) => (wanted.size === 0 || wanted.has(r.method)) && !refused.has(r.method));
    }
    if (c.path) checks.push(pathCheck(c.path.type, c.path.value, c.path.invert));
    if (c.sourceCIDR) {
      const inRange = cidrCheck(c.sourceCIDR.value);
      const invert = c.sourceCIDR.invert;
      if (c.sourceCIDR.type === 'Distinct')
        distinct.push((r) => (inRange(r.clientIP) !== invert ? r.clientIP : undefined));
      else checks.push((r) => inRange(r.clientIP) !== invert);
    }
  }
  const allChecks = (r: SelectableRequest) => {
    for (const check of checks) if (!check(r)) return false;
    return true;
  };
  if (distinct.length === 0) return (r) => (allChecks(r) ? '' : undefined);
  return (r) => {
    if (!allChecks(r)) return undefined;
    let suffix = '';
    for (const read of distinct) {
      const v = read(r);
      if (v === undefined) return undefined;
      suffix += DISTINCT_SEPARATOR + (v.length > MAX_DISTINCT_LENGTH ? digest(v) : v);
    }
    return suffix;
  };
}

function valueCheck(
  read: (r: SelectableRequest) => string | undefined,
  type: 'Exact' | 'RegularExpression',
  value: string,
  invert: boolean,
): Check {
  if (type === 'Exact') return (r) => (read(r) === value) !== invert;
  const re = new RegExp(`^(?:${value})$`);
  return (r) => {
    const v = read(r);
    return (v !== undefined && re.test(v)) !== invert;
  };
}

function pathCheck(
  type: 'Exact' | 'PathPrefix' | 'RegularExpression',
  value: string,
  invert: boolean,
): Check {
  switch (type) {
    case 'Exact':
      return (r) => (r.path === value) !== invert;
    case 'RegularExpression': {
      const re = new RegExp(`^(?:${value})$`);
      return (r) => re.test(r.path) !== invert;
    }
    case 'PathPrefix': {
      // Whole segments: /api matches /api and /api/x, not /apix (a trailing "/" changes nothing).
      const prefix = value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value;
      if (prefix === '/') return () => !invert;
      return (r) =>
        (r.path.startsWith(prefix) &&
          (r.path.length === prefix.length || r.path.charCodeAt(prefix.length) === 47)) !== invert;
    }
  }
}

/** Membership test for one CIDR (IPv4 or IPv6); an address of the other family is outside. */
export function cidrCheck(cidr: string): (ip: string) => boolean {
  const slash = cidr.indexOf('/');
  const net = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(net) === 6 ? 'ipv6' : 'ipv4';
  const bits = slash < 0 ? (family === 'ipv6' ? 128 : 32) : Number(cidr.slice(slash + 1));
  const list = new BlockList();
  list.addSubnet(net, bits, family);
  return (ip) => {
    const v = isIP(ip);
    if (v === 0 || (v === 6) !== (family === 'ipv6')) return false;
    return list.check(ip, family);
  };
}

/** The first value of a query parameter, decoded; undefined when absent. */
function queryParam(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  return new URLSearchParams(query).get(name) ?? undefined;
}

function digest(v: string): string {
  return `#${createHash('sha256').update(v).digest('base64url')}`;
}
