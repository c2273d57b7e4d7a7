// openapi/admin.yaml for tests: its paths, and validators for its response schemas (OpenAPI 3.1
// schemas are JSON Schema 2020-12).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { REPO } from './cli.ts';

export interface OpenApiDocument {
  paths: Record<string, Record<string, { responses: Record<string, Record<string, unknown>> }>>;
  components: { responses?: Record<string, Record<string, unknown>>; schemas?: unknown };
}

export const adminApi = parseYaml(
  readFileSync(join(REPO, 'openapi/admin.yaml'), 'utf8'),
) as OpenApiDocument;

/** "GET /ready", … for every operation in the document. */
export function documentedRoutes(doc: OpenApiDocument = adminApi): string[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
  );
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat('date-time', (v: string) => !Number.isNaN(Date.parse(v)));
// Local refs ("#/components/…") point into the document; it is registered under an id.
const retarget = (v: unknown) =>
  JSON.parse(JSON.stringify(v).replaceAll('"#/components/', '"admin#/components/')) as Record<
    string,
    unknown
  >;
ajv.addSchema({ $id: 'admin', components: retarget(adminApi.components) });
const validators = new Map<string, ValidateFunction>();

/** The schema errors of a GET response (empty: it matches); throws when it is not documented. */
export function responseErrors(path: string, status: number, body: unknown): unknown[] {
  const key = `${path} ${status}`;
  let validate = validators.get(key);
  if (!validate) {
    let response = adminApi.paths[path]?.get?.responses[String(status)];
    if (!response) throw new Error(`openapi/admin.yaml documents no ${status} for GET ${path}`);
    if (typeof response.$ref === 'string')
      response = adminApi.components.responses?.[response.$ref.split('/').pop() as string] ?? {};
    const content = response.content as Record<string, { schema: unknown }> | undefined;
    validate = ajv.compile(retarget(content?.['application/json']?.schema ?? {}));
    validators.set(key, validate);
  }
  return validate(body) ? [] : [...(validate.errors ?? [])];
}
