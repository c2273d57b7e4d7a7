import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';

const parseOne = (text: string, file = 'routes.yaml') => parseTexts([{ file, text }]);
const messages = (text: string) => parseOne(text).errors.map(formatConfigError);

const ROUTE_HEAD = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs: [{ name: edge }]
`;

describe('parse: errors name file, document, line:column and field path', () => {
  it('reports a bad enum with the allowed values, in the second document', () => {
    const text = `apiVersion: v1
kind: Namespace
metadata: { name: a }
---
${ROUTE_HEAD}  rules:
    - matches:
        - path:
            type: Prefix
            value: /x
`;
    expect(messages(text)).toEqual([
      'routes.yaml doc 2 (14:19) spec.rules[0].matches[0].path.type: expected one of Exact, PathPrefix, RegularExpression',
    ]);
  });

  it('reports an unknown field at the key', () => {
    const text = `${ROUTE_HEAD}  rules:
    - backendRef:
        - { name: app, port: 80 }
`;
    expect(messages(text)).toEqual([
      'routes.yaml doc 1 (8:7) spec.rules[0].backendRef: unknown field',
    ]);
  });

  it('reports a wrong type with what it got', () => {
    const text = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: g }
spec:
  gatewayClassName: meshgate
  listeners:
    - name: http
      port: "eighty"
      protocol: HTTP
`;
    expect(messages(text)).toEqual([
      'routes.yaml doc 1 (8:13) spec.listeners[0].port: expected a number, got the string "eighty"',
    ]);
  });

  it('reports a missing required field at its parent', () => {
    const text = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: g }
spec:
  listeners: [{ name: http, port: 80, protocol: HTTP }]
`;
    expect(messages(text)).toEqual([
      'routes.yaml doc 1 (5:3) spec.gatewayClassName: required: a string',
    ]);
  });

  it('reports malformed YAML with its position and keeps the documents before it', () => {
    const text = `apiVersion: v1
kind: Service
metadata: { name: ok }
spec: { ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata:
  name: broken
   namespace: web
`;
    const r = parseOne(text, 'svc.yaml');
    expect(r.resources.map((x) => x.metadata.name)).toEqual(['ok']);
    expect(r.errors).toHaveLength(1);
    expect(formatConfigError(r.errors[0]!)).toMatch(
      /^svc\.yaml doc 2 \((9|10):\d+\) invalid YAML: /,
    );
  });

  it('reports a duplicate name with where the first one is, and keeps the first', () => {
    const svc = (port: number) =>
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  ports: [{ port: ${port} }]\n`;
    const r = parseTexts([
      { file: 'a.yaml', text: svc(80) },
      { file: 'b.yaml', text: svc(81) },
    ]);
    expect(r.resources).toHaveLength(1);
    expect(r.errors.map(formatConfigError)).toEqual([
      'b.yaml doc 1 (4:9) metadata.name: duplicate Service/default/api: already defined at a.yaml doc 1 (1:1); this copy is ignored',
    ]);
  });

  it('lists kinds outside the model as ignored, not as errors', () => {
    const r = parseOne(`apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec: { replicas: 2 }
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: { name: later }
spec: {}
`);
    expect(r.errors).toEqual([]);
    expect(r.ignored.map((i) => `${i.kind}: ${i.reason}`)).toEqual([
      'Deployment: not part of the meshgate config model',
      'TLSRoute: TLSRoute of gateway.networking.k8s.io is not supported by meshgate yet',
    ]);
  });

  it('refuses a document without apiVersion or kind, and a version it does not read', () => {
    expect(messages('kind: Service\nmetadata: { name: x }\n')).toEqual([
      'routes.yaml doc 1 (1:1) apiVersion: required: a string such as gateway.networking.k8s.io/v1',
    ]);
    expect(
      messages(
        'apiVersion: gateway.networking.k8s.io/v1alpha9\nkind: HTTPRoute\nmetadata: { name: x }\nspec: {}\n',
      ),
    ).toEqual([
      'routes.yaml doc 1 (1:13) apiVersion: HTTPRoute is read as gateway.networking.k8s.io/v1 or gateway.networking.k8s.io/v1beta1, not gateway.networking.k8s.io/v1alpha9',
    ]);
  });

  it('refuses a document that is not an object', () => {
    expect(messages('- a\n- b\n')).toEqual([
      'routes.yaml doc 1 (1:1) expected a Kubernetes-style object with apiVersion, kind and metadata',
    ]);
  });

  it('applies upstream defaults', () => {
    const r = parseOne(`${ROUTE_HEAD}  rules:
    - backendRefs: [{ name: app, port: 80 }]
`);
    expect(r.errors).toEqual([]);
    const spec = r.resources[0]!.spec as {
      parentRefs: unknown[];
      rules: { matches: unknown[]; backendRefs: unknown[] }[];
    };
    expect(spec.parentRefs[0]).toEqual({
      group: 'gateway.networking.k8s.io',
      kind: 'Gateway',
      name: 'edge',
    });
    expect(spec.rules[0]!.matches).toEqual([{ path: { type: 'PathPrefix', value: '/' } }]);
    expect(spec.rules[0]!.backendRefs[0]).toEqual({
      group: '',
      kind: 'Service',
      name: 'app',
      port: 80,
      weight: 1,
    });
    expect(r.resources[0]!.metadata.namespace).toBe('default');
  });

  it('enforces upstream cross-field rules', () => {
    expect(
      messages(`${ROUTE_HEAD}  rules:
    - filters:
        - type: RequestRedirect
          urlRewrite: { hostname: a.example.com }
`),
    ).toEqual([
      'routes.yaml doc 1 (9:11) spec.rules[0].filters[0].requestRedirect: requestRedirect must be specified for type RequestRedirect',
      'routes.yaml doc 1 (10:23) spec.rules[0].filters[0].urlRewrite: urlRewrite must not be set when type is RequestRedirect',
    ]);
    expect(
      messages(`${ROUTE_HEAD}  rules:
    - backendRefs: [{ name: app }]
`),
    ).toEqual([
      'routes.yaml doc 1 (8:21) spec.rules[0].backendRefs[0].port: required: a Service reference must name a port',
    ]);
  });

  it('reports unsupported fields instead of dropping them', () => {
    const r = parseOne(`${ROUTE_HEAD}  rules:
    - sessionPersistence: { sessionName: s }
      backendRefs: [{ name: app, port: 80 }]
`);
    expect(r.errors).toEqual([]);
    expect(r.resources[0]!.unsupported).toEqual([
      {
        path: 'spec.rules[0].sessionPersistence',
        message: 'session persistence is not supported',
        effect: 'reject',
      },
    ]);
  });
});

describe('parse: the Gateway API conformance manifests', () => {
  const root = join(import.meta.dirname, '../../../shared/conformance/gateway-api/manifests');
  const files = [
    'base/manifests.yaml',
    'mesh/manifests.yaml',
    ...readdirSync(join(root, 'tests'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => `tests/${f}`),
  ];
  for (const file of files) {
    it(`${file} parses without errors`, () => {
      const text = readFileSync(join(root, file), 'utf8').replaceAll(
        '{GATEWAY_CLASS_NAME}',
        'meshgate',
      );
      const r = parseOne(text, file);
      expect(r.errors.map(formatConfigError)).toEqual([]);
      expect(r.resources.length + r.ignored.length).toBeGreaterThan(0);
    });
  }
});
