import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import type { Condition } from '../../../shared/config/compile/conditions.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import {
  compileConfig,
  startGateway,
  type GatewayUnderTest,
} from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { apiYaml, inline, PETSTORE_30, routeYaml } from './fixtures.ts';

// Documents checked on load: a bad one gets Accepted=False naming the place (a JSON pointer)
// and the problem; an Enforce definition with a bad document fails its requests closed; a URL
// document that cannot be fetched keeps its API unpublished and, when enforced, answers 503.

const info = { title: 'T', version: '1' };
const ok = { '200': { description: 'ok' } };

const BAD = {
  'no-responses': { openapi: '3.0.3', info, paths: { '/pets': { get: {} } } },
  'bad-parameter': {
    openapi: '3.1.0',
    info,
    paths: { '/pets': { get: { parameters: [{ name: 'q', in: 'body' }], responses: ok } } },
  },
  'external-ref': {
    openapi: '3.1.0',
    info,
    paths: { '/pets': { get: { responses: { '200': { $ref: 'common.yaml#/responses/Ok' } } } } },
  },
  'dangling-ref': {
    openapi: '3.0.3',
    info,
    paths: { '/pets': { get: { responses: { '200': { $ref: '#/components/responses/Nope' } } } } },
  },
  'bad-schema': {
    openapi: '3.1.0',
    info,
    paths: {},
    components: { schemas: { Pet: { type: 'object', properties: { age: { type: 'int' } } } } },
  },
};

function config(extra: string[] = [], upstreamPort = 9) {
  return docs(
    GATEWAY_CLASS,
    gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    serviceYaml('api', 'app', upstreamPort),
    routeYaml('pets', '/pets'),
    ...Object.entries(BAD).map(([name, doc]) =>
      apiYaml(name, 'pets', `  basePath: /pets/${name}\n${inline(doc)}`),
    ),
    ...extra,
  );
}

describe('a bad document', () => {
  const { statuses, snapshot } = compileConfig(config());
  const accepted = (name: string) =>
    (
      statuses.find((s) => s.kind === 'ApiDefinition' && s.metadata.name === name)?.status as {
        conditions: Condition[];
      }
    ).conditions.find((c) => c.type === 'Accepted');

  it('is not accepted, and the condition names where and what', () => {
    expect(accepted('no-responses')).toMatchObject({
      status: 'False',
      reason: 'Invalid',
      message: 'document#/paths/~1pets/get: required property "responses" is missing',
    });
    expect(accepted('bad-parameter')?.message).toBe(
      'document#/paths/~1pets/get/parameters/0/in: must be one of "query", "header", "path", "cookie"',
    );
    expect(accepted('bad-schema')?.message).toContain(
      'document#/components/schemas/Pet/properties/age/type: must be one of "array", "boolean", "integer", "null", "number", "object", "string"',
    );
  });

  it('may only refer inside itself', () => {
    expect(accepted('external-ref')?.message).toBe(
      'document#/paths/~1pets/get/responses/200/$ref: external reference "common.yaml#/responses/Ok" is not supported; bundle the document into one file',
    );
    expect(accepted('dangling-ref')?.message).toBe(
      'document#/paths/~1pets/get/responses/200/$ref: "#/components/responses/Nope" does not resolve to anything in the document',
    );
  });

  it('is left out of the snapshot when it enforces nothing', () => {
    expect(snapshot.apis).toEqual([]);
  });
});

describe('at the gateway', () => {
  let upstream: EchoServer;
  let docsServer: Server;
  let docsAnswer = 503;
  let gw: GatewayUnderTest;
  const agent = new Agent({ keepAliveTimeout: 1000 });

  beforeAll(async () => {
    upstream = await startEchoServer('app');
    // A backend whose /openapi.json is down (then broken, then good).
    docsServer = createServer((req, res) => {
      if (docsAnswer !== 200) {
        res.writeHead(docsAnswer).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(PETSTORE_30));
    });
    await new Promise<void>((resolve) => docsServer.listen(0, '127.0.0.1', resolve));
    gw = await startGateway(
      config(
        [
          routeYaml('strict', '/strict'),
          apiYaml(
            'strict',
            'strict',
            `  enforcement: { mode: Enforce }\n${inline({ openapi: '3.0.3', info, paths: { '/x': { get: {} } } })}`,
          ),
          serviceYaml('api', 'docs', (docsServer.address() as AddressInfo).port),
          `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: remote, namespace: api }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /remote } }]
      backendRefs: [{ name: docs, port: 80 }]`,
          apiYaml(
            'remote',
            'remote',
            '  enforcement: { mode: Enforce }\n  source: { url: /openapi.json }',
          ),
          apiYaml('good', 'pets', `  basePath: /pets/good\n${inline(PETSTORE_30)}`),
        ],
        upstream.port,
      ),
    );
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
    await new Promise<void>((resolve) => docsServer?.close(() => resolve()));
    await agent.close();
  });

  it('publishes only the good documents', async () => {
    const catalog = (await send(agent, gw.url(8080, '/apis'))).json<{ apis: { name: string }[] }>();
    expect(catalog.apis.map((a) => a.name)).toEqual(['good']);
    expect((await send(agent, gw.url(8080, '/apis/no-responses/openapi.json'))).status).toBe(404);
  });

  it('fails closed (500) under an Enforce definition whose document is broken', async () => {
    const res = await send(agent, gw.url(8080, '/strict/x'));
    expect(res.status).toBe(500);
    expect(res.json()).toMatchObject({ code: 'MG_ERR_INVALID_CONFIG' });
    // A definition that enforces nothing leaves its route alone.
    expect((await send(agent, gw.url(8080, '/pets/no-responses/anything'))).status).toBe(200);
  });

  it('answers 503 under an enforced URL document until it can be fetched and used', async () => {
    let res = await send(agent, gw.url(8080, '/remote/pets'));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({ code: 'MG_ERR_API_UNAVAILABLE' });
    expect((await send(agent, gw.url(8080, '/apis/remote/openapi.json'))).status).toBe(503);
    docsAnswer = 200;
    // Failed fetches are retried after a pause (RETRY_MS); poll until the document is in.
    const deadline = Date.now() + 15_000;
    do {
      await new Promise((r) => setTimeout(r, 250));
      res = await send(agent, gw.url(8080, '/apis/remote/openapi.json'));
    } while (res.status !== 200 && Date.now() < deadline);
    expect(res.status).toBe(200);
    expect((await send(agent, gw.url(8080, '/remote/pets?limit=500'))).status).toBe(400);
  });
});
