// Status in the shapes Kubernetes holds for each kind (metav1.Condition, RouteParentStatus,
// ListenerStatus, PolicyAncestorStatus), built by the compiler and printed by `validate`.

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

export interface ParentRefStatus {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface RouteParentStatus {
  parentRef: ParentRefStatus;
  controllerName: string;
  conditions: Condition[];
}

export interface ListenerStatus {
  name: string;
  supportedKinds: { group: string; kind: string }[];
  attachedRoutes: number;
  conditions: Condition[];
}

export interface PolicyAncestorStatus {
  ancestorRef: ParentRefStatus;
  controllerName: string;
  conditions: Condition[];
}

/** What `validate --json` prints for one resource. */
export interface ResourceStatus {
  apiVersion: string;
  kind: string;
  metadata: { namespace?: string; name: string; generation: number };
  status: Record<string, unknown>;
}

/** Builds conditions with one generation and one clock reading, so a compile is deterministic. */
export class ConditionFactory {
  constructor(
    private readonly generation: number,
    private readonly now: string,
  ) {}

  make(type: string, ok: boolean | 'Unknown', reason: string, message: string): Condition {
    return {
      type,
      status: ok === 'Unknown' ? 'Unknown' : ok ? 'True' : 'False',
      reason,
      message,
      observedGeneration: this.generation,
      lastTransitionTime: this.now,
    };
  }
}

/** Condition types where True is the bad news. */
const NEGATIVE_POLARITY = new Set(['Conflicted', 'PartiallyInvalid']);
/** Informational condition types: neither state is an error. */
const INFORMATIONAL = new Set(['Overridden', 'Merged', 'SupportedVersion']);

/** Whether a condition reports a problem the user must fix (what makes `validate` exit 1). */
export function isProblem(c: Pick<Condition, 'type' | 'status'>): boolean {
  if (INFORMATIONAL.has(c.type)) return false;
  if (NEGATIVE_POLARITY.has(c.type)) return c.status === 'True';
  return c.status === 'False';
}

/** Every condition anywhere in a status (gateway, its listeners, route parents, policy ancestors). */
export function allConditions(status: unknown): Condition[] {
  const out: Condition[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, child] of Object.entries(v)) {
        if (k === 'conditions' && Array.isArray(child)) out.push(...(child as Condition[]));
        else walk(child);
      }
  };
  walk(status);
  return out;
}
