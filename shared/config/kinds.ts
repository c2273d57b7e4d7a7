import type { z } from 'zod';
import type { UnsupportedFieldRule } from './resource.ts';

/**
 * One kind of the config model: how to validate it and which upstream fields meshgate
 * knows but does not implement.
 */
export interface KindDefinition {
  group: string;
  kind: string;
  /** Accepted versions; the first is the one meshgate reports. */
  versions: readonly string[];
  namespaced: boolean;
  /** Validates `spec`, or, with `topLevelBody`, the document minus apiVersion/kind/metadata/status. */
  schema: z.ZodType;
  topLevelBody?: boolean;
  /** Whether `spec` may be omitted (Namespace). */
  specOptional?: boolean;
  /**
   * Field paths (`spec.rules[].sessionPersistence`; `[]` stands for every index) that are
   * valid upstream but not implemented. Setting one is reported.
   */
  unsupported?: readonly UnsupportedFieldRule[];
}

const registry = new Map<string, KindDefinition>();
const groups = new Set<string>();

export function registerKind(def: KindDefinition): void {
  const key = `${def.group}/${def.kind}`;
  if (registry.has(key)) throw new Error(`kind ${key} registered twice`);
  registry.set(key, def);
  groups.add(def.group);
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.lastIndexOf('/');
  return slash < 0
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

export function lookupKind(apiVersion: string, kind: string): KindDefinition | undefined {
  return registry.get(`${splitApiVersion(apiVersion).group}/${kind}`);
}

/** True when meshgate owns kinds of this API group (so an unknown kind in it is worth a note). */
export function isKnownGroup(group: string): boolean {
  return groups.has(group);
}

export function registeredKinds(): KindDefinition[] {
  return [...registry.values()];
}
