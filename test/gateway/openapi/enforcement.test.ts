import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { apiYaml, inline, ORDERS_31, PETSTORE_30, routeYaml, violations } from './fixtures.ts';

// ApiDefinition enforcement through the gateway's real listener: each parameter location, JSON
// bodies (OpenAPI 3.0 and 3.1 schemas), the body size cap, unknown paths and methods, and
// ReportOnly, which forwards and counts.

let upstream: EchoServer;
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1000 });
const KEY = 'key-pppppppppppppppppppppppppppp';

beforeAll(async () => {
  upstream = await startEchoServer('app');
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
      serviceYaml('api', 'app', upstream.port),
      routeYaml('petstore', '/petstore'),
      routeYaml('shop', '/shop'),
      routeYaml('report', '/report'),
      routeYaml('guarded', '/guarded'),
      apiYaml(
        'petstore',
        'petstore',
        `  enforcement: { mode: Enforce, maxBodyBytes: 256 }\n${inline(PETSTORE_30)}`,
      ),
      apiYaml('orders', 'shop', `  enforcement: { mode: Enforce }\n${inline(ORDERS_31)}`),
      apiYaml(
        'report',
        'report',
        `  enforcement: { mode: ReportOnly, maxBodyBytes: 64 }\n${inline(PETSTORE_30)}`,
      ),
      apiYaml('guarded', 'guarded', `  enforcement: { mode: Enforce }\n${inline(PETSTORE_30)}`),
      `apiVersion: v1
kind: Secret
metadata: { name: keys, namespace: api }
type: Opaque
stringData: { partner: ${KEY} }`,
      `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: guarded, namespace: api }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: guarded }]
  apiKeyAuth:
    credentialRefs: [{ name: keys }]
    extractFrom: [{ headers: [x-api-key] }]`,
    ),
  );
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await agent.close();
});

const url = (path: string) => gw.url(8080, path);

async function problem(res: Awaited<ReturnType<typeof send>>) {
  expect(res.headers['content-type']).toBe('application/problem+json');
  return res.json<{ code: string; detail: string; status: number }>();
}

describe('parameters (OpenAPI 3.0)', () => {
  it('forwards a request that matches its operation', async () => {
    const res = await send(agent, url('/petstore/pets?limit=10&status=sold&tags=a&tags=b'));
    expect(res.status).toBe(200);
    expect(res.echo().path).toBe('/petstore/pets?limit=10&status=sold&tags=a&tags=b');
  });

  it('answers 400 naming the query parameter and the rule it breaks', async () => {
    let res = await send(agent, url('/petstore/pets?limit=500'));
    expect(res.status).toBe(400);
    expect(await problem(res)).toMatchObject({
      code: 'MG_ERR_INVALID_REQUEST',
      detail: 'query.limit: must be <= 100',
    });
    res = await send(agent, url('/petstore/pets?limit=ten'));
    expect((await problem(res)).detail).toBe('query.limit: must be integer');
    res = await send(agent, url('/petstore/pets?status=lost'));
    expect((await problem(res)).detail).toBe('query.status: must be one of "available", "sold"');
    res = await send(agent, url('/petstore/pets?tags=ok&tags=toolong'));
    expect((await problem(res)).detail).toBe('query.tags.1: must NOT have more than 5 characters');
  });

  it('checks path parameters, and prefers a concrete path over a template', async () => {
    expect((await send(agent, url('/petstore/pets/42'))).status).toBe(200);
    expect((await send(agent, url('/petstore/pets/mine'))).status).toBe(200);
    const res = await send(agent, url('/petstore/pets/rex'));
    expect(res.status).toBe(400);
    expect((await problem(res)).detail).toBe('path.petId: must be integer');
    const big = await send(agent, url('/petstore/pets/3000000000'));
    expect((await problem(big)).detail).toBe('path.petId: must match format "int32"');
  });

  it('checks header parameters', async () => {
    const body = JSON.stringify({ name: 'rex' });
    const headers = { 'content-type': 'application/json' };
    let res = await send(agent, url('/petstore/pets'), { method: 'POST', headers, body });
    expect((await problem(res)).detail).toBe('header.X-Request-Source: is required');
    res = await send(agent, url('/petstore/pets'), {
      method: 'POST',
      headers: { ...headers, 'x-request-source': 'fax' },
      body,
    });
    expect((await problem(res)).detail).toBe(
      'header.X-Request-Source: must be one of "web", "mobile"',
    );
  });

  it('answers 404 for a path the API does not have, 405 for a method it does not allow', async () => {
    const missing = await send(agent, url('/petstore/owners'));
    expect(missing.status).toBe(404);
    expect((await problem(missing)).code).toBe('MG_ERR_NO_OPERATION');
    const wrong = await send(agent, url('/petstore/pets'), { method: 'DELETE' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('GET, POST, HEAD');
    expect((await problem(wrong)).code).toBe('MG_ERR_METHOD_NOT_ALLOWED');
    // HEAD is taken as GET when the document does not describe it.
    expect((await send(agent, url('/petstore/pets'), { method: 'HEAD' })).status).toBe(200);
  });
});

describe('JSON bodies', () => {
  const post = (body: string | Buffer, headers: Record<string, string> = {}) =>
    send(agent, url('/petstore/pets'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-source': 'web', ...headers },
      body,
    });

  it('forwards a valid body unchanged (3.0 nullable)', async () => {
    const body = JSON.stringify({ name: 'rex', tag: null, age: 3 });
    const res = await post(body);
    expect(res.status).toBe(200);
    expect(res.echo().body).toBe(body);
  });

  it('names the failing field (3.0 schema semantics)', async () => {
    expect((await problem(await post('{}'))).detail).toBe('body.name: is required');
    expect((await problem(await post('{"name":""}'))).detail).toBe(
      'body.name: must NOT have fewer than 1 characters',
    );
    expect((await problem(await post('{"name":"rex","owner":"me"}'))).detail).toBe(
      'body.owner: is not allowed',
    );
    // OpenAPI 3.0's boolean exclusiveMinimum (draft-04).
    expect((await problem(await post('{"name":"rex","age":0}'))).detail).toBe(
      'body.age: must be > 0',
    );
    expect((await problem(await post('{"name":'))).detail).toMatch(/^body: is not valid JSON/);
  });

  it('refuses a content type the operation does not take, and a missing required body', async () => {
    const res = await post('name=rex', { 'content-type': 'application/x-www-form-urlencoded' });
    expect((await problem(res)).detail).toBe(
      'header.content-type: "application/x-www-form-urlencoded"; the operation takes application/json',
    );
    const empty = await send(agent, url('/petstore/pets'), {
      method: 'POST',
      headers: { 'x-request-source': 'web' },
    });
    expect((await problem(empty)).detail).toBe('body: is required');
  });

  it('answers 413 for a body over maxBodyBytes, announced or streamed', async () => {
    const big = JSON.stringify({ name: 'x'.repeat(300) });
    const res = await post(big);
    expect(res.status).toBe(413);
    expect((await problem(res)).code).toBe('MG_ERR_BODY_TOO_LARGE');
    // Chunked: no Content-Length, so the cap is found while reading.
    const chunked = await request(url('/petstore/pets'), {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-source': 'web' },
      body: Readable.from([
        Buffer.from('{"name":"'),
        Buffer.from('y'.repeat(400)),
        Buffer.from('"}'),
      ]),
    });
    expect(chunked.statusCode).toBe(413);
    await chunked.body.text();
  });

  it('checks OpenAPI 3.1 (JSON Schema 2020-12) documents', async () => {
    const id = '8f14e45f-ceea-467f-a0e6-2b8e1f4c8a1d';
    const put = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      send(agent, url(path), {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    const ok = await put(`/shop/orders/${id}`, { note: null, items: [{ sku: 'a', qty: 1 }] });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.echo().body)).toEqual({ note: null, items: [{ sku: 'a', qty: 1 }] });
    expect(
      (await problem(await put(`/shop/orders/${id}`, { items: [{ sku: 'a', qty: 0 }] }))).detail,
    ).toBe('body.items.0.qty: must be > 0');
    expect((await problem(await put(`/shop/orders/${id}`, { items: [] }))).detail).toBe(
      'body.items: must NOT have fewer than 1 items',
    );
    expect(
      (await problem(await put('/shop/orders/42', { items: [{ sku: 'a', qty: 1 }] }))).detail,
    ).toBe('path.orderId: must match format "uuid"');
    const cookie = await put(
      `/shop/orders/${id}`,
      { items: [{ sku: 'a', qty: 1 }] },
      { cookie: 'session=t-1' },
    );
    expect((await problem(cookie)).detail).toBe('cookie.session: must match pattern "^s-"');
  });
});

describe('order in the stack', () => {
  it('authenticates before it validates: no key is 401, not 400', async () => {
    const res = await send(agent, url('/guarded/pets?limit=500'));
    expect(res.status).toBe(401);
    const keyed = await send(agent, url('/guarded/pets?limit=500'), {
      headers: { 'x-api-key': KEY },
    });
    expect(keyed.status).toBe(400);
  });
});

describe('ReportOnly', () => {
  it('forwards a violating request and counts it by API, operation and location', async () => {
    const before = await violations('api/report', 'listPets', 'query');
    const res = await send(agent, url('/report/pets?limit=500'));
    expect(res.status).toBe(200);
    expect(res.echo().path).toBe('/report/pets?limit=500');
    expect(await violations('api/report', 'listPets', 'query')).toBe(before + 1);
  });

  it('counts every location that fails, and still forwards the body it read', async () => {
    const header = await violations('api/report', 'createPet', 'header');
    const body = await violations('api/report', 'createPet', 'body');
    const sent = JSON.stringify({ name: '' });
    const res = await send(agent, url('/report/pets'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: sent,
    });
    expect(res.status).toBe(200);
    expect(res.echo().body).toBe(sent);
    expect(await violations('api/report', 'createPet', 'header')).toBe(header + 1);
    expect(await violations('api/report', 'createPet', 'body')).toBe(body + 1);
  });

  it('forwards a body over the cap whole, read part and rest', async () => {
    const before = await violations('api/report', 'createPet', 'body');
    const sent = Readable.from([Buffer.from(`{"name":"${'z'.repeat(100)}`), Buffer.from('"}')]);
    const res = await request(url('/report/pets'), {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-source': 'web' },
      body: sent,
    });
    expect(res.statusCode).toBe(200);
    const echoed = (await res.body.json()) as { body: string };
    expect(echoed.body).toBe(`{"name":"${'z'.repeat(100)}"}`);
    expect(await violations('api/report', 'createPet', 'body')).toBe(before + 1);
  });

  it('counts unknown operations too', async () => {
    const before = await violations('api/report', 'unknown', 'operation');
    expect((await send(agent, url('/report/owners'))).status).toBe(200);
    expect(await violations('api/report', 'unknown', 'operation')).toBe(before + 1);
  });
});
