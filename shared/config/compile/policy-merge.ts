// The two mergeType strategies of Envoy Gateway policies: a route-level policy with mergeType
// is laid over the closest parent policy (listener, else gateway). Upstream runs
// internal/utils/merge.go on the whole objects: JSONMerge is RFC 7386, StrategicMerge is
// Kubernetes' strategic merge patch driven by the Go struct tags of the policy types.

export type MergeType = 'StrategicMerge' | 'JSONMerge';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** RFC 7386 JSON Merge Patch: objects merge key by key, `null` deletes, anything else replaces. */
export function jsonMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = jsonMergePatch(out[key], value);
  }
  return out;
}

/**
 * How strategic merge treats a list, by field path ("a.b.c", list indexes left out). A list not
 * named here is replaced, as strategic merge does for lists without a patchMergeKey.
 */
export type ListStrategy = 'append';

/**
 * Lists that upstream merges rather than replaces. Upstream merges the rate-limit rules of the
 * two policies in its IR, where every rule is keyed "<policy-ns>/<policy-name>/rule/<index>", so
 * the keys never collide and both sets survive: the route's rules first, then the parent's
 * (backendtrafficpolicy.go translateBackendTrafficPolicyForRouteWithMerge; utils testdata
 * backendtrafficpolicy_ratelimitrule_merge.strategicmerge.out.yaml).
 */
export const POLICY_LIST_STRATEGIES: Readonly<Record<string, ListStrategy>> = {
  'rateLimit.global.rules': 'append',
  'rateLimit.local.rules': 'append',
};

/**
 * Kubernetes strategic merge patch, restricted to what policy specs need: maps merge recursively,
 * an explicit `null` deletes the key, scalars and lists are replaced, and a list named in
 * `lists` with 'append' keeps the patch's items followed by the original's. Patch directives
 * ($patch, $retainKeys) are not interpreted; the policy schemas refuse such keys anyway.
 */
export function strategicMergePatch(
  original: unknown,
  patch: unknown,
  lists: Readonly<Record<string, ListStrategy>> = {},
  path = '',
): unknown {
  if (Array.isArray(patch)) {
    if (lists[path] === 'append' && Array.isArray(original))
      return [...structuredClone(patch), ...structuredClone(original)];
    return structuredClone(patch);
  }
  if (!isPlainObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isPlainObject(original) ? { ...original } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = strategicMergePatch(out[key], value, lists, path ? `${path}.${key}` : key);
  }
  return out;
}

/** The route-level policy's spec laid over its parent's, as mergeType asks. */
export function mergePolicySpecs(parent: unknown, child: unknown, mergeType: MergeType): unknown {
  return mergeType === 'JSONMerge'
    ? jsonMergePatch(parent, child)
    : strategicMergePatch(parent, child, POLICY_LIST_STRATEGIES);
}
