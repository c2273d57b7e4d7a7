// SecurityPolicy `authorization`: rules in order, the first whose operation and principal both
// match decides; no match means defaultAction (Deny when unset). Built once per policy.

import { BlockList, isIP } from 'node:net';
import type { AuthorizationSpec } from '../../shared/config/schemas/envoy-gateway.ts';
import { claimAt, type JwtPrincipal } from './jwt-authenticator.ts';

export interface AuthzInput {
  method: string;
  clientIP: string;
  header: (name: string) => string | undefined;
  jwt: JwtPrincipal | undefined;
}

export interface AuthzDecision {
  allow: boolean;
  /** The rule that decided ("rules[i]" or its name), or "defaultAction". */
  by: string;
}

type Predicate = (i: AuthzInput) => boolean;

export function compileAuthorization(
  spec: AuthorizationSpec,
): (input: AuthzInput) => AuthzDecision {
  const fallback: AuthzDecision = {
    allow: (spec.defaultAction ?? 'Deny') === 'Allow',
    by: 'defaultAction',
  };
  const rules = (spec.rules ?? []).map((rule, i) => {
    const checks: Predicate[] = [];
    if (rule.operation) {
      const methods = new Set<string>(rule.operation.methods);
      checks.push((x) => methods.has(x.method));
    }
    const p = rule.principal;
    if (p.clientCIDRs?.length) {
      const list = new BlockList();
      for (const c of p.clientCIDRs) {
        const [net, bits] = c.split('/');
        list.addSubnet(net as string, Number(bits), isIP(net as string) === 6 ? 'ipv6' : 'ipv4');
      }
      checks.push(
        (x) =>
          isIP(x.clientIP) !== 0 &&
          list.check(x.clientIP, isIP(x.clientIP) === 6 ? 'ipv6' : 'ipv4'),
      );
    }
    if (p.headers?.length) {
      const headers = p.headers.map((h) => ({
        name: h.name.toLowerCase(),
        values: new Set(h.values),
      }));
      checks.push((x) =>
        headers.every((h) => {
          const v = x.header(h.name);
          return v !== undefined && h.values.has(v);
        }),
      );
    }
    if (p.jwt) {
      const { provider, claims = [], scopes = [] } = p.jwt;
      checks.push((x) => {
        if (!x.jwt || x.jwt.provider !== provider) return false;
        const jwt = x.jwt;
        return (
          claims.every((c) => {
            const v = claimAt(jwt.claims, c.name);
            if (c.valueType === 'StringArray')
              return Array.isArray(v) && v.some((item) => c.values.includes(String(item)));
            return typeof v === 'string'
              ? c.values.includes(v)
              : v !== undefined && c.values.includes(String(v));
          }) && scopes.every((s) => jwt.scopes.has(s))
        );
      });
    }
    return { decision: { allow: rule.action === 'Allow', by: rule.name ?? `rules[${i}]` }, checks };
  });
  return (input) => {
    for (const r of rules) if (r.checks.every((c) => c(input))) return r.decision;
    return fallback;
  };
}
