// ajv for an OpenAPI document's Schema Objects. OpenAPI 3.1 schemas are JSON Schema 2020-12
// (ajv/dist/2020); 3.0 schemas are an extended subset of draft-04 (ajv-draft-04: boolean
// exclusiveMinimum/Maximum), plus `nullable`, which ajv's core understands when `type` is set.
// The whole document is registered under one id, so a schema is compiled by its JSON pointer
// and its `#/components/...` references resolve against the document, as OpenAPI means them.

import Ajv2020Module from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import Ajv04Module from 'ajv-draft-04';
import addFormatsModule from 'ajv-formats';

type AjvClass = typeof Ajv2020Module.default;
type Ajv = InstanceType<AjvClass>;
const Ajv2020 = Ajv2020Module.default;
const Ajv04 = Ajv04Module.default as unknown as AjvClass;
const addFormats = addFormatsModule.default;

export type OpenApiVersion = '3.0' | '3.1';

const DOCUMENT_ID = 'meshgate:openapi-document';

const INT32 = 2 ** 31;

/** Validators over one document: parameters (strings coerced to the schema's types) and bodies (as sent). */
export class SchemaValidators {
  private readonly params: Ajv;
  private readonly bodies: Ajv;

  constructor(
    readonly version: OpenApiVersion,
    document: Record<string, unknown>,
  ) {
    const Ajv = version === '3.1' ? Ajv2020 : Ajv04;
    const prepared = version === '3.0' ? withoutUntypedNullable(document) : document;
    // coerceTypes 'array': "5" → 5, "true" → true, and a single query value → a one-item array.
    this.params = configure(new Ajv({ strict: false, coerceTypes: 'array', logger: false }));
    this.bodies = configure(new Ajv({ strict: false, logger: false }));
    // The document is data to point into, not a schema itself: no meta-schema check on it.
    this.params.addSchema(prepared, DOCUMENT_ID, undefined, false);
    this.bodies.addSchema(prepared, DOCUMENT_ID, undefined, false);
  }

  /** A validator for the Schema Object at `pointer` ("/paths/~1pets/get/..."); throws when it does not compile. */
  parameter(pointer: string): ValidateFunction {
    return this.params.compile({ $ref: refTo(pointer) });
  }

  body(pointer: string): ValidateFunction {
    return this.bodies.compile({ $ref: refTo(pointer) });
  }
}

function configure(ajv: Ajv): Ajv {
  addFormats(ajv);
  // OpenAPI's own formats (3.0 §4.7.4 data types; 3.1 format registry).
  ajv.addFormat('int32', {
    type: 'number',
    validate: (n: number) => Number.isInteger(n) && n >= -INT32 && n < INT32,
  });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
  ajv.addFormat('binary', true);
  ajv.addFormat('password', true);
  return ajv;
}

function refTo(pointer: string): string {
  // Pointer segments may hold "{" and "}" (path templates): percent-encode them for the URI.
  return `${DOCUMENT_ID}#${pointer
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/')}`;
}

/** Keys whose values are literal data, never Schema Objects. */
const LITERAL_KEYS = new Set(['example', 'examples', 'default', 'enum', 'const']);

/**
 * OpenAPI 3.0.3 §4.7.24.1: `nullable: true` adds null only to a `type` in the same Schema Object;
 * without a type it means nothing, and ajv would refuse to compile it. A copy without those.
 */
function withoutUntypedNullable(document: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(document);
  const walk = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      node.forEach(walk);
      return;
    }
    const o = node as Record<string, unknown>;
    if (o.nullable === true && o.type === undefined) delete o.nullable;
    for (const [k, v] of Object.entries(o)) if (!LITERAL_KEYS.has(k)) walk(v);
  };
  walk(copy);
  return copy;
}

/**
 * One ajv error as `field: message`, the field named from where the data sits:
 * `query.limit: must be <= 100`, `body.items.0.sku: is required`.
 */
export function describeSchemaError(field: string, e: ErrorObject): string {
  const at = field + e.instancePath.split('/').map(unescapeSegment).join('.');
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${at}.${String(p.missingProperty)}: is required`;
    case 'additionalProperties':
      return `${at}.${String(p.additionalProperty)}: is not allowed`;
    case 'unevaluatedProperties':
      return `${at}.${String(p.unevaluatedProperty)}: is not allowed`;
    case 'enum':
      return `${at}: must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${at}: ${e.message ?? e.keyword}`;
  }
}

function unescapeSegment(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}
