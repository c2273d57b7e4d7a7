// openapi/control-plane.yaml for tests: its operations, and validators for its response schemas
// (OpenAPI 3.1 schemas are JSON Schema 2020-12), as admin-openapi.ts does for the gateway's.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import type { OpenApiDocument } from './admin-openapi.ts';
import { REPO } from './cli.ts';

export const controlPlaneApi = parseYaml(
  readFileSync(join(REPO, 'openapi/control-plane.yaml'), 'utf8'),
) as OpenApiDocument;

/** "GET /proxies/{id}/view", … for every operation in the document. */
export function documentedOperations(): string[] {
  return Object.entries(controlPlaneApi.paths).flatMap(([path, ops]) =>
    Object.keys(ops)
      .filter((m) => m !== 'parameters')
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
}

/** fastify's "/proxies/:id/view" in OpenAPI's spelling "/proxies/{id}/view". */
export function openApiPath(fastifyPath: string): string {
  return fastifyPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat('date-time', (v: string) => !Number.isNaN(Date.parse(v)));
const retarget = (v: unknown) =>
  JSON.parse(
    JSON.stringify(v).replaceAll('"#/components/', '"control-plane#/components/'),
  ) as Record<string, unknown>;
ajv.addSchema({ $id: 'control-plane', components: retarget(controlPlaneApi.components) });
const validators = new Map<string, ValidateFunction>();

/**
 * The schema errors of a response (empty: it matches); throws when the document has no such
 * response or content type. `path` is the document's path ("/proxies/{id}/view").
 */
export function controlPlaneResponseErrors(
  method: string,
  path: string,
  status: number,
  contentType: string,
  body: unknown,
): unknown[] {
  const type = contentType.split(';')[0]?.trim() ?? '';
  const key = `${method} ${path} ${status} ${type}`;
  let validate = validators.get(key);
  if (!validate) {
    let response = controlPlaneApi.paths[path]?.[method.toLowerCase()]?.responses[String(status)];
    if (!response)
      throw new Error(`openapi/control-plane.yaml documents no ${status} for ${method} ${path}`);
    if (typeof response.$ref === 'string')
      response =
        controlPlaneApi.components.responses?.[response.$ref.split('/').pop() as string] ?? {};
    const content = response.content as Record<string, { schema: unknown }> | undefined;
    const media = content?.[type];
    if (!media) throw new Error(`${method} ${path} ${status}: ${type} is not documented`);
    validate = ajv.compile(retarget(media.schema ?? {}));
    validators.set(key, validate);
  }
  return validate(body) ? [] : [...(validate.errors ?? [])];
}
