// OpenAPI documents and ApiDefinition/HTTPRoute manifests shared by the OpenAPI tests.

import { openapiViolations } from '../../../shared/telemetry/metrics.ts';

/** OpenAPI 3.0: draft-04 semantics (boolean exclusiveMinimum, nullable). */
export const PETSTORE_30 = {
  openapi: '3.0.3',
  info: { title: 'Petstore', version: '1.0.0', description: 'Pets, for sale.' },
  // Claimed by the document; the gateway replaces these with what it enforces.
  security: [{ legacyKey: [] }],
  paths: {
    '/pets': {
      get: {
        operationId: 'listPets',
        summary: 'List all pets',
        parameters: [
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } },
          { name: 'status', in: 'query', schema: { type: 'string', enum: ['available', 'sold'] } },
          {
            name: 'tags',
            in: 'query',
            schema: { type: 'array', items: { type: 'string', maxLength: 5 } },
          },
        ],
        responses: { '200': { description: 'the pets' } },
      },
      post: {
        operationId: 'createPet',
        summary: 'Create a pet',
        security: [{ legacyKey: [] }],
        parameters: [
          {
            name: 'X-Request-Source',
            in: 'header',
            required: true,
            schema: { type: 'string', enum: ['web', 'mobile'] },
          },
        ],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/NewPet' } } },
        },
        responses: { '201': { description: 'created' } },
      },
    },
    '/pets/{petId}': {
      get: {
        operationId: 'showPet',
        parameters: [{ $ref: '#/components/parameters/PetId' }],
        responses: { '200': { description: 'the pet' } },
      },
    },
    '/pets/mine': {
      get: { operationId: 'myPets', responses: { '200': { description: 'my pets' } } },
    },
  },
  components: {
    parameters: {
      PetId: {
        name: 'petId',
        in: 'path',
        required: true,
        schema: { type: 'integer', format: 'int32' },
      },
    },
    schemas: {
      NewPet: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1 },
          tag: { type: 'string', nullable: true },
          age: { type: 'integer', minimum: 0, exclusiveMinimum: true },
        },
      },
    },
    securitySchemes: { legacyKey: { type: 'apiKey', in: 'header', name: 'x-legacy' } },
  },
};

/** OpenAPI 3.1: JSON Schema 2020-12 (type lists, numeric exclusiveMinimum). */
export const ORDERS_31 = {
  openapi: '3.1.0',
  info: { title: 'Orders', version: '2.0.0' },
  paths: {
    '/orders/{orderId}': {
      parameters: [
        { name: 'orderId', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } },
      ],
      put: {
        operationId: 'putOrder',
        parameters: [{ name: 'session', in: 'cookie', schema: { type: 'string', pattern: '^s-' } }],
        requestBody: {
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Order' } } },
        },
        responses: { '200': { description: 'stored' } },
      },
    },
  },
  components: {
    schemas: {
      Order: {
        type: 'object',
        required: ['items'],
        properties: {
          note: { type: ['string', 'null'] },
          items: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['sku', 'qty'],
              properties: {
                sku: { type: 'string' },
                qty: { type: 'integer', exclusiveMinimum: 0 },
              },
            },
          },
        },
      },
    },
  },
};

export function routeYaml(name: string, prefix: string, parents = '[{ name: edge }]'): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: api }
spec:
  parentRefs: ${parents}
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${prefix} } }]
      backendRefs: [{ name: app, port: 80 }]`;
}

/** An ApiDefinition; `spec` is YAML for the lines after targetRef (indented two spaces). */
export function apiYaml(name: string, route: string, spec: string): string {
  return `apiVersion: meshgate.io/v1alpha1
kind: ApiDefinition
metadata: { name: ${name}, namespace: api }
spec:
  targetRef: { name: ${route} }
${spec}`;
}

/** `source: { inline: … }` with a document written as JSON (which is YAML). */
export function inline(doc: unknown): string {
  return `  source:\n    inline: ${JSON.stringify(doc)}`;
}

/** The counter's current value for one label set. */
export async function violations(api: string, operation: string, location: string) {
  const metric = await openapiViolations.get();
  return (
    metric.values.find(
      (v) =>
        v.labels.api === api && v.labels.operation === operation && v.labels.location === location,
    )?.value ?? 0
  );
}
