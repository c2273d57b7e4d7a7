// Gateway API conformance manifests (../shared/conformance, YAML unchanged) served end to end:
// base manifests plus one test manifest per gateway, real sockets, echo servers standing in for
// the Deployments (one EndpointSlice per backend Service points at an echo server named after
// it). The request → expected answer pairs are those of kubernetes-sigs/gateway-api
// conformance/tests/*.go; where the stored Go test is older than the manifest, the pair follows
// the manifest (noted below).

import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { startEchoServer, type EchoedRequest, type EchoServer } from '../../helpers/echo-server.ts';
import { GATEWAY_CLASS, docs } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send, type Answer } from '../../helpers/http-request.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';
import { selfSignedCertificate, tlsSecretYaml } from '../../helpers/tls.ts';

const MANIFESTS = resolve(
  import.meta.dirname,
  '../../../../shared/conformance/gateway-api/manifests',
);
const NS = 'gateway-conformance-infra';
const SAME_NAMESPACE = `${NS}/same-namespace`;
const V1 = 'infra-backend-v1';
const V2 = 'infra-backend-v2';
const V3 = 'infra-backend-v3';

const read = (file: string) =>
  readFileSync(resolve(MANIFESTS, file), 'utf8').replaceAll('{GATEWAY_CLASS_NAME}', 'meshgate');

// The suite creates this Secret when it starts; so do we, so that no key is committed.
const SUITE_SECRET = tlsSecretYaml(
  NS,
  'tls-validity-checks-certificate',
  selfSignedCertificate(['*.wildcard.org', 'second-example.org', 'example.org']),
);

const backends: Record<string, EchoServer> = {};
const agent = new Agent({ keepAliveTimeout: 1_000 });

/** EndpointSlices that put each infra backend Service on its echo server (all its ports). */
function endpointSlices(): string {
  const slice = (service: string, ports: string) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${service}-echo
  namespace: ${NS}
  labels: { kubernetes.io/service-name: ${service} }
addressType: IPv4
ports: ${ports}
endpoints: [{ addresses: ["127.0.0.1"] }]`;
  const p = (name: string) => (backends[name] as EchoServer).port;
  return docs(
    slice(
      V1,
      `[{ name: first-port, port: ${p(V1)} }, { name: second-port, port: ${p(V1)} }, { name: third-port, port: ${p(V1)} }]`,
    ),
    slice(V2, `[{ port: ${p(V2)} }]`),
    slice(V3, `[{ port: ${p(V3)} }]`),
  );
}

beforeAll(async () => {
  for (const name of [V1, V2, V3]) backends[name] = await startEchoServer(name);
});

afterAll(async () => {
  await agent.close();
  await Promise.all(Object.values(backends).map((b) => b.close()));
});

/** A gateway serving the base manifests plus `manifest`, for the duration of a describe block. */
function serve(
  manifest: string,
  gateways: string[] = [SAME_NAMESPACE],
  random?: () => number,
): () => GatewayUnderTest {
  let gw: GatewayUnderTest | undefined;
  beforeAll(async () => {
    gw = await startGateway(
      [
        GATEWAY_CLASS,
        read('base/manifests.yaml'),
        read(`tests/${manifest}`),
        SUITE_SECRET,
        endpointSlices(),
      ],
      { gateways, ...(random ? { random } : {}) },
    );
  });
  afterAll(async () => {
    await gw?.close();
  });
  return () => gw as GatewayUnderTest;
}

interface Req {
  path: string;
  host?: string;
  method?: string;
  headers?: Record<string, string>;
}

function call(gw: GatewayUnderTest, r: Req, port = 80): Promise<Answer> {
  return send(agent, gw.url(port, r.path), {
    ...(r.host ? { host: r.host } : {}),
    ...(r.method ? { method: r.method } : {}),
    ...(r.headers ? { headers: r.headers } : {}),
  });
}

/** The backend that served the answer, or its status when it is not a 200. */
async function routedTo(gw: GatewayUnderTest, r: Req): Promise<string | number> {
  const a = await call(gw, r);
  return a.status === 200 ? a.echo().server : a.status;
}

interface Redirect {
  scheme: string;
  host: string;
  port: string;
  path: string;
}

/** The Location as the conformance suite reads it (an empty port: the scheme's default or none). */
function parseLocation(location: string | string[] | undefined): Redirect {
  const u = new URL(String(location));
  return { scheme: u.protocol.slice(0, -1), host: u.hostname, port: u.port, path: u.pathname };
}

/** The suite's check: a missing expected port allows only the scheme's well-known port or none. */
function expectRedirect(got: Redirect, want: Partial<Redirect> & { scheme: string }): void {
  if (want.host !== undefined) expect(got.host).toBe(want.host);
  expect(got.scheme).toBe(want.scheme);
  if (want.port) expect(got.port).toBe(want.port);
  else expect(['', want.scheme === 'https' ? '443' : '80']).toContain(got.port);
  if (want.path !== undefined) expect(got.path).toBe(want.path);
}

describe('HTTPRouteSimpleSameNamespace', () => {
  const gw = serve('httproute-simple-same-namespace.yaml');
  it('GET / → infra-backend-v1', async () => {
    expect(await routedTo(gw(), { path: '/' })).toBe(V1);
  });
});

describe('HTTPRouteMatching', () => {
  const gw = serve('httproute-matching.yaml');
  it.each<[Req, string]>([
    [{ path: '/' }, V1],
    [{ path: '/example' }, V1],
    [{ path: '/', headers: { Version: 'one' } }, V1],
    [{ path: '/v2' }, V2],
    [{ path: '/v2/example' }, V2],
    [{ path: '/', headers: { Version: 'two' } }, V2],
  ])('%j → %s', async (req, want) => {
    expect(await routedTo(gw(), req)).toBe(want);
  });
});

describe('HTTPRouteHeaderMatching', () => {
  const gw = serve('httproute-header-matching.yaml');
  it.each<[Record<string, string>, string | number]>([
    [{ Version: 'one' }, V1],
    [{ Version: 'two' }, V2],
    [{ Version: 'two', Color: 'orange' }, V1],
    [{ Version: 'two', Color: 'blue' }, V2],
    [{ Color: 'orange' }, 404],
    [{ 'Some-Other-Header': 'one' }, 404],
    [{ Color: 'blue' }, V1],
    [{ Color: 'green' }, V1],
    [{ Color: 'red' }, V2],
    [{ Color: 'yellow' }, V2],
    [{ Color: 'purple' }, 404],
  ])('%j → %s', async (headers, want) => {
    expect(await routedTo(gw(), { path: '/', headers })).toBe(want);
  });
});

describe('HTTPRouteQueryParamMatching', () => {
  const gw = serve('httproute-query-param-matching.yaml');
  it.each<[Req, string | number]>([
    [{ path: '/?animal=whale' }, V1],
    [{ path: '/?animal=dolphin' }, V2],
    [{ path: '/?animal=dolphin&color=blue' }, V3],
    [{ path: '/?ANIMAL=Whale' }, V3],
    [{ path: '/?animal=whale&otherparam=irrelevant' }, V1],
    [{ path: '/?animal=dolphin&color=yellow' }, V2],
    [{ path: '/?color=blue' }, 404],
    [{ path: '/?animal=dog' }, 404],
    [{ path: '/?animal=whaledolphin' }, 404],
    [{ path: '/' }, 404],
    [{ path: '/path1?animal=whale' }, V1],
    [{ path: '/?animal=whale', headers: { version: 'one' } }, V2],
    [{ path: '/path2?animal=whale', headers: { version: 'two' } }, V3],
    [{ path: '/path3?animal=shark' }, V1],
    [{ path: '/path4?animal=kraken', headers: { version: 'three' } }, V1],
    [{ path: '/?animal=shark' }, 404],
    [{ path: '/path4?animal=kraken' }, 404],
    [{ path: '/path5?animal=hydra' }, V1],
    [{ path: '/?animal=hydra', headers: { version: 'four' } }, V3],
  ])('%j → %s', async (req, want) => {
    expect(await routedTo(gw(), req)).toBe(want);
  });
});

describe('HTTPRouteMethodMatching', () => {
  const gw = serve('httproute-method-matching.yaml');
  it.each<[Req, string | number]>([
    [{ method: 'POST', path: '/' }, V1],
    [{ method: 'GET', path: '/' }, V2],
    [{ method: 'HEAD', path: '/' }, 404],
    [{ method: 'GET', path: '/path1' }, V1],
    [{ method: 'PUT', path: '/', headers: { version: 'one' } }, V2],
    [{ method: 'POST', path: '/path2', headers: { version: 'two' } }, V3],
    [{ method: 'PATCH', path: '/path3' }, V1],
    [{ method: 'DELETE', path: '/path4', headers: { version: 'three' } }, V1],
    [{ method: 'PUT', path: '/' }, 404],
    [{ method: 'DELETE', path: '/path4' }, 404],
    [{ method: 'PATCH', path: '/path5' }, V1],
    [{ method: 'PATCH', path: '/', headers: { version: 'four' } }, V2],
  ])('%j → %s', async (req, want) => {
    expect(await routedTo(gw(), req)).toBe(want);
  });
});

const MODIFY_HEADERS_IN = {
  'X-Header-Remove': 'remove-val',
  'X-Header-Add-Append': 'append-val-1',
};
const MODIFY_HEADERS_OUT = {
  'x-header-add': 'header-val-1',
  'x-header-add-append': 'append-val-1,header-val-2',
  'x-header-set': 'set-overwrites-values',
};

describe('HTTPRouteRewritePath', () => {
  const gw = serve('httproute-rewrite-path.yaml');
  it.each<[Req, string, Record<string, string>?]>([
    [{ path: '/prefix/one/two' }, '/one/two'],
    [{ path: '/full/one/two' }, '/one'],
    [
      {
        path: '/full/rewrite-path-and-modify-headers/test',
        headers: { ...MODIFY_HEADERS_IN, 'X-Header-Set': 'set-val' },
      },
      '/test',
      MODIFY_HEADERS_OUT,
    ],
    [
      {
        path: '/prefix/rewrite-path-and-modify-headers/one',
        headers: { ...MODIFY_HEADERS_IN, 'X-Header-Set': 'set-val' },
      },
      '/prefix/one',
      MODIFY_HEADERS_OUT,
    ],
  ])('%j is forwarded as %s', async (req, path, headers) => {
    const echoed = (await call(gw(), req)).echo();
    expect(echoed).toMatchObject({ server: V1, path });
    if (headers) {
      expect(echoed.headers).toMatchObject(headers);
      expect(echoed.headers['x-header-remove']).toBeUndefined();
    }
  });
});

describe('HTTPRouteRewriteHost', () => {
  const gw = serve('httproute-rewrite-host.yaml');
  it.each<[Req, string, string, string]>([
    [{ path: '/one', host: 'rewrite.example' }, V1, 'one.example.org', '/one'],
    [{ path: '/two', host: 'rewrite.example' }, V2, 'example.org', '/two'],
    [
      {
        path: '/rewrite-host-and-modify-headers',
        host: 'rewrite.example',
        headers: MODIFY_HEADERS_IN,
      },
      V2,
      'test.example.org',
      '/rewrite-host-and-modify-headers',
    ],
  ])('%j → %s with Host %s', async (req, backend, host, path) => {
    const echoed = (await call(gw(), req)).echo();
    expect(echoed).toMatchObject({ server: backend, path });
    expect(echoed.headers.host).toBe(host);
    if (req.headers) {
      expect(echoed.headers).toMatchObject(MODIFY_HEADERS_OUT);
      expect(echoed.headers['x-header-remove']).toBeUndefined();
    }
  });
});

describe('HTTPRouteRequestHeaderModifier', () => {
  const gw = serve('httproute-request-header-modifier.yaml');
  it.each<[Req, Record<string, string>, string[]]>([
    [
      { path: '/set', headers: { 'Some-Other-Header': 'val' } },
      { 'x-header-set': 'set-overwrites-values' },
      [],
    ],
    [
      { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' } },
      { 'some-other-header': 'val', 'x-header-set': 'set-overwrites-values' },
      [],
    ],
    [
      { path: '/add', headers: { 'Some-Other-Header': 'val' } },
      { 'x-header-add': 'add-appends-values' },
      [],
    ],
    [
      { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' } },
      { 'x-header-add': 'some-other-value,add-appends-values' },
      [],
    ],
    [{ path: '/remove', headers: { 'X-Header-Remove': 'val' } }, {}, ['x-header-remove']],
    [
      {
        path: '/multiple',
        headers: {
          'X-Header-Set-2': 'set-val-2',
          'X-Header-Add-2': 'add-val-2',
          'X-Header-Remove-2': 'remove-val-2',
          'Another-Header': 'another-header-val',
        },
      },
      {
        'x-header-set-1': 'header-set-1',
        'x-header-set-2': 'header-set-2',
        'x-header-add-1': 'header-add-1',
        'x-header-add-2': 'add-val-2,header-add-2',
        'x-header-add-3': 'header-add-3',
        'another-header': 'another-header-val',
      },
      ['x-header-remove-1', 'x-header-remove-2'],
    ],
    [
      {
        path: '/case-insensitivity',
        headers: {
          'x-header-set': 'original-val-set',
          'x-header-add': 'original-val-add',
          'x-header-remove': 'original-val-remove',
          'Another-Header': 'another-header-val',
        },
      },
      {
        'x-header-set': 'header-set',
        'x-header-add': 'original-val-add,header-add',
        'another-header': 'another-header-val',
      },
      ['x-header-remove'],
    ],
  ])('%j', async (req, expected, absent) => {
    const echoed = (await call(gw(), req)).echo();
    expect(echoed.server).toBe(V1);
    expect(echoed.headers).toMatchObject(expected);
    for (const h of absent) expect(echoed.headers[h]).toBeUndefined();
  });
});

describe('HTTPRouteResponseHeaderModifier', () => {
  // The backend sets the response headers the request names (X-Echo-Set-Header, as the suite's
  // echo server does); the gateway modifies them on the way back.
  const gw = serve('httproute-response-header-modifier.yaml');
  it.each<[string, string, Record<string, string>, string[]]>([
    [
      '/set',
      'Some-Other-Header:val',
      { 'some-other-header': 'val', 'x-header-set': 'set-overwrites-values' },
      [],
    ],
    [
      '/set',
      'Some-Other-Header:val,X-Header-Set:some-other-value',
      { 'x-header-set': 'set-overwrites-values' },
      [],
    ],
    ['/add', 'Some-Other-Header:val', { 'x-header-add': 'add-appends-values' }, []],
    [
      '/add',
      'Some-Other-Header:val,X-Header-Add:some-other-value',
      { 'x-header-add': 'some-other-value,add-appends-values' },
      [],
    ],
    ['/remove', 'X-Header-Remove:val', {}, ['x-header-remove']],
    [
      '/multiple',
      'X-Header-Set-2:set-val-2,X-Header-Add-2:add-val-2,X-Header-Remove-2:remove-val-2,Another-Header:another-header-val',
      {
        'x-header-set-1': 'header-set-1',
        'x-header-set-2': 'header-set-2',
        'x-header-add-1': 'header-add-1',
        'x-header-add-2': 'add-val-2,header-add-2',
        'x-header-add-3': 'header-add-3',
        'another-header': 'another-header-val',
      },
      ['x-header-remove-1', 'x-header-remove-2'],
    ],
    [
      '/case-insensitivity',
      'x-header-set:original-val-set,x-header-add:original-val-add,x-header-remove:original-val-remove,Another-Header:another-header-val',
      { 'x-header-set': 'header-set', 'x-header-add': 'original-val-add,header-add' },
      ['x-header-remove'],
    ],
  ])('%s with backend headers %s', async (path, backendHeaders, expected, absent) => {
    const a = await call(gw(), { path, headers: { 'X-Echo-Set-Header': backendHeaders } });
    expect(a.status).toBe(200);
    expect(a.headers).toMatchObject(expected);
    for (const h of absent) expect(a.headers[h]).toBeUndefined();
  });
});

describe('HTTPRouteRedirectPath', () => {
  const gw = serve('httproute-redirect-path.yaml');
  it.each<[string, number, Partial<Redirect>]>([
    ['/original-prefix/lemon', 302, { path: '/replacement-prefix/lemon' }],
    ['/full/path/original', 302, { path: '/full-path-replacement' }],
    ['/path-and-host', 302, { host: 'example.org', path: '/replacement-prefix' }],
    ['/path-and-status', 301, { path: '/replacement-prefix' }],
    ['/full-path-and-host', 302, { host: 'example.org', path: '/replacement-full' }],
    ['/full-path-and-status', 301, { path: '/replacement-full' }],
  ])('%s → %i %j', async (path, status, want) => {
    const a = await call(gw(), { path, host: 'gw.conformance.test' });
    expect(a.status).toBe(status);
    expectRedirect(parseLocation(a.headers.location), {
      scheme: 'http',
      host: 'gw.conformance.test',
      ...want,
    });
  });
});

describe('HTTPRouteRedirectPort', () => {
  const gw = serve('httproute-redirect-port.yaml');
  it.each<[string, number, Partial<Redirect>]>([
    ['/port', 302, { port: '8083' }],
    ['/port-and-host', 302, { host: 'example.org', port: '8083' }],
    ['/port-and-status', 301, { port: '8083' }],
    ['/port-and-host-and-status', 302, { host: 'example.org', port: '8083' }],
  ])('%s → %i %j', async (path, status, want) => {
    const a = await call(gw(), { path, host: 'gw.conformance.test' });
    expect(a.status).toBe(status);
    expectRedirect(parseLocation(a.headers.location), {
      scheme: 'http',
      host: 'gw.conformance.test',
      path,
      ...want,
    });
  });
});

describe('HTTPRouteRedirectScheme and HTTPRouteRedirectHostAndStatus', () => {
  const scheme = serve('httproute-redirect-scheme.yaml');
  const hostAndStatus = serve('httproute-redirect-host-and-status.yaml');
  it.each<[string, number, Partial<Redirect> & { scheme: string }]>([
    ['/scheme', 302, { scheme: 'https' }],
    ['/scheme-and-host', 302, { scheme: 'https', host: 'example.org' }],
    ['/scheme-and-status', 301, { scheme: 'https' }],
    ['/scheme-and-host-and-status', 302, { scheme: 'https', host: 'example.org' }],
  ])('%s → %i %j', async (path, status, want) => {
    const a = await call(scheme(), { path, host: 'gw.conformance.test' });
    expect(a.status).toBe(status);
    expectRedirect(parseLocation(a.headers.location), {
      host: 'gw.conformance.test',
      path,
      ...want,
    });
  });

  it.each<[string, number]>([
    ['/hostname-redirect', 302],
    ['/host-and-status', 301],
  ])('%s → %i to example.org', async (path, status) => {
    const a = await call(hostAndStatus(), { path, host: 'gw.conformance.test' });
    expect(a.status).toBe(status);
    expectRedirect(parseLocation(a.headers.location), {
      scheme: 'http',
      host: 'example.org',
      path,
    });
  });
});

describe('HTTPRouteRedirectPortAndScheme', () => {
  const gw = serve('httproute-redirect-port-and-scheme.yaml', [
    SAME_NAMESPACE,
    `${NS}/same-namespace-with-http-listener-on-8080`,
    `${NS}/same-namespace-with-https-listener`,
  ]);
  const httpCases = (
    listenerPort: number,
    cases: [string, Partial<Redirect> & { scheme: string }][],
  ) =>
    it.each(cases)(`listener ${listenerPort}: %s → %j`, async (path, want) => {
      const a = await call(gw(), { path }, listenerPort);
      expect(a.status).toBe(302);
      expectRedirect(parseLocation(a.headers.location), { host: 'example.org', ...want });
    });
  httpCases(80, [
    ['/scheme-nil-and-port-nil', { scheme: 'http' }],
    ['/scheme-nil-and-port-80', { scheme: 'http' }],
    ['/scheme-nil-and-port-8080', { scheme: 'http', port: '8080' }],
    ['/scheme-https-and-port-nil', { scheme: 'https' }],
    ['/scheme-https-and-port-443', { scheme: 'https' }],
    ['/scheme-https-and-port-8443', { scheme: 'https', port: '8443' }],
  ]);
  httpCases(8080, [
    ['/scheme-nil-and-port-nil', { scheme: 'http', port: '8080' }],
    ['/scheme-nil-and-port-80', { scheme: 'http' }],
    ['/scheme-https-and-port-nil', { scheme: 'https' }],
  ]);
  it.each<[string, Partial<Redirect> & { scheme: string }]>([
    ['/scheme-nil-and-port-nil', { scheme: 'https' }],
    ['/scheme-nil-and-port-443', { scheme: 'https' }],
    ['/scheme-nil-and-port-8443', { scheme: 'https', port: '8443' }],
    ['/scheme-http-and-port-nil', { scheme: 'http' }],
    ['/scheme-http-and-port-80', { scheme: 'http' }],
    ['/scheme-http-and-port-8080', { scheme: 'http', port: '8080' }],
  ])('listener 443 (TLS, SNI example.org): %s → %j', async (path, want) => {
    const a = await httpsGet(gw().port(443), 'example.org', 'example.org', path);
    expect(a.status).toBe(302);
    expectRedirect(parseLocation(a.headers.location), { host: 'example.org', ...want });
  });
});

describe('HTTPRouteBackendURLRewrite and HTTPRouteBackendRequestRedirect', () => {
  const rewrite = serve('httproute-backend-url-rewrite.yaml');
  const redirect = serve('httproute-backend-request-redirect.yaml');
  it.each([
    ['/full/original', '/rewritten-full'],
    ['/prefix/original', '/rewritten-prefix/original'],
  ])('rewrite: %s is forwarded as %s', async (path, want) => {
    expect((await call(rewrite(), { path })).echo()).toMatchObject({ server: V1, path: want });
  });
  // The stored Go test is older than the manifest; these follow the manifest's filters.
  it.each([
    ['/full/original', '/redirected-full'],
    ['/prefix/original', '/redirected-prefix/original'],
  ])('redirect: %s → 302 to %s', async (path, want) => {
    const a = await call(redirect(), { path, host: 'gw.conformance.test' });
    expect(a.status).toBe(302);
    expectRedirect(parseLocation(a.headers.location), {
      scheme: 'http',
      host: 'gw.conformance.test',
      path: want,
    });
  });
});

describe('HTTPRouteRequestHeaderModifierBackend', () => {
  const gw = serve('httproute-request-header-modifier-backend.yaml');
  it.each<[Req, Record<string, string>, string[]]>([
    [
      { path: '/set', headers: { 'X-Header-Set': 'some-other-value' } },
      { 'x-header-set': 'set-overwrites-values' },
      [],
    ],
    [
      { path: '/add', headers: { 'X-Header-Add': 'some-other-value' } },
      { 'x-header-add': 'some-other-value,add-appends-values' },
      [],
    ],
    [{ path: '/remove', headers: { 'X-Header-Remove': 'val' } }, {}, ['x-header-remove']],
  ])('%j', async (req, expected, absent) => {
    const echoed = (await call(gw(), req)).echo();
    expect(echoed.headers).toMatchObject(expected);
    for (const h of absent) expect(echoed.headers[h]).toBeUndefined();
  });
});

describe('HTTPRouteRequestMirror', () => {
  const gw = serve('httproute-request-mirror.yaml');
  it.each<[Req, Record<string, string>]>([
    [{ path: '/mirror' }, {}],
    [{ path: '/mirror-and-modify-headers', headers: MODIFY_HEADERS_IN }, MODIFY_HEADERS_OUT],
  ])('%j is served by v1 and mirrored to v2', async (req, headers) => {
    const mirror = backends[V2] as EchoServer;
    const before = mirror.requests.length;
    const echoed = (await call(gw(), req)).echo();
    expect(echoed).toMatchObject({ server: V1, path: req.path });
    expect(echoed.headers).toMatchObject(headers);
    for (let i = 0; i < 200 && mirror.requests.length === before; i++)
      await new Promise((r) => setTimeout(r, 10));
    const copy = mirror.requests[before] as EchoedRequest;
    expect(copy.path).toBe(req.path);
    expect(copy.headers).toMatchObject(headers);
  });
});

describe('HTTPRouteWeight', () => {
  const gw = serve('httproute-weight.yaml', [SAME_NAMESPACE], seededRandom(11));
  it('70/30/0 split over 500 requests (seeded random)', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 500; i++) {
      const to = String(await routedTo(gw(), { path: `/w/${i}` }));
      counts[to] = (counts[to] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual([V1, V2]);
    // Binomial(500, 0.7): mean 350, sd ≈ 10.2; four sd either way.
    expect(counts[V1]).toBeGreaterThan(309);
    expect(counts[V1]).toBeLessThan(391);
  });
});

describe('HTTPRouteCORS', () => {
  const gw = serve('httproute-cors.yaml');
  const preflight = (path: string, origin: string, method: string, headers?: string) =>
    call(gw(), {
      path,
      method: 'OPTIONS',
      headers: {
        Origin: origin,
        'access-control-request-method': method,
        ...(headers ? { 'access-control-request-headers': headers } : {}),
      },
    });
  const noSpace = (v: unknown) => String(v).replaceAll(' ', '');

  it.each(['https://www.foo.com', 'https://www.bar.com', 'https://xpto.www.bar.com'])(
    'preflight from %s to /cors-1 is allowed with the configured headers',
    async (origin) => {
      const a = await preflight('/cors-1', origin, 'GET', 'x-header-1, x-header-2');
      expect([200, 204]).toContain(a.status);
      expect(a.headers['access-control-allow-origin']).toBe(origin);
      expect(['GET,OPTIONS', 'OPTIONS,GET']).toContain(
        noSpace(a.headers['access-control-allow-methods']),
      );
      expect(['x-header-1,x-header-2', 'x-header-2,x-header-1']).toContain(
        noSpace(a.headers['access-control-allow-headers']),
      );
      expect(['x-header-3,x-header-4', 'x-header-4,x-header-3']).toContain(
        noSpace(a.headers['access-control-expose-headers']),
      );
      expect(a.headers['access-control-max-age']).toBe('3600');
      expect(a.headers['access-control-allow-credentials']).toBe('true');
    },
  );

  it('preflight from a non-matching origin gets no allow-origin', async () => {
    const a = await preflight('/cors-1', 'https://foobar.com', 'GET');
    expect([200, 204, 403]).toContain(a.status);
    expect(a.headers['access-control-allow-origin']).toBeUndefined();
  });

  it.each([
    ['https://www.foo.com', 'https://www.foo.com'],
    ['https://www.bar.com', 'https://www.bar.com'],
    ['https://foobar.com', undefined],
  ])('simple request from %s → allow-origin %s', async (origin, want) => {
    const a = await call(gw(), {
      path: '/cors-1',
      headers: { Origin: origin, 'access-control-request-method': 'GET' },
    });
    expect(a.headers['access-control-allow-origin']).toBe(want);
    if (want) expect(a.echo().server).toBe(V1);
  });

  it('allowMethods "*" without credentials: POST preflight allowed, no credentials header', async () => {
    const a = await preflight('/cors-2', 'https://www.foo.com', 'POST');
    expect([200, 204]).toContain(a.status);
    expect(['POST', '*']).toContain(a.headers['access-control-allow-methods']);
    expect(a.headers['access-control-allow-origin']).toBe('https://www.foo.com');
    expect(a.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it.each(['https://foobar.com', 'https://foobar.com:12345'])(
    'allowOrigins "*": preflight from %s is answered with it or "*"',
    async (origin) => {
      const a = await preflight('/cors-wildcard-origin', origin, 'PUT');
      expect([200, 204]).toContain(a.status);
      expect([origin, '*']).toContain(a.headers['access-control-allow-origin']);
      expect(a.headers['access-control-allow-methods']).toBe('PUT');
      expect(a.headers['access-control-allow-credentials']).toBeUndefined();
    },
  );

  it.each(['https://foobar.com', 'https://foobar.com:12345'])(
    'allowOrigins "*": a PUT from %s is answered with it or "*"',
    async (origin) => {
      const a = await call(gw(), {
        path: '/cors-wildcard-origin',
        method: 'PUT',
        headers: { Origin: origin },
      });
      expect(a.status).toBe(200);
      expect([origin, '*']).toContain(a.headers['access-control-allow-origin']);
    },
  );

  it('credentials with wildcards: preflight echoes origin, method and headers', async () => {
    const a = await preflight(
      '/cors-wildcard-methods-headers',
      'https://other.foo.com',
      'PUT',
      'x-header-1, x-header-2',
    );
    expect(a.status).toBe(200);
    expect(a.headers['access-control-allow-origin']).toBe('https://other.foo.com');
    expect(a.headers['access-control-allow-methods']).toBe('PUT');
    expect(['x-header-1,x-header-2', 'x-header-2,x-header-1']).toContain(
      noSpace(a.headers['access-control-allow-headers']),
    );
    expect(a.headers['access-control-allow-credentials']).toBe('true');
  });

  it('wildcards without credentials: preflight may use "*", never the credentials header', async () => {
    const a = await preflight(
      '/cors-wildcard-methods-headers-unauth',
      'https://other.foo.com',
      'PUT',
      'x-header-1, x-header-2',
    );
    expect(a.status).toBe(200);
    expect(['https://other.foo.com', '*']).toContain(a.headers['access-control-allow-origin']);
    expect(['PUT', '*']).toContain(a.headers['access-control-allow-methods']);
    expect(['x-header-1,x-header-2', 'x-header-2,x-header-1', '*']).toContain(
      noSpace(a.headers['access-control-allow-headers']),
    );
    expect(a.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it.each<[string, string | undefined]>([
    ['/cors-wildcard-methods-headers', 'true'],
    ['/cors-wildcard-methods-headers-unauth', undefined],
  ])(
    'a GET with credentials to %s echoes the origin; credentials header %s',
    async (path, creds) => {
      const a = await call(gw(), {
        path,
        headers: { Origin: 'https://other.foo.com', Authorization: 'Bearer test' },
      });
      expect(a.status).toBe(200);
      expect(a.headers['access-control-allow-origin']).toBe('https://other.foo.com');
      expect(a.headers['access-control-allow-credentials']).toBe(creds);
    },
  );
});

describe('HTTPRouteHTTPSListenerDetectMisdirectedRequests', () => {
  const gw = serve('httproute-https-listener-detect-misdirected-requests.yaml', [
    `${NS}/same-namespace-with-https-listener`,
  ]);
  it.each<[string, string, number, string?]>([
    ['example.org', 'example.org', 200, V1],
    ['example.org', 'second-example.org', 421],
    ['example.org', 'unknown-example.org', 404],
    ['second-example.org', 'second-example.org', 200, V2],
    ['second-example.org', 'example.org', 421],
    ['second-example.org', 'unknown-example.org', 421],
    ['third-example.wildcard.org', 'third-example.wildcard.org', 200, V3],
    ['third-example.wildcard.org', 'fith-example.wildcard.org', 200, V3],
    ['third-example.wildcard.org', 'fourth-example.wildcard.org', 421],
    ['third-example.wildcard.org', 'second-example.org', 421],
    ['third-example.wildcard.org', 'unknown-example.org', 421],
    ['fourth-example.wildcard.org', 'fourth-example.wildcard.org', 200, V1],
    ['fourth-example.wildcard.org', 'fith-example.wildcard.org', 421],
    ['unknown-example.org', 'example.org', 200, V1],
    ['unknown-example.org', 'unknown-example.org', 404],
  ])('SNI %s, Host %s → %i', async (servername, host, status, backend) => {
    const a = await httpsGet(gw().port(443), servername, host, '/detect-misdirected-requests');
    expect(a.status).toBe(status);
    if (backend) expect((JSON.parse(a.body) as EchoedRequest).server).toBe(backend);
  });
});

/** One HTTP/1.1 request over TLS with the given SNI and Host, on a fresh connection. */
function httpsGet(
  port: number,
  servername: string,
  host: string,
  path: string,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername,
        headers: { host },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolvePromise({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.once('error', reject);
    req.end();
  });
}
