import { describe, expect, it } from 'vitest';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import type { ApiDefinitionSpec } from '../../shared/config/schemas/meshgate.ts';

function parse(text: string) {
  return parseTexts([{ file: 'api.yaml', text }]);
}

function specs(text: string): ApiDefinitionSpec[] {
  const result = parse(text);
  expect(result.errors.map(formatConfigError)).toEqual([]);
  return result.resources.map((r) => r.spec as ApiDefinitionSpec);
}

/** `path (line:col): message` for each error. */
function errorsOf(text: string): string[] {
  return parse(text).errors.map(
    (e) => `${e.path} (${e.location.line}:${e.location.col}): ${e.message}`,
  );
}

const HEADER = `apiVersion: meshgate.io/v1alpha1
kind: ApiDefinition
metadata:
  name: orders
  namespace: shop
spec:`;

describe('ApiDefinition', () => {
  it('parses a full definition', () => {
    const [spec] = specs(`${HEADER}
  targetRef:
    group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: orders
    namespace: shop
  source:
    file: apis/orders.openapi.yaml
  basePath: /api/orders
  enforcement:
    mode: Enforce
    maxBodyBytes: 65536
  publish:
    enabled: true
    docsUi: SwaggerUI
`);
    expect(spec).toEqual({
      targetRef: {
        group: 'gateway.networking.k8s.io',
        kind: 'HTTPRoute',
        name: 'orders',
        namespace: 'shop',
      },
      source: { file: 'apis/orders.openapi.yaml' },
      basePath: '/api/orders',
      enforcement: { mode: 'Enforce', maxBodyBytes: 65536 },
      publish: { enabled: true, docsUi: 'SwaggerUI' },
    });
  });

  it('applies the defaults: route group and kind, enforcement off, published with Scalar', () => {
    const [minimal, partial] = specs(`${HEADER}
  targetRef:
    name: orders
  source:
    url: /openapi.json
---
${HEADER.replace('name: orders', 'name: payments')}
  targetRef:
    name: payments
  source:
    url: https://payments.shop.svc.cluster.local:8443/v3/api-docs
  enforcement:
    mode: ReportOnly
  publish:
    docsUi: None
`);
    expect(minimal).toEqual({
      targetRef: { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'orders' },
      source: { url: '/openapi.json' },
      enforcement: { mode: 'Off', maxBodyBytes: 1048576 },
      publish: { enabled: true, docsUi: 'Scalar' },
    });
    expect(partial?.enforcement).toEqual({ mode: 'ReportOnly', maxBodyBytes: 1048576 });
    expect(partial?.publish).toEqual({ enabled: true, docsUi: 'None' });
  });

  it('takes an inline OpenAPI document', () => {
    const [spec] = specs(`${HEADER}
  targetRef:
    name: orders
  source:
    inline:
      openapi: 3.1.0
      info:
        title: Orders
        version: "1.0"
      paths:
        /orders/{id}:
          get:
            parameters:
            - name: id
              in: path
              required: true
              schema: { type: string }
            responses:
              "200":
                description: the order
`);
    expect(spec?.source.inline).toMatchObject({ openapi: '3.1.0', info: { title: 'Orders' } });
  });

  it('needs exactly one source', () => {
    expect(
      errorsOf(`${HEADER}
  targetRef:
    name: orders
  source: {}
---
${HEADER.replace('name: orders', 'name: payments')}
  targetRef:
    name: payments
  source:
    file: payments.yaml
    url: /openapi.json
`),
    ).toEqual([
      'spec.source (9:11): one of file, inline or url is required',
      'spec.source.url (21:10): only one of file, inline or url may be set (found file and url)',
    ]);
  });

  it('reports a misspelt field at its key', () => {
    expect(
      errorsOf(`${HEADER}
  targetRef:
    name: orders
  source:
    file: orders.yaml
  enforcment:
    mode: Enforce
`),
    ).toEqual(['spec.enforcment (11:3): unknown field']);
  });

  it('rejects an unknown mode with the allowed values', () => {
    expect(
      errorsOf(`${HEADER}
  targetRef:
    name: orders
  source:
    file: orders.yaml
  enforcement:
    mode: Strict
`),
    ).toEqual(['spec.enforcement.mode (12:11): expected one of Off, ReportOnly, Enforce']);
  });

  it('only binds to HTTPRoutes', () => {
    expect(
      errorsOf(`${HEADER}
  targetRef:
    kind: Gateway
    name: edge
  source:
    file: orders.yaml
`),
    ).toEqual(['spec.targetRef.kind (8:11): expected HTTPRoute, got the string "Gateway"']);
  });

  it('keeps files inside the config folder and checks the other sources', () => {
    const messages = (source: string) =>
      parse(`${HEADER}
  targetRef:
    name: orders
  source:
    ${source}
`).errors.map((e) => `${e.path}: ${e.message}`);
    expect(messages('file: ../secrets/orders.yaml')).toEqual([
      'spec.source.file: must not contain ".." segments',
    ]);
    expect(messages('file: /etc/orders.yaml')).toEqual([
      'spec.source.file: must be relative to the config folder',
    ]);
    expect(messages('url: ftp://orders/openapi.json')).toEqual([
      'spec.source.url: must be an http(s) URL or a path such as /openapi.json on the backend',
    ]);
    expect(messages('inline: { info: { title: Orders } }')).toEqual([
      'spec.source.inline: must be an OpenAPI document with an "openapi" (or "swagger") version field',
    ]);
  });

  it('checks basePath and maxBodyBytes', () => {
    expect(
      parse(`${HEADER}
  targetRef:
    name: orders
  source:
    file: orders.yaml
  basePath: api/orders
  enforcement:
    maxBodyBytes: -1
`).errors.map((e) => `${e.path}: ${e.message}`),
    ).toEqual([
      'spec.basePath: must be an absolute path such as /v1/orders, without query',
      'spec.enforcement.maxBodyBytes: must be >= 0',
    ]);
  });
});
