// Istio's string matching for AuthorizationPolicy fields, compiled once per policy.
//
// authorization_policy.proto, message Rule: "Any string field in the rule supports Exact, Prefix,
// Suffix and Presence match: Exact match: "abc" will match on value "abc". Prefix match: "abc*"
// will match on value "abc" and "abcd". Suffix match: "*abc" will match on value "abc" and
// "xabc". Presence match: "*" will match when value is not empty."
//
// The order of the tests is Istio's (pilot matcher.StringMatcherWithPrefix): "*" first, then a
// leading "*" (suffix), then a trailing "*" (prefix); "*a*" is therefore the suffix "a*".

/** Tests one attribute value; `undefined` means the attribute is absent. */
export type ValueMatcher = (value: string | undefined) => boolean;

export interface StringMatchOptions {
  /** Hosts are matched case-insensitively ("The match is case-insensitive"). */
  ignoreCase?: boolean;
}

export function istioStringMatcher(
  pattern: string,
  options: StringMatchOptions = {},
): ValueMatcher {
  const fold = options.ignoreCase === true;
  if (pattern === '*') return (v) => v !== undefined && v.length > 0;
  if (pattern.startsWith('*')) {
    const suffix = fold ? pattern.slice(1).toLowerCase() : pattern.slice(1);
    return fold
      ? (v) => v !== undefined && v.toLowerCase().endsWith(suffix)
      : (v) => v !== undefined && v.endsWith(suffix);
  }
  if (pattern.endsWith('*')) {
    const prefix = fold ? pattern.slice(0, -1).toLowerCase() : pattern.slice(0, -1);
    return fold
      ? (v) => v !== undefined && v.toLowerCase().startsWith(prefix)
      : (v) => v !== undefined && v.startsWith(prefix);
  }
  if (fold) {
    const exact = pattern.toLowerCase();
    return (v) => v !== undefined && v.length === exact.length && v.toLowerCase() === exact;
  }
  return (v) => v === pattern;
}

/** One matcher for a list of patterns: true when any pattern matches (the lists are ORed). */
export function anyOf(matchers: readonly ValueMatcher[]): ValueMatcher {
  if (matchers.length === 1) return matchers[0] as ValueMatcher;
  return (v) => {
    for (const m of matchers) if (m(v)) return true;
    return false;
  };
}

/** Istio (security.ContainsPathTemplate): a path with `{*}` or `{**}` is an Envoy URI template. */
export function isPathTemplate(path: string): boolean {
  return path.includes('{*}') || path.includes('{**}');
}

// Envoy's uri_template matcher (uri_template_internal.cc): `{*}` is `[<literal>]+`, one non-empty
// path segment; `{**}` is `[<literal>/]*`, any run of characters including "/" and the empty
// string. The literal set is pchar without "*" (unreserved, pct-encoded, sub-delims but "*", ":",
// "@"). Istio's integration test: "/allow/admin/{**}" matches "/allow/admin/" and
// "/allow/admin/temp.txt" but not "/allow/admin"; "/store/{**}/cart" matches "/store//cart" but
// not "/store/cart".
const LITERAL = "A-Za-z0-9\\-._~%!$&'()+,;:@=";

function templateRegex(template: string): RegExp {
  let source = '^';
  let rest = template;
  while (rest.length > 0) {
    const one = rest.indexOf('{*}');
    const many = rest.indexOf('{**}');
    const next = one === -1 ? many : many === -1 ? one : Math.min(one, many);
    if (next === -1) {
      source += escapeRegex(rest);
      break;
    }
    source += escapeRegex(rest.slice(0, next));
    if (next === many) {
      source += `[${LITERAL}/]*`;
      rest = rest.slice(next + 4);
    } else {
      source += `[${LITERAL}]+`;
      rest = rest.slice(next + 3);
    }
  }
  return new RegExp(`${source}$`);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * A `paths`/`notPaths` entry: a URI template when it holds `{*}`/`{**}`, else Istio's string
 * match. Paths are compared without the query (Envoy's url_path), case-sensitively.
 */
export function pathMatcher(pattern: string): ValueMatcher {
  if (!isPathTemplate(pattern)) return istioStringMatcher(pattern);
  const re = templateRegex(pattern);
  return (v) => v !== undefined && re.test(v);
}
