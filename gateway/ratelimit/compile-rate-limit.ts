// BackendTrafficPolicy.rateLimit → what the rate-limit layer reads, compiled once per view: each
// effective policy's rules (selectors compiled once per policy), then bound to every route rule
// the policy covers, which fixes the bucket key:
//
//   <local|global>|<policy ns/name>|<rule index>|<scope>   then the distinct values, if any
//
// The policy and index are those of the policy that wrote the rule, also after a merge (route
// rules first, then the parent's: policy-merge.ts), so a parent's rule counts in the same bucket
// whichever route policy it was merged into. The scope is the route rule ("httproute/NS/NAME/
// rule/I": upstream gives each route its own counters) or "*" for a `shared` rule, whose one
// bucket serves every route the policy targets.

import type {
  BackendTrafficPolicySpec,
  RateLimitRule,
} from '../../shared/config/schemas/envoy-gateway.ts';
import type { EffectivePolicyIR, PolicyIR } from '../../shared/config/snapshot.ts';
import type { CompiledRule, EdgeView } from '../edge-view.ts';
import { policyField, sfString } from './headers.ts';
import type { FailureMode, LeaseClient } from './lease-client.ts';
import type { RateLimitRuntime } from './runtime.ts';
import { compileSelectors, type RuleSelector } from './selectors.ts';
import { UNIT_MS, type RateLimitUnit } from './window.ts';

export type RateLimitKind = 'local' | 'global';

/** One rate-limit rule as a route rule enforces it. */
export interface BoundRateLimitRule {
  /** The policy name in RateLimit-Policy and RateLimit: "<ns>/<policy>/<local|global>/<index>". */
  name: string;
  kind: RateLimitKind;
  /** Bucket key, before the distinct values. */
  key: string;
  client: LeaseClient;
  limit: number;
  unit: RateLimitUnit;
  windowMs: number;
  windowSeconds: number;
  /** Tokens a request spends; 0 only checks that the bucket is not empty. */
  requestCost: number;
  /** Tokens charged when the response is done (global rules only, as upstream). */
  responseCost: number;
  /** Counted, never enforced. */
  shadow: boolean;
  /** Whether the rule may name itself in the response headers, and in which drafts. */
  headers: 'ietf' | 'ietf+draft03' | 'none';
  /** sfString(name), and the whole RateLimit-Policy value: built once. */
  quotedName: string;
  policyField: string;
  select: RuleSelector;
}

/** A route rule's rate limits: every rule that selects a request must admit it. */
export interface RuleRateLimit {
  rules: BoundRateLimitRule[];
  failureMode: FailureMode;
  /** ms since the epoch. */
  now: () => number;
}

interface PolicyRule {
  name: string;
  kind: RateLimitKind;
  /** "<kind>|<ns>/<policy>|<index>|". */
  keyHead: string;
  shared: boolean;
  spec: RateLimitRule;
  select: RuleSelector;
}

type CompiledPolicy = { rules: PolicyRule[] } | { error: string };

/**
 * Gives every rule of the view whose BackendTrafficPolicy has a rateLimit its RuleRateLimit. A
 * rate limit that cannot be applied fails the rule closed (500), as a broken policy does.
 */
export function attachRateLimits(view: EdgeView, runtime: RateLimitRuntime): void {
  const { snapshot } = view;
  const policies = new Map(
    snapshot.policies
      .filter((p) => p.kind === 'BackendTrafficPolicy')
      .map((p) => [`${p.namespace}/${p.name}`, p]),
  );
  const compiled = new Map<string, CompiledPolicy | undefined>();
  const reported = new Set<string>();
  const report = (problem: string) => {
    if (reported.has(problem)) return;
    reported.add(problem);
    view.problems.push(problem);
  };
  for (const port of view.ports.values())
    for (const hit of port.routes)
      for (const rule of hit.rules) {
        const id = rule.backendTrafficPolicy;
        if (!id || rule.failure) continue;
        let policy = compiled.get(id);
        if (!compiled.has(id)) {
          policy = compilePolicy(snapshot.effectivePolicies[id], policies);
          compiled.set(id, policy);
        }
        if (!policy) continue;
        if ('error' in policy) {
          rule.failure = {
            code: 'MG_ERR_INVALID_CONFIG',
            detail: `BackendTrafficPolicy ${id}: ${policy.error}`,
          };
          report(`BackendTrafficPolicy ${id}: ${policy.error}; its routes answer 500`);
          continue;
        }
        if (!runtime.global && policy.rules.some((r) => r.kind === 'global'))
          report(
            `BackendTrafficPolicy ${id}: global rate limits are counted by this gateway alone (no rate-limit Redis is configured)`,
          );
        rule.rateLimit = bind(policy.rules, rule, runtime, port.clientTraffic.rateLimitHeaders);
      }
}

/**
 * `withHeaders` false: the port's ClientTrafficPolicy sets headers.disableRateLimitHeaders, and no
 * rule names itself in a response (Retry-After on a 429 stays: it is not a rate-limit field).
 */
function bind(
  rules: PolicyRule[],
  rule: CompiledRule,
  runtime: RateLimitRuntime,
  withHeaders: boolean,
): RuleRateLimit {
  return {
    failureMode: runtime.failureMode,
    now: runtime.now,
    rules: rules.map((r): BoundRateLimitRule => {
      const { limit, cost } = r.spec;
      const windowMs = UNIT_MS[limit.unit];
      const windowSeconds = windowMs / 1000;
      return {
        name: r.name,
        kind: r.kind,
        key: `${r.keyHead}${r.shared ? '*' : rule.id}|`,
        client: r.kind === 'global' ? (runtime.global ?? runtime.local) : runtime.local,
        limit: limit.requests,
        unit: limit.unit,
        windowMs,
        windowSeconds,
        requestCost: cost?.request?.number ?? 1,
        responseCost: cost?.response?.number ?? 0,
        shadow: r.spec.shadowMode === true,
        headers:
          !withHeaders || r.spec.xRateLimitHeaders === 'Disabled'
            ? 'none'
            : r.spec.xRateLimitHeaders === 'DraftVersion03'
              ? 'ietf+draft03'
              : 'ietf',
        quotedName: sfString(r.name),
        policyField: policyField(r.name, limit.requests, windowSeconds),
        select: r.select,
      };
    }),
  };
}

/** A policy's rate-limit rules with their selectors; undefined when it has none. */
export function compilePolicy(
  effective: EffectivePolicyIR | undefined,
  policies: ReadonlyMap<string, PolicyIR>,
): CompiledPolicy | undefined {
  const spec = effective?.spec as (BackendTrafficPolicySpec & { invalid?: unknown }) | undefined;
  if (!effective || !spec || spec.invalid || !spec.rateLimit) return undefined;
  const out: PolicyRule[] = [];
  for (const kind of ['local', 'global'] as const) {
    const rules = spec.rateLimit[kind]?.rules ?? [];
    const origins = ruleOrigins(effective, policies, kind);
    for (const [i, rule] of rules.entries()) {
      const origin = origins[i] as RuleOrigin;
      const where = `spec.rateLimit.${kind}.rules[${i}]`;
      if (rule.cost?.request?.from === 'Metadata' || rule.cost?.response?.from === 'Metadata')
        return {
          error: `${where}.cost: a cost from request metadata is not supported (meshgate has no dynamic metadata); use from: Number`,
        };
      if (kind === 'local' && rule.cost?.response !== undefined)
        return {
          error: `${where}.cost.response: response cost is only supported for global rate limits`,
        };
      out.push({
        name: `${origin.policy}/${kind}/${origin.index}`,
        kind,
        keyHead: `${kind}|${origin.policy}|${origin.index}|`,
        shared: rule.shared === true,
        spec: rule,
        select: compileSelectors(rule.clientSelectors),
      });
    }
  }
  return out.length > 0 ? { rules: out } : undefined;
}

interface RuleOrigin {
  /** "namespace/name" of the policy that wrote the rule. */
  policy: string;
  index: number;
}

/**
 * Which source policy each rule of a (possibly merged) effective policy comes from. A merge keeps
 * each source's rules in order (the route's, then the parent's), so each source is searched
 * from where its previous rule was found. A rule no source has (not expected) is named after
 * the effective policy itself.
 */
function ruleOrigins(
  effective: EffectivePolicyIR,
  policies: ReadonlyMap<string, PolicyIR>,
  kind: RateLimitKind,
): RuleOrigin[] {
  const merged = rulesOf(effective.spec, kind);
  if (effective.sources.length === 1)
    return merged.map((_, index) => ({ policy: effective.sources[0] as string, index }));
  const sources = effective.sources.map((key) => ({
    key,
    rules: rulesOf(policies.get(key)?.spec, kind).map((r) => JSON.stringify(r)),
    next: 0,
  }));
  return merged.map((rule, i) => {
    const text = JSON.stringify(rule);
    for (const s of sources) {
      const j = s.rules.indexOf(text, s.next);
      if (j >= 0) {
        s.next = j + 1;
        return { policy: s.key, index: j };
      }
    }
    return { policy: effective.sources.join('+'), index: i };
  });
}

function rulesOf(spec: unknown, kind: RateLimitKind): RateLimitRule[] {
  return (spec as Partial<BackendTrafficPolicySpec> | undefined)?.rateLimit?.[kind]?.rules ?? [];
}
