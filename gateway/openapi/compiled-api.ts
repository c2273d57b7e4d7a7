// One OpenAPI document compiled for request validation: its path templates, and for each
// operation the parameters and request body with their ajv validators. Built once per document
// version (views share it while the document's hash is unchanged); the request path only reads it.

import type { ValidateFunction } from 'ajv';
import { PathTemplates } from './path-templates.ts';
import { SchemaValidators, type OpenApiVersion } from './schema-validators.ts';

export type ParameterLocation = 'path' | 'query' | 'header' | 'cookie';

export interface CompiledParameter {
  name: string;
  in: ParameterLocation;
  required: boolean;
  /** How the raw text is split (OpenAPI §4.8.12.4 style values). */
  shape: 'primitive' | 'array' | 'object';
  style: string;
  explode: boolean;
  /** `content: application/json` instead of `schema`: the value is JSON text. */
  json: boolean;
  /** form + explode objects: the schema's property names, each its own query parameter. */
  properties: string[];
  validate: ValidateFunction | undefined;
}

export interface CompiledMedia {
  /** Lowercase media range as the document writes it ("application/json", "application/*"). */
  range: string;
  /** Set for JSON (or wildcard) ranges with a schema. */
  validate: ValidateFunction | undefined;
}

export interface CompiledBody {
  required: boolean;
  media: CompiledMedia[];
}

export interface CompiledOperation {
  /** Metric label: the operationId, else "GET /pets/{petId}". */
  id: string;
  template: string;
  parameters: CompiledParameter[];
  body: CompiledBody | undefined;
  /** A schema that does not compile: the operation cannot be checked (fails closed when enforced). */
  invalid: string | undefined;
}

export type OperationLookup =
  | { kind: 'operation'; operation: CompiledOperation; params: Record<string, string> }
  | { kind: 'method-not-allowed'; template: string; allowed: string[] }
  | { kind: 'no-path' };

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Request headers OpenAPI says a header parameter must not describe (§4.8.12.1). */
const IGNORED_HEADERS = new Set(['accept', 'content-type', 'authorization']);

type Json = Record<string, unknown>;

export class CompiledApi {
  readonly version: OpenApiVersion;
  /** Schemas that did not compile, for the view's problems. */
  readonly problems: string[] = [];
  private readonly templates: PathTemplates<Map<string, CompiledOperation>>;

  constructor(
    readonly hash: string,
    document: Json,
  ) {
    this.version = String(document.openapi).startsWith('3.1.') ? '3.1' : '3.0';
    const validators = new SchemaValidators(this.version, document);
    const paths: [string, Map<string, CompiledOperation>][] = [];
    for (const [template, rawItem] of Object.entries(asObject(document.paths))) {
      const itemAt = deref(document, rawItem, `/paths/${escape(template)}`);
      const item = asObject(itemAt.node);
      const operations = new Map<string, CompiledOperation>();
      for (const method of METHODS) {
        const op = asObject(item[method]);
        if (!item[method]) continue;
        const compiled = compileOperation(
          document,
          validators,
          template,
          method,
          op,
          `${itemAt.pointer}/${method}`,
          item.parameters,
          `${itemAt.pointer}/parameters`,
        );
        if (compiled.invalid) this.problems.push(compiled.invalid);
        operations.set(method.toUpperCase(), compiled);
      }
      paths.push([template, operations]);
    }
    this.templates = new PathTemplates(paths);
  }

  /** The operation for a method and a path relative to the API's base path. */
  lookup(method: string, path: string): OperationLookup {
    const m = this.templates.match(path);
    if (!m) return { kind: 'no-path' };
    // HEAD is answered like GET when the document leaves it out (RFC 9110 §9.3.2).
    const operation = m.value.get(method) ?? (method === 'HEAD' ? m.value.get('GET') : undefined);
    if (!operation)
      return { kind: 'method-not-allowed', template: m.template, allowed: [...m.value.keys()] };
    return { kind: 'operation', operation, params: m.params };
  }
}

function compileOperation(
  doc: Json,
  validators: SchemaValidators,
  template: string,
  method: string,
  op: Json,
  at: string,
  itemParameters: unknown,
  itemParametersAt: string,
): CompiledOperation {
  const id =
    typeof op.operationId === 'string' ? op.operationId : `${method.toUpperCase()} ${template}`;
  const out: CompiledOperation = {
    id,
    template,
    parameters: [],
    body: undefined,
    invalid: undefined,
  };
  try {
    // Operation parameters override path-item ones with the same name and location.
    const byKey = new Map<string, CompiledParameter>();
    const add = (list: unknown, listAt: string) => {
      if (!Array.isArray(list)) return;
      list.forEach((raw, i) => {
        const p = compileParameter(doc, validators, raw, `${listAt}/${i}`);
        if (p) byKey.set(`${p.in}:${p.in === 'header' ? p.name.toLowerCase() : p.name}`, p);
      });
    };
    add(itemParameters, itemParametersAt);
    add(op.parameters, `${at}/parameters`);
    out.parameters = [...byKey.values()];
    if (op.requestBody !== undefined)
      out.body = compileBody(doc, validators, op.requestBody, `${at}/requestBody`);
  } catch (err) {
    out.invalid = `operation ${id}: a schema cannot be compiled: ${(err as Error).message}`;
  }
  return out;
}

function compileParameter(
  doc: Json,
  validators: SchemaValidators,
  raw: unknown,
  rawAt: string,
): CompiledParameter | undefined {
  const { node, pointer } = deref(doc, raw, rawAt);
  const p = asObject(node);
  const location = p.in as ParameterLocation;
  const name = String(p.name);
  if (!['path', 'query', 'header', 'cookie'].includes(location)) return undefined;
  if (location === 'header' && IGNORED_HEADERS.has(name.toLowerCase())) return undefined;
  const style =
    typeof p.style === 'string'
      ? p.style
      : location === 'query' || location === 'cookie'
        ? 'form'
        : 'simple';
  const explode = typeof p.explode === 'boolean' ? p.explode : style === 'form';
  let schemaAt: string | undefined;
  let json = false;
  if (p.schema !== undefined) schemaAt = `${pointer}/schema`;
  else {
    const [type, media] = Object.entries(asObject(p.content))[0] ?? [];
    if (type && isJsonMediaType(type) && asObject(media).schema !== undefined) {
      schemaAt = `${pointer}/content/${escape(type)}/schema`;
      json = true;
    }
  }
  const schema = schemaAt ? asObject(deref(doc, pointerValue(doc, schemaAt), schemaAt).node) : {};
  const shape = json ? 'primitive' : shapeOf(schema);
  return {
    name,
    in: location,
    required: location === 'path' || p.required === true,
    shape,
    style,
    explode,
    json,
    properties: shape === 'object' ? Object.keys(asObject(schema.properties)) : [],
    validate: schemaAt ? validators.parameter(schemaAt) : undefined,
  };
}

function compileBody(
  doc: Json,
  validators: SchemaValidators,
  raw: unknown,
  rawAt: string,
): CompiledBody {
  const { node, pointer } = deref(doc, raw, rawAt);
  const b = asObject(node);
  const media: CompiledMedia[] = Object.entries(asObject(b.content)).map(([range, m]) => {
    // Only JSON bodies are checked against a schema (a range such as */* when the request's
    // Content-Type is JSON); others stream through unbuffered.
    const checkable = isJsonMediaType(range) || range.includes('*');
    return {
      range: (range.split(';')[0] ?? '').trim().toLowerCase(),
      validate:
        checkable && asObject(m).schema !== undefined
          ? validators.body(`${pointer}/content/${escape(range)}/schema`)
          : undefined,
    };
  });
  return { required: b.required === true, media };
}

function shapeOf(schema: Json): CompiledParameter['shape'] {
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.includes('array') || (schema.type === undefined && schema.items !== undefined))
    return 'array';
  if (types.includes('object') || (schema.type === undefined && schema.properties !== undefined))
    return 'object';
  return 'primitive';
}

export function isJsonMediaType(type: string): boolean {
  const t = (type.split(';')[0] ?? '').trim().toLowerCase();
  return t === 'application/json' || t.endsWith('+json');
}

/** Follows `$ref`s (checked to resolve when the document was loaded) to the object they name. */
function deref(doc: Json, node: unknown, at: string): { node: unknown; pointer: string } {
  let pointer = at;
  for (let i = 0; i < 32; i++) {
    const ref = (node as { $ref?: unknown } | undefined)?.$ref;
    if (typeof ref !== 'string' || !ref.startsWith('#')) break;
    pointer = ref.slice(1);
    node = pointerValue(doc, pointer);
  }
  return { node, pointer };
}

function pointerValue(doc: Json, pointer: string): unknown {
  let node: unknown = doc;
  for (const raw of pointer.split('/').slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = node && typeof node === 'object' ? (node as Json)[key] : undefined;
  }
  return node;
}

function asObject(v: unknown): Json {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
}

function escape(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}
