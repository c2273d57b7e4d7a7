// Which Istio security policies select a workload. The compiler gave each policy its scope (mesh:
// root namespace, no selector; namespace: no selector; workload: selector or targetRefs); this
// file decides, for one workload, which of them apply.
//
// authorization_policy.proto, `selector`: "The selector will match with workloads in the same
// namespace as the authorization policy. If the authorization policy is in the root namespace,
// the selector will additionally match with workloads in all namespaces. If the selector and the
// targetRef are not set, the selector will match all workloads." RequestAuthentication resolves
// its workloads the same way. PeerAuthentication ignores root-namespace policies with a selector
// (see peer-authentication.ts).

import type { IstioPolicyIR, ServiceIR } from '../config/snapshot.ts';

export interface WorkloadRef {
  namespace: string;
  labels: Readonly<Record<string, string>>;
}

/** How a policy came to apply to the workload, for explain. */
export type Selection =
  | { by: 'mesh' }
  | { by: 'namespace' }
  | { by: 'selector'; labels: Record<string, string> }
  | { by: 'targetRef'; target: string };

/**
 * "Service/ns/name" of the Services whose selector picks the workload (a Service without a
 * selector picks nothing: its endpoints are managed by hand).
 */
export function servicesSelecting(
  services: readonly ServiceIR[],
  workload: WorkloadRef,
): Set<string> {
  const out = new Set<string>();
  for (const s of services) {
    if (s.namespace !== workload.namespace || !s.selector) continue;
    const entries = Object.entries(s.selector);
    if (entries.length === 0) continue;
    if (entries.every(([k, v]) => workload.labels[k] === v))
      out.add(`Service/${s.namespace}/${s.name}`);
  }
  return out;
}

/** How `policy` selects the workload, or undefined when it does not. */
export function selectionOf(
  policy: IstioPolicyIR,
  workload: WorkloadRef,
  rootNamespace: string,
  workloadServices: ReadonlySet<string>,
): Selection | undefined {
  switch (policy.scope) {
    case 'mesh':
      return { by: 'mesh' };
    case 'namespace':
      return policy.namespace === workload.namespace ? { by: 'namespace' } : undefined;
    case 'workload': {
      // meshgate's reading of targetRefs (Istio applies Service targets to waypoints only): a
      // policy that targets a Service applies to the workloads that Service selects.
      if (policy.targets) {
        const target = policy.targets.find((t) => workloadServices.has(t));
        return target ? { by: 'targetRef', target } : undefined;
      }
      if (policy.namespace !== workload.namespace && policy.namespace !== rootNamespace)
        return undefined;
      const selector = policy.selector ?? {};
      for (const [k, v] of Object.entries(selector)) if (workload.labels[k] !== v) return undefined;
      return { by: 'selector', labels: selector };
    }
  }
}

export function describeSelection(s: Selection): string {
  switch (s.by) {
    case 'mesh':
      return 'mesh-wide (root namespace)';
    case 'namespace':
      return 'namespace-wide';
    case 'selector':
      return `selector ${Object.entries(s.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}`;
    case 'targetRef':
      return `targetRef ${s.target}`;
  }
}
