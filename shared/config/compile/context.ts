import { keyOf, type Resource } from '../resource.ts';
import type { ReferenceGrantSpec } from '../schemas/gateway-api.ts';
import { ConditionFactory, type ResourceStatus } from './conditions.ts';

export const DEFAULT_CONTROLLER_NAME = 'meshgate.io/gateway-controller';
export const DEFAULT_ROOT_NAMESPACE = 'meshgate-system';

export interface CompileOptions {
  controllerName?: string;
  /** Istio's root namespace: a security policy here without a selector applies mesh-wide. */
  rootNamespace?: string;
  /** The clock for lastTransitionTime; injectable so golden files are stable. */
  now?: Date;
  /**
   * Reads a file of the config folder by its relative path (undefined: no such file), for
   * documents that resources name by file (ApiDefinition source.file). Without it such files are
   * not read and nothing that depends on them is embedded.
   */
  readFile?: (relativePath: string) => string | undefined;
}

export interface ObjectRef {
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

/** Everything a compile step needs: indexes over the parsed resources and the status being written. */
export class CompileContext {
  readonly controllerName: string;
  readonly rootNamespace: string;
  readonly now: string;
  private readonly byKind = new Map<string, Map<string, Resource>>();
  private readonly statuses = new Map<string, ResourceStatus>();

  constructor(
    readonly resources: readonly Resource[],
    options: CompileOptions = {},
  ) {
    this.controllerName = options.controllerName ?? DEFAULT_CONTROLLER_NAME;
    this.rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
    this.now = (options.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (const r of resources) {
      let m = this.byKind.get(r.kind);
      if (!m) this.byKind.set(r.kind, (m = new Map()));
      m.set(`${r.metadata.namespace}/${r.metadata.name}`, r);
    }
  }

  get<Spec>(kind: string, namespace: string, name: string): Resource<Spec> | undefined {
    return this.byKind.get(kind)?.get(`${namespace}/${name}`) as Resource<Spec> | undefined;
  }

  /** Resources of a kind, in namespace/name order so every step is deterministic. */
  list<Spec>(kind: string): Resource<Spec>[] {
    const m = this.byKind.get(kind);
    if (!m) return [];
    return [...m.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r as Resource<Spec>);
  }

  /** Labels of a namespace; Kubernetes always adds kubernetes.io/metadata.name. */
  namespaceLabels(namespace: string): Record<string, string> {
    const ns = this.get('Namespace', '', namespace);
    return { ...(ns?.metadata.labels ?? {}), 'kubernetes.io/metadata.name': namespace };
  }

  /** A cross-namespace reference is allowed by a ReferenceGrant in the target's namespace. */
  referenceAllowed(from: Omit<ObjectRef, 'name'>, to: ObjectRef): boolean {
    if (from.namespace === to.namespace) return true;
    for (const grant of this.list<ReferenceGrantSpec>('ReferenceGrant')) {
      if (grant.metadata.namespace !== to.namespace) continue;
      const fromOk = grant.spec.from.some(
        (f) => f.group === from.group && f.kind === from.kind && f.namespace === from.namespace,
      );
      if (!fromOk) continue;
      const toOk = grant.spec.to.some(
        (t) =>
          normalizeCoreGroup(t.group) === normalizeCoreGroup(to.group) &&
          t.kind === to.kind &&
          (t.name === undefined || t.name === to.name),
      );
      if (toOk) return true;
    }
    return false;
  }

  conditions(r: Resource): ConditionFactory {
    return new ConditionFactory(r.metadata.generation ?? 1, this.now);
  }

  setStatus(r: Resource, status: Record<string, unknown>): void {
    this.statuses.set(keyOf(r), {
      apiVersion: r.apiVersion,
      kind: r.kind,
      metadata: {
        ...(r.metadata.namespace ? { namespace: r.metadata.namespace } : {}),
        name: r.metadata.name,
        generation: r.metadata.generation ?? 1,
      },
      status,
    });
  }

  getStatus(r: Resource): Record<string, unknown> | undefined {
    return this.statuses.get(keyOf(r))?.status;
  }

  allStatuses(): ResourceStatus[] {
    return [...this.statuses.values()];
  }
}

/** The core API group is written "" or "core". */
export function normalizeCoreGroup(group: string | undefined): string {
  return group === 'core' ? '' : (group ?? '');
}
