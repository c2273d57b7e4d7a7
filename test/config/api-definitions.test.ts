import { describe, expect, it } from 'vitest';
import { checkOpenApiDocument } from '../../shared/config/compile/api-definitions.ts';
import { compile } from '../../shared/config/compile/compile.ts';
import type { Condition } from '../../shared/config/compile/conditions.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';

const CONFIG = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: meshgate }
spec:
  controllerName: meshgate.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: shop }
spec:
  gatewayClassName: meshgate
  listeners: [{ name: http, port: 8080, protocol: HTTP }]
---
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
spec:
  ports: [{ name: http, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: orders, namespace: shop }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /orders } }]
      backendRefs: [{ name: orders, port: 80 }]
---
apiVersion: meshgate.io/v1alpha1
kind: ApiDefinition
metadata: { name: orders, namespace: shop }
spec:
  targetRef: { name: orders }
  source: { file: apis/orders.yaml }
`;

function run(files: Record<string, string>) {
  const parsed = parseTexts([{ file: 'config.yaml', text: CONFIG }]);
  expect(parsed.errors.map(formatConfigError)).toEqual([]);
  const result = compile(parsed.resources, {
    now: new Date('2026-01-01T00:00:00Z'),
    readFile: (p) => files[p],
  });
  const status = result.statuses.find((s) => s.kind === 'ApiDefinition')?.status as {
    conditions: Condition[];
  };
  return {
    apis: result.snapshot.apis,
    conditions: status.conditions.map((c) => `${c.type} ${c.status} ${c.reason}: ${c.message}`),
  };
}

describe('ApiDefinition source.file', () => {
  it('embeds the document the reader returns', () => {
    const { apis, conditions } = run({
      'apis/orders.yaml':
        'openapi: 3.0.3\ninfo: { title: Orders, version: "1" }\npaths:\n  /orders: {}\n',
    });
    expect(conditions[0]).toBe('Accepted True Accepted: API published on HTTPRoute shop/orders');
    expect(apis[0]?.spec).toMatchObject({
      source: { type: 'File', file: 'apis/orders.yaml' },
      document: { openapi: '3.0.3', paths: { '/orders': {} } },
      basePath: '/orders',
    });
  });

  it('reads JSON too', () => {
    const { apis } = run({
      'apis/orders.yaml': JSON.stringify({
        openapi: '3.1.0',
        info: { title: 'O', version: '1' },
        paths: {},
      }),
    });
    expect(apis).toHaveLength(1);
  });

  it('reports a missing file as an unresolved reference', () => {
    const { apis, conditions } = run({});
    expect(apis).toEqual([]);
    expect(conditions).toEqual([
      'Accepted False FileNotFound: source.file: apis/orders.yaml not found in the config folder',
      'ResolvedRefs False FileNotFound: source.file: apis/orders.yaml not found in the config folder',
    ]);
  });

  it('reports a file that is not YAML, and a document that is not OpenAPI 3', () => {
    expect(run({ 'apis/orders.yaml': 'openapi: [' }).conditions[0]).toMatch(
      /^Accepted False Invalid: source\.file apis\/orders\.yaml: cannot parse: /,
    );
    expect(run({ 'apis/orders.yaml': 'openapi: 3.2.0\ninfo: {}\n' }).conditions[0]).toBe(
      'Accepted False Invalid: source.file apis/orders.yaml: document.openapi: must be 3.0.x or 3.1.x, got "3.2.0"; document.info.title: required (a string); document.info.version: required (a string); document.paths: required',
    );
  });
});

describe('checkOpenApiDocument', () => {
  const info = { title: 'T', version: '1' };
  it('lets OpenAPI 3.1 leave paths out when it has components or webhooks', () => {
    expect(checkOpenApiDocument({ openapi: '3.1.0', info, components: {} })).toEqual([]);
    expect(checkOpenApiDocument({ openapi: '3.1.0', info })).toEqual(['document.paths: required']);
    expect(checkOpenApiDocument({ openapi: '3.0.3', info, components: {} })).toEqual([
      'document.paths: required',
    ]);
  });

  it('refuses what is not an OpenAPI object', () => {
    expect(checkOpenApiDocument('openapi')).toEqual(['document: must be an OpenAPI object']);
    expect(checkOpenApiDocument({ openapi: 3.1, info, paths: {} })).toEqual([
      'document.openapi: must be 3.0.x or 3.1.x, got 3.1',
    ]);
  });
});
