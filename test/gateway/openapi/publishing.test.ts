import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { parse as parseYaml } from 'yaml';
import type { Condition, RouteParentStatus } from '../../../shared/config/compile/conditions.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import {
  compileConfig,
  startGateway,
  type GatewayUnderTest,
} from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { startJwtIssuer, type TestIssuer } from '../../helpers/jwt-issuer.ts';
import { apiYaml, inline, ORDERS_31, PETSTORE_30, routeYaml } from './fixtures.ts';

// Publishing at the edge: the /apis catalog (JSON and HTML), each API's document as JSON and
// YAML with servers and security rewritten, the docs pages and their assets, a document the
// gateway fetches from the backend, and the /apis prefix's precedence over user routes.

let upstream: EchoServer;
let issuer: TestIssuer;
let gw: GatewayUnderTest;
let config: string;
let remoteFetches = 0;
const agent = new Agent({ keepAliveTimeout: 1000 });

const REMOTE_DOC = {
  openapi: '3.1.0',
  info: { title: 'Inventory', version: '0.3.0' },
  paths: { '/stock': { get: { responses: { '200': { description: 'stock' } } } } },
};

beforeAll(async () => {
  upstream = await startEchoServer('app', (req, res) => {
    if (req.url !== '/openapi.json') return false;
    remoteFetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(REMOTE_DOC));
    return true;
  });
  issuer = await startJwtIssuer('https://idp.test', ['ES256']);
  const both = '[{ name: edge }, { name: behind-proxy }]';
  config = docs(
    GATEWAY_CLASS,
    gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    gatewayYaml('api', 'behind-proxy', '    - { name: http, port: 8090, protocol: HTTP }'),
    gatewayYaml('api', 'internal', '    - { name: http, port: 8081, protocol: HTTP }'),
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: { name: behind-proxy, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: behind-proxy }]
  clientIPDetection: { xForwardedFor: { numTrustedHops: 1 } }`,
    serviceYaml('api', 'app', upstream.port),
    routeYaml('petstore', '/petstore', both),
    routeYaml('shop', '/shop', both),
    routeYaml('inventory', '/inventory', both),
    routeYaml('catchall', '/', '[{ name: edge }, { name: internal }]'),
    apiYaml('petstore', 'petstore', inline(PETSTORE_30)),
    apiYaml(
      'orders',
      'shop',
      `  basePath: /shop/v2\n  publish: { docsUi: SwaggerUI }\n${inline(ORDERS_31)}`,
    ),
    apiYaml('inventory', 'inventory', '  source: { url: /openapi.json }'),
    `apiVersion: v1
kind: Secret
metadata: { name: keys, namespace: api }
type: Opaque
stringData: { partner: key-aaaaaaaaaaaaaaaaaaaaaaaaaaaa }`,
    `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: petstore-auth, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: petstore }]
  jwt:
    providers:
      - name: idp
        issuer: ${issuer.issuer}
        localJWKS: { type: Inline, inline: '${JSON.stringify(issuer.jwks)}' }
  apiKeyAuth:
    credentialRefs: [{ name: keys }]
    extractFrom: [{ headers: [x-api-key] }, { params: [api_key] }]`,
  );
  gw = await startGateway(config);
});

afterAll(async () => {
  await gw?.close();
  await issuer?.close();
  await upstream?.close();
  await agent.close();
});

interface Catalog {
  apis: {
    name: string;
    namespace: string;
    title: string;
    version: string;
    url: string;
    links: { openapiJson: string; openapiYaml: string; docs?: string };
  }[];
}

type Doc = Record<string, unknown> & {
  servers: { url: string }[];
  security: unknown;
  components: { securitySchemes: Record<string, unknown> };
  paths: Record<string, Record<string, { security?: unknown }>>;
};

describe('the catalog', () => {
  it('lists every API published on the listener, with links, as JSON', async () => {
    const res = await send(agent, gw.url(8080, '/apis'));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const origin = `http://127.0.0.1:${gw.port(8080)}`;
    expect(res.json<Catalog>().apis).toEqual([
      {
        name: 'inventory',
        namespace: 'api',
        title: 'Inventory',
        version: '0.3.0',
        url: `${origin}/inventory`,
        links: {
          openapiJson: '/apis/inventory/openapi.json',
          openapiYaml: '/apis/inventory/openapi.yaml',
          docs: '/apis/inventory/docs',
        },
      },
      {
        name: 'orders',
        namespace: 'api',
        title: 'Orders',
        version: '2.0.0',
        url: `${origin}/shop/v2`,
        links: {
          openapiJson: '/apis/orders/openapi.json',
          openapiYaml: '/apis/orders/openapi.yaml',
          docs: '/apis/orders/docs',
        },
      },
      {
        name: 'petstore',
        namespace: 'api',
        title: 'Petstore',
        version: '1.0.0',
        description: 'Pets, for sale.',
        url: `${origin}/petstore`,
        links: {
          openapiJson: '/apis/petstore/openapi.json',
          openapiYaml: '/apis/petstore/openapi.yaml',
          docs: '/apis/petstore/docs',
        },
      },
    ]);
  });

  it('is an HTML page for a browser', async () => {
    const res = await send(agent, gw.url(8080, '/apis'), {
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
    });
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers.vary).toBe('Accept');
    expect(res.body).toContain('Petstore <small>1.0.0</small>');
    expect(res.body).toContain('<a href="/apis/orders/docs">Documentation</a>');
  });
});

describe('documents', () => {
  it('rewrites servers to the address the client used, plus the base path', async () => {
    const res = await send(agent, gw.url(8080, '/apis/petstore/openapi.json'), {
      // Not trusted on this Gateway: no ClientTrafficPolicy says a proxy sits in front.
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    expect(res.status).toBe(200);
    const doc = res.json<Doc>();
    expect(doc.servers).toEqual([{ url: `http://127.0.0.1:${gw.port(8080)}/petstore` }]);
    expect(doc.info).toEqual(PETSTORE_30.info);
    expect(Object.keys(doc.paths)).toEqual(['/pets', '/pets/{petId}', '/pets/mine']);
  });

  it('takes the public scheme and host from a proxy the ClientTrafficPolicy trusts', async () => {
    const res = await send(agent, gw.url(8090, '/apis/orders/openapi.json'), {
      headers: { 'x-forwarded-host': 'api.example.com', 'x-forwarded-proto': 'https' },
    });
    expect(res.json<Doc>().servers).toEqual([{ url: 'https://api.example.com/shop/v2' }]);
  });

  it("derives security from the route's SecurityPolicy (JWT and API keys), replacing the document's", async () => {
    const doc = (await send(agent, gw.url(8080, '/apis/petstore/openapi.json'))).json<Doc>();
    expect(doc.components.securitySchemes).toEqual({
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'A JWT issued by https://idp.test, checked by the gateway.',
      },
      jwtQuery_access_token: {
        type: 'apiKey',
        in: 'query',
        name: 'access_token',
        description: 'A JWT issued by https://idp.test, checked by the gateway.',
      },
      'apiKeyHeader_x-api-key': {
        type: 'apiKey',
        in: 'header',
        name: 'x-api-key',
        description: 'An API key issued for this API, checked by the gateway.',
      },
      apiKeyQuery_api_key: {
        type: 'apiKey',
        in: 'query',
        name: 'api_key',
        description: 'An API key issued for this API, checked by the gateway.',
      },
    });
    // Both authenticators must pass; each takes its credential from any of its sources.
    expect(doc.security).toEqual([
      { bearerAuth: [], 'apiKeyHeader_x-api-key': [] },
      { bearerAuth: [], apiKeyQuery_api_key: [] },
      { jwtQuery_access_token: [], 'apiKeyHeader_x-api-key': [] },
      { jwtQuery_access_token: [], apiKeyQuery_api_key: [] },
    ]);
    expect(doc.paths['/pets']?.post?.security).toBeUndefined();
    expect(doc['x-meshgate']).toMatchObject({ securityPolicies: ['api/petstore-auth'] });
  });

  it('publishes no security where the gateway enforces none', async () => {
    const doc = (await send(agent, gw.url(8080, '/apis/orders/openapi.json'))).json<Doc>();
    expect(doc.components.securitySchemes).toEqual({});
    expect(doc.security).toEqual([]);
  });

  it('serves the same document as YAML', async () => {
    const json = (await send(agent, gw.url(8080, '/apis/petstore/openapi.json'))).json();
    const res = await send(agent, gw.url(8080, '/apis/petstore/openapi.yaml'));
    expect(res.headers['content-type']).toBe('application/yaml');
    expect(parseYaml(res.body)).toEqual(json);
  });

  it('fetches a document from the route backend (source.url) and keeps it', async () => {
    const res = await send(agent, gw.url(8080, '/apis/inventory/openapi.json'));
    expect(res.status).toBe(200);
    expect(res.json<Doc>()).toMatchObject({
      info: REMOTE_DOC.info,
      servers: [{ url: `http://127.0.0.1:${gw.port(8080)}/inventory` }],
    });
    const fetched = remoteFetches;
    await send(agent, gw.url(8090, '/apis/inventory/openapi.yaml'));
    expect(remoteFetches).toBe(fetched);
  });
});

describe('docs pages', () => {
  it('serves Scalar from the gateway, under a CSP that allows nothing else', async () => {
    const res = await send(agent, gw.url(8080, '/apis/petstore/docs'));
    expect(res.status).toBe(200);
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.body).toContain('<script src="/apis/_assets/scalar/standalone.js"></script>');
    expect(res.body).toContain('/apis/petstore/openapi.json');
    expect(res.body).not.toMatch(/https?:\/\//);
    const asset = await send(agent, gw.url(8080, '/apis/_assets/scalar/standalone.js'));
    expect(asset.status).toBe(200);
    expect(asset.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(asset.body.length).toBeGreaterThan(100_000);
    const again = await send(agent, gw.url(8080, '/apis/_assets/scalar/standalone.js'), {
      headers: { 'if-none-match': String(asset.headers.etag) },
    });
    expect(again.status).toBe(304);
  });

  it('serves Swagger UI when the ApiDefinition asks for it', async () => {
    const res = await send(agent, gw.url(8080, '/apis/orders/docs'));
    expect(res.body).toContain('/apis/_assets/swagger-ui/swagger-ui-bundle.js');
    expect(res.body).toContain('data-url="/apis/orders/openapi.json"');
    for (const file of ['swagger-ui-bundle.js', 'swagger-ui.css', 'init.js'])
      expect((await send(agent, gw.url(8080, `/apis/_assets/swagger-ui/${file}`))).status).toBe(
        200,
      );
  });
});

describe('the /apis prefix', () => {
  it('is served by meshgate on a listener that publishes an API, even under a catch-all route', async () => {
    expect((await send(agent, gw.url(8080, '/apis/nothing/openapi.json'))).status).toBe(404);
    expect((await send(agent, gw.url(8080, '/apis'), { method: 'POST', body: '{}' })).status).toBe(
      405,
    );
    // The catch-all route still takes everything else.
    expect((await send(agent, gw.url(8080, '/elsewhere'))).echo().path).toBe('/elsewhere');
  });

  it('stays with the routes on a listener that publishes nothing', async () => {
    const res = await send(agent, gw.url(8081, '/apis'));
    expect(res.status).toBe(200);
    expect(res.echo().path).toBe('/apis');
  });

  it('is reported on the routes it shadows', () => {
    const { statuses } = compileConfig(config);
    const parents = (name: string) =>
      (
        statuses.find((s) => s.kind === 'HTTPRoute' && s.metadata.name === name)?.status as {
          parents: RouteParentStatus[];
        }
      ).parents;
    const byGateway = (name: string) =>
      parents('catchall').find((p) => p.parentRef.name === name)?.conditions as Condition[];
    expect(byGateway('edge').find((c) => c.type === 'meshgate.io/PathsReserved')).toMatchObject({
      status: 'True',
      reason: 'ApiCatalog',
      message:
        "on listener http, /apis and the paths under it are served by meshgate's API catalog (published by ApiDefinition api/inventory, api/orders, api/petstore); this route does not receive them",
    });
    expect(byGateway('internal').some((c) => c.type === 'meshgate.io/PathsReserved')).toBe(false);
    expect(
      parents('petstore').every((p) =>
        p.conditions.every((c) => c.type !== 'meshgate.io/PathsReserved'),
      ),
    ).toBe(true);
  });
});
