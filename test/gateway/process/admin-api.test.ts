// The admin API in-process (inject): openapi/admin.yaml and the server agree on the routes, every
// response matches its schema, and no secret leaves through /config_dump.

import type { FastifyInstance } from 'fastify';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildAdminApp,
  type AdminSource,
  type Readiness,
  type ServedConfig,
  type WorkerInfo,
} from '../../../gateway/admin-server.ts';
import { compile } from '../../../shared/config/compile/compile.ts';
import { parseTexts } from '../../../shared/config/parse.ts';
import { adminApi, documentedRoutes, responseErrors } from '../../helpers/admin-openapi.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { selfSignedCertificate, tlsSecretYaml, type TestCertificate } from '../../helpers/tls.ts';

const API_KEY = 'partner-key-0123456789abcdef';
let cert: TestCertificate;
let config: ServedConfig;
let app: FastifyInstance | undefined;

beforeAll(() => {
  cert = selfSignedCertificate(['shop.example.com']);
  const text = docs(
    GATEWAY_CLASS,
    gatewayYaml(
      'shop',
      'edge',
      `    - { name: http, port: 8080, protocol: HTTP }
    - name: https
      port: 8443
      protocol: HTTPS
      hostname: shop.example.com
      tls: { certificateRefs: [{ name: shop-cert }] }`,
    ),
    gatewayYaml('shop', 'other', '    - { name: http, port: 9090, protocol: HTTP }'),
    tlsSecretYaml('shop', 'shop-cert', cert),
    serviceYaml('shop', 'web', 9001),
    serviceYaml('shop', 'canary', 9002),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: store, namespace: shop }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [shop.example.com]
  rules:
    - name: catch-all
      matches: [{ path: { type: PathPrefix, value: / } }]
      backendRefs: [{ name: web, port: 80 }]
    - name: api
      matches:
        - path: { type: PathPrefix, value: /api }
          method: GET
        - path: { type: Exact, value: /api/health }
      backendRefs: [{ name: web, port: 80, weight: 9 }, { name: canary, port: 80, weight: 1 }]`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken, namespace: shop }
spec:
  parentRefs: [{ name: edge }, { name: other }]
  rules:
    - backendRefs: [{ name: missing, port: 80 }]`,
    `apiVersion: v1
kind: Secret
metadata: { name: partner-keys, namespace: shop }
stringData: { partner: ${API_KEY} }`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: keys, namespace: shop }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: store }]
  apiKeyAuth:
    credentialRefs: [{ name: partner-keys }]
    extractFrom: [{ headers: [x-api-key] }]`,
  );
  const parsed = parseTexts([{ file: 'config.yaml', text }]);
  expect(parsed.errors).toEqual([]);
  const { snapshot, statuses } = compile(parsed.resources, { now: new Date(0) });
  config = { snapshot, statuses, loadedAt: new Date(0).toISOString() };
});

afterEach(async () => {
  await app?.close();
  app = undefined;
});

function source(overrides: Partial<AdminSource> = {}): AdminSource {
  const version = config.snapshot.version;
  const worker: WorkerInfo = {
    id: 1,
    pid: 4242,
    phase: 'serving',
    startedAt: new Date(0).toISOString(),
    appliedVersion: version,
    listening: true,
    ports: [{ port: 8080, boundPort: 18080, address: '127.0.0.1', protocol: 'HTTP' }],
    problems: [],
  };
  return {
    settings: { listenHost: '127.0.0.1', portOffset: 10000, gateways: ['shop/edge'] },
    readiness: (): Readiness => ({ ready: true, version }),
    config: () => config,
    workers: () => ({ desired: 1, workers: [worker] }),
    addresses: () => [
      { gateway: 'shop/edge', addresses: [{ type: 'IPAddress', value: '127.0.0.1' }] },
    ],
    metrics: () =>
      Promise.resolve(
        '# HELP meshgate_gateway_active_connections Client connections.\n# TYPE meshgate_gateway_active_connections gauge\nmeshgate_gateway_active_connections{port="8080"} 3\n',
      ),
    ...overrides,
  };
}

async function get(a: FastifyInstance, path: string) {
  const res = await a.inject({ method: 'GET', url: path });
  const json = String(res.headers['content-type']).includes('json');
  const body: unknown = json ? res.json() : res.body;
  expect(responseErrors(path, res.statusCode, body), `${path} ${res.statusCode}`).toEqual([]);
  return { status: res.statusCode, body: body as Record<string, unknown>, raw: res.body };
}

describe('admin API', () => {
  it('registers exactly the routes openapi/admin.yaml documents', async () => {
    const registered: string[] = [];
    app = buildAdminApp(source(), {
      onRoute: (r) => {
        for (const m of [r.method].flat()) registered.push(`${m} ${r.url}`);
      },
    });
    await app.ready();
    expect(registered.sort()).toEqual(documentedRoutes().sort());
  });

  it('answers every documented path with a response that matches its schema', async () => {
    app = buildAdminApp(source());
    for (const path of Object.keys(adminApi.paths)) expect((await get(app, path)).status).toBe(200);
  });

  it('/ready answers 503 with the reason', async () => {
    app = buildAdminApp(
      source({
        readiness: () => ({ ready: false, version: 'v1', reason: '1 of 2 workers running' }),
      }),
    );
    const r = await get(app, '/ready');
    expect(r).toMatchObject({
      status: 503,
      body: { ready: false, reason: '1 of 2 workers running' },
    });
  });

  it('/metrics answers the Prometheus text the supervisor sums', async () => {
    app = buildAdminApp(source());
    const r = await get(app, '/metrics');
    expect(r.status).toBe(200);
    expect(r.raw).toContain('meshgate_gateway_active_connections{port="8080"} 3');
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('answers 503 before a config is loaded', async () => {
    app = buildAdminApp(source({ config: () => undefined }));
    for (const path of ['/config_dump', '/routes', '/status'])
      expect((await get(app, path)).status).toBe(503);
  });

  it('/config_dump shows the served view and never a private key or a policy secret', async () => {
    app = buildAdminApp(source());
    const r = await get(app, '/config_dump');
    expect(r.raw).not.toContain('PRIVATE KEY');
    expect(r.raw).not.toContain(cert.keyPem.split(/\r?\n/)[1]);
    expect(r.raw).not.toContain(API_KEY);
    // The API key travels as a digest in the snapshot; the dump hides that too.
    expect(JSON.stringify(config.snapshot.policySecrets)).toContain('sha256:');
    expect(r.raw).not.toContain('sha256:');
    expect(r.raw).toContain(cert.certPem.split(/\r?\n/)[1]);
    const view = r.body.view as {
      gateways: { name: string; listeners: { boundPort: number }[] }[];
    };
    expect(view.gateways.map((g) => g.name)).toEqual(['edge']);
    expect(view.gateways[0]?.listeners.map((l) => l.boundPort)).toEqual([18080, 18443]);
  });

  it('/routes lists each port table in precedence order, with weights and endpoints', async () => {
    app = buildAdminApp(source());
    const { body } = await get(app, '/routes');
    const ports = (
      body.gateways as {
        ports: {
          port: number;
          hostGroups: {
            hostname: string;
            matches: {
              ruleName: string;
              match: number;
              backends: { name: string; percent: number; endpoints: unknown[] }[];
            }[];
          }[];
        }[];
      }[]
    )[0]?.ports;
    expect(ports?.map((p) => p.port)).toEqual([8080, 8443]);
    const groups = ports?.[0]?.hostGroups ?? [];
    expect(groups.map((g) => g.hostname)).toEqual(['shop.example.com', '*']);
    // Exact first, then the longer prefix with a method, then "/".
    expect(groups[0]?.matches.map((m) => `${m.ruleName}#${m.match}`)).toEqual([
      'api#1',
      'api#0',
      'catch-all#0',
    ]);
    expect(groups[0]?.matches[0]?.backends).toEqual([
      expect.objectContaining({
        name: 'web',
        percent: 90,
        endpoints: [{ address: '127.0.0.1', port: 9001 }],
      }),
      expect.objectContaining({ name: 'canary', percent: 10 }),
    ]);
  });

  it('/status holds the served Gateway with its addresses and only its route parents', async () => {
    app = buildAdminApp(source());
    const { body } = await get(app, '/status');
    const resources = body.resources as {
      kind: string;
      metadata: { name: string };
      status: { addresses?: unknown; parents?: { parentRef: { name: string } }[] };
    }[];
    expect(resources.map((r) => `${r.kind}/${r.metadata.name}`)).toEqual([
      'Gateway/edge',
      'HTTPRoute/broken',
      'HTTPRoute/store',
    ]);
    expect(resources[0]?.status.addresses).toEqual([{ type: 'IPAddress', value: '127.0.0.1' }]);
    expect(resources[1]?.status.parents?.map((p) => p.parentRef.name)).toEqual(['edge']);
    // The broken route's backend is missing: a problem condition, counted.
    expect(body.problems).toBe(1);
  });
});
