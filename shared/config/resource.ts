/** Where a resource (or one of its fields) came from, so every message can point at the file. */
export interface SourceLocation {
  file: string;
  /** 1-based index of the YAML document in the file. */
  doc: number;
  line: number;
  col: number;
}

/** A field path as zod and the YAML AST see it. */
export type FieldPath = readonly (string | number)[];

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  generation?: number;
  uid?: string;
  resourceVersion?: string;
}

/** A field that upstream defines and meshgate does not implement; reported, never dropped silently. */
export interface UnsupportedField {
  path: string;
  message: string;
  /** `reject`: the resource (or rule) is not accepted; `ignore`: accepted, the field has no effect. */
  effect: 'reject' | 'ignore';
}

/** How a kind declares an unsupported field; `when` limits it to values that matter (default: any value). */
export interface UnsupportedFieldRule extends UnsupportedField {
  when?: (value: unknown) => boolean;
}

export interface Resource<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta & { namespace: string };
  spec: Spec;
  /** Raw `data`/`stringData`/`type` for kinds that carry no spec (Secret). */
  data?: Record<string, string>;
  type?: string;
  source: SourceLocation;
  /** Finds the line and column of a field, for errors raised after parsing. */
  locate(path: FieldPath): SourceLocation;
  unsupported: UnsupportedField[];
}

export function resourceKey(kind: string, namespace: string, name: string): string {
  return namespace ? `${kind}/${namespace}/${name}` : `${kind}/${name}`;
}

export function keyOf(r: Pick<Resource, 'kind' | 'metadata'>): string {
  return resourceKey(r.kind, r.metadata.namespace, r.metadata.name);
}

export function formatPath(path: FieldPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file} doc ${loc.doc} (${loc.line}:${loc.col})`;
}
