// Every HTTPRoute filter through real sockets: header modifiers, redirects, rewrites, mirrors,
// backendRef-level filters and CORS (apis/v1 httproute_types.go describes each).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send } from '../../helpers/http-request.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';

/** The ReplacePrefixMatch table of HTTPPathModifier: [request path, prefix match, replacement, modified path]. */
const PREFIX_TABLE: [string, string, string, string][] = [
  ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
  ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
  ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
  ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
  ['/foo', '/foo', '/xyz', '/xyz'],
  ['/foo/', '/foo', '/xyz', '/xyz/'],
  ['/foo/bar', '/foo', '', '/bar'],
  ['/foo/', '/foo', '', '/'],
  ['/foo', '/foo', '', '/'],
  ['/foo/', '/foo', '/', '/'],
  ['/foo', '/foo', '/', '/'],
];
/** One route per (prefix, replacement) pair, told apart by hostname. */
const PREFIX_PAIRS = [...new Set(PREFIX_TABLE.map(([, p, v]) => JSON.stringify([p, v])))].map(
  (s) => JSON.parse(s) as [string, string],
);
const pairHost = (kind: string, prefix: string, value: string) =>
  `${kind}-${PREFIX_PAIRS.findIndex(([p, v]) => p === prefix && v === value)}.test`;

function prefixTableRoutes(kind: 'redirect' | 'rewrite'): string[] {
  return PREFIX_PAIRS.map(
    ([prefix, value], i) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${kind}-table-${i}, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  hostnames: ["${kind}-${i}.test"]
  rules:
    - matches: [{ path: { type: PathPrefix, value: "${prefix}" } }]
      filters:
        - type: ${kind === 'redirect' ? 'RequestRedirect' : 'URLRewrite'}
          ${kind === 'redirect' ? 'requestRedirect' : 'urlRewrite'}:
            path: { type: ReplacePrefixMatch, replacePrefixMatch: "${value}" }
${kind === 'rewrite' ? '      backendRefs: [{ name: echo, port: 80 }]\n' : ''}`,
  );
}

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: filters, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /headers } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: X-Set, value: set-value }]
            add: [{ name: X-Add, value: bar }]
            remove: [X-Remove]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{ name: X-Resp-Set, value: resp-set }]
            add: [{ name: X-Resp-Add, value: added }]
            remove: [X-Upstream]
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /rewrite-host } }]
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: rewritten.example }
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /rewrite-full } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /new/full } }
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /mirror } }]
      filters:
        - type: RequestMirror
          requestMirror: { backendRef: { name: mirror, port: 80 } }
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /sampled-percent } }]
      filters:
        - type: RequestMirror
          requestMirror: { backendRef: { name: mirror, port: 80 }, percent: 25 }
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /sampled-fraction } }]
      filters:
        - type: RequestMirror
          requestMirror:
            backendRef: { name: mirror, port: 80 }
            fraction: { numerator: 1, denominator: 3 }
      backendRefs: [{ name: echo, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /cors } }]
      filters:
        - type: CORS
          cors:
            allowOrigins: ["https://app.example", "https://*.apps.example"]
            allowMethods: [GET, PUT]
            allowHeaders: [x-a, x-b]
            exposeHeaders: [x-c]
            allowCredentials: true
            maxAge: 600
      backendRefs: [{ name: echo, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: backend-filters, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /backend-headers } }]
      backendRefs:
        - name: echo
          port: 80
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: { set: [{ name: X-Backend, value: echo }], add: [{ name: X-Add, value: backend }] }
            - type: ResponseHeaderModifier
              responseHeaderModifier: { set: [{ name: X-Backend-Response, value: echo }] }
    - matches: [{ path: { type: PathPrefix, value: /backend-rewrite } }]
      backendRefs:
        - name: echo
          port: 80
          filters:
            - type: URLRewrite
              urlRewrite:
                hostname: backend-rewritten.example
                path: { type: ReplacePrefixMatch, replacePrefixMatch: /rewritten }
    - matches: [{ path: { type: PathPrefix, value: /backend-redirect } }]
      backendRefs:
        - name: echo
          port: 80
          filters:
            - type: RequestRedirect
              requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /redirected-full } }
    - matches: [{ path: { type: PathPrefix, value: /backend-mirror } }]
      backendRefs:
        - name: echo
          port: 80
          filters:
            - type: RequestMirror
              requestMirror: { backendRef: { name: mirror, port: 80 } }
    - matches: [{ path: { type: PathPrefix, value: /backend-cors } }]
      backendRefs:
        - name: echo
          port: 80
          filters:
            - type: CORS
              cors: { allowOrigins: ["https://app.example"], allowMethods: [PATCH] }
    - matches: [{ path: { type: PathPrefix, value: /backend-extension } }]
      backendRefs:
        - name: echo
          port: 80
          filters:
            - type: ExtensionRef
              extensionRef: { group: example.io, kind: Custom, name: custom }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: redirects, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /scheme } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }]
    - matches: [{ path: { type: PathPrefix, value: /host } }]
      filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
    - matches: [{ path: { type: PathPrefix, value: /port } }]
      filters: [{ type: RequestRedirect, requestRedirect: { port: 8443 } }]
    - matches: [{ path: { type: PathPrefix, value: /http-80 } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: http, port: 80 } }]
    - matches: [{ path: { type: PathPrefix, value: /https-443 } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, port: 443 } }]
    - matches: [{ path: { type: PathPrefix, value: /https-8443 } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, port: 8443 } }]
    - matches: [{ path: { type: PathPrefix, value: /full } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /replaced }, statusCode: 301 }
    - matches: [{ path: { type: PathPrefix, value: /status-308 } }]
      filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org, statusCode: 308 } }]
`;

let echo: EchoServer;
let mirror: EchoServer;
let gw: GatewayUnderTest;
const agent = new Agent({ keepAliveTimeout: 1_000 });

beforeAll(async () => {
  echo = await startEchoServer('echo');
  mirror = await startEchoServer('mirror');
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml(
        'default',
        'gw',
        '    - { name: http, port: 80, protocol: HTTP }\n    - { name: alt, port: 8080, protocol: HTTP }',
      ),
      serviceYaml('default', 'echo', echo.port),
      serviceYaml('default', 'mirror', mirror.port),
      ROUTES,
      ...prefixTableRoutes('redirect'),
      ...prefixTableRoutes('rewrite'),
    ),
    { random: seededRandom(7) },
  );
});

afterAll(async () => {
  await agent.close();
  await gw?.close();
  await echo?.close();
  await mirror?.close();
});

/** Waits (bounded) until `count()` reaches `n`; returns the last count. */
async function settle(count: () => number, n: number): Promise<number> {
  for (let i = 0; i < 200 && count() < n; i++) await new Promise((r) => setTimeout(r, 10));
  return count();
}

describe('RequestHeaderModifier and ResponseHeaderModifier', () => {
  it('sets, adds (joined with ",") and removes request headers', async () => {
    const a = await send(agent, gw.url(80, '/headers'), {
      headers: { 'x-set': 'old', 'x-add': 'foo', 'x-remove': 'gone', 'x-other': 'kept' },
    });
    expect(a.status).toBe(200);
    const seen = a.echo().headers;
    expect(seen['x-set']).toBe('set-value');
    // The spec's example: "my-header: foo" plus add "bar" → "my-header: foo,bar".
    expect(seen['x-add']).toBe('foo,bar');
    expect(seen['x-remove']).toBeUndefined();
    expect(seen['x-other']).toBe('kept');
  });

  it('adds a header the request did not have', async () => {
    const seen = (await send(agent, gw.url(80, '/headers'))).echo().headers;
    expect(seen['x-add']).toBe('bar');
    expect(seen['x-set']).toBe('set-value');
  });

  it('sets, appends to and removes response headers', async () => {
    const a = await send(agent, gw.url(80, '/headers'), {
      headers: { 'x-echo-set-header': 'X-Resp-Set:upstream,X-Resp-Add:up' },
    });
    expect(a.headers['x-resp-set']).toBe('resp-set');
    expect(a.headers['x-resp-add']).toBe('up,added');
    expect(a.headers['x-upstream']).toBeUndefined();
  });
});

describe('RequestRedirect', () => {
  const host = 'www.example.test';
  const location = async (listener: number, path: string, reqHost = host) => {
    const a = await send(agent, gw.url(listener, path), { host: reqHost });
    return { status: a.status, location: a.headers.location };
  };

  it('changes the scheme; the new scheme implies its well-known port, which is left out', async () => {
    expect(await location(80, '/scheme/a?x=1')).toEqual({
      status: 302,
      location: `https://${host}/scheme/a?x=1`,
    });
    expect(await location(8080, '/scheme')).toEqual({
      status: 302,
      location: `https://${host}/scheme`,
    });
  });

  // Regression: the port came from the socket, which is listener port + offset when the gateway
  // binds with a port offset (and the Gateway API says: the listener's port).
  it('without scheme or port keeps the listener port (left out when it is 80)', async () => {
    expect((await location(80, '/host/x')).location).toBe('http://example.org/host/x');
    expect((await location(8080, '/host/x')).location).toBe('http://example.org:8080/host/x');
  });

  it('takes the hostname from the Host header without its port', async () => {
    expect((await location(8080, '/full', 'client.example:9999')).location).toBe(
      'http://client.example:8080/replaced',
    );
  });

  it('uses the given port, left out only for http:80 and https:443', async () => {
    expect((await location(80, '/port')).location).toBe(`http://${host}:8443/port`);
    expect((await location(8080, '/http-80')).location).toBe(`http://${host}/http-80`);
    expect((await location(8080, '/https-443')).location).toBe(`https://${host}/https-443`);
    expect((await location(80, '/https-8443')).location).toBe(`https://${host}:8443/https-8443`);
  });

  it('ReplaceFullPath with status 301, and the configured status code', async () => {
    expect(await location(80, '/full/deep/path')).toEqual({
      status: 301,
      location: `http://${host}/replaced`,
    });
    expect(await location(80, '/status-308')).toEqual({
      status: 308,
      location: 'http://example.org/status-308',
    });
  });

  it.each(PREFIX_TABLE)(
    'ReplacePrefixMatch: %s with prefix %s and replacement "%s" → %s',
    async (path, prefix, value, want) => {
      const reqHost = pairHost('redirect', prefix, value);
      expect(await location(80, path, reqHost)).toEqual({
        status: 302,
        location: `http://${reqHost}${want}`,
      });
    },
  );

  it('answers without reaching any upstream', async () => {
    const before = echo.requests.length;
    await location(80, '/scheme');
    expect(echo.requests.length).toBe(before);
  });
});

describe('URLRewrite', () => {
  it('hostname replaces the Host header sent upstream', async () => {
    const seen = (
      await send(agent, gw.url(80, '/rewrite-host/a'), { host: 'orig.example' })
    ).echo();
    expect(seen.headers.host).toBe('rewritten.example');
    expect(seen.headers['x-forwarded-host']).toBe('orig.example');
    expect(seen.path).toBe('/rewrite-host/a');
  });

  it('ReplaceFullPath keeps the query', async () => {
    const seen = (await send(agent, gw.url(80, '/rewrite-full/x/y?q=1&r=2'))).echo();
    expect(seen.path).toBe('/new/full?q=1&r=2');
  });

  it.each(PREFIX_TABLE)(
    'ReplacePrefixMatch: %s with prefix %s and replacement "%s" → %s',
    async (path, prefix, value, want) => {
      const reqHost = pairHost('rewrite', prefix, value);
      const a = await send(agent, gw.url(80, path), { host: reqHost });
      expect(a.status).toBe(200);
      expect(a.echo().path).toBe(want);
    },
  );
});

describe('RequestMirror', () => {
  it('sends a copy with the body to the mirror backend; the client gets the real answer', async () => {
    const before = mirror.requests.length;
    const a = await send(agent, gw.url(80, '/mirror/post?k=v'), {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hello mirror',
    });
    expect(a.status).toBe(200);
    expect(a.echo()).toMatchObject({ server: 'echo', body: 'hello mirror' });
    expect(await settle(() => mirror.requests.length, before + 1)).toBe(before + 1);
    const copy = mirror.requests[before];
    expect(copy).toMatchObject({ method: 'POST', path: '/mirror/post?k=v', body: 'hello mirror' });
  });

  it('mirrors a streamed (chunked) body too', async () => {
    const before = mirror.requests.length;
    const body = 'x'.repeat(200_000);
    const a = await send(agent, gw.url(80, '/mirror/stream'), {
      method: 'PUT',
      body: (async function* () {
        yield body.slice(0, 100_000);
        yield body.slice(100_000);
      })() as never,
    });
    expect(a.echo().body.length).toBe(body.length);
    await settle(() => mirror.requests.length, before + 1);
    expect(mirror.requests[before]?.body.length).toBe(body.length);
  });

  it.each([
    ['/sampled-percent', 0.25],
    ['/sampled-fraction', 1 / 3],
  ])('%s mirrors about its share of requests (seeded random)', async (path, share) => {
    const n = 400;
    const before = mirror.requests.length;
    for (let i = 0; i < n; i++) {
      const a = await send(agent, gw.url(80, `${path}/${i}`));
      expect(a.status).toBe(200);
    }
    // Mirrors are fire-and-forget: wait (bounded) for the ones that were sent to arrive.
    const mean = n * share;
    const sd = Math.sqrt(n * share * (1 - share));
    await settle(() => mirror.requests.length - before, Math.ceil(mean - 4 * sd));
    await new Promise((r) => setTimeout(r, 50));
    const mirrored = mirror.requests.length - before;
    expect(mirrored).toBeGreaterThan(mean - 4 * sd);
    expect(mirrored).toBeLessThan(mean + 4 * sd);
  });
});

// Regression: a backendRef's filters other than the header modifiers were dropped without a
// word: URLRewrite and RequestRedirect ignored, RequestMirror never sent, CORS not answered, and
// an unresolved ExtensionRef forwarded the request (fail open) instead of answering 500.
describe('backendRef-level filters', () => {
  it('header modifiers of the chosen backendRef apply after the rule ones', async () => {
    const a = await send(agent, gw.url(80, '/backend-headers'), { headers: { 'x-add': 'c' } });
    expect(a.echo().headers['x-backend']).toBe('echo');
    expect(a.echo().headers['x-add']).toBe('c,backend');
    expect(a.headers['x-backend-response']).toBe('echo');
  });

  it('URLRewrite on a backendRef rewrites host and path', async () => {
    const seen = (await send(agent, gw.url(80, '/backend-rewrite/x?y=1'))).echo();
    expect(seen.path).toBe('/rewritten/x?y=1');
    expect(seen.headers.host).toBe('backend-rewritten.example');
  });

  it('CORS on a backendRef answers the preflight and marks the actual response', async () => {
    const before = echo.requests.length;
    const pre = await send(agent, gw.url(80, '/backend-cors'), {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'PATCH' },
    });
    expect(pre.status).toBe(200);
    expect(pre.headers['access-control-allow-methods']).toBe('PATCH');
    expect(echo.requests.length).toBe(before);
    const actual = await send(agent, gw.url(80, '/backend-cors'), {
      method: 'PATCH',
      headers: { origin: 'https://app.example' },
    });
    expect(actual.echo().method).toBe('PATCH');
    expect(actual.headers['access-control-allow-origin']).toBe('https://app.example');
  });

  it('RequestRedirect on a backendRef answers with the redirect', async () => {
    const before = echo.requests.length;
    const a = await send(agent, gw.url(80, '/backend-redirect/a'), { host: 'h.example' });
    expect(a.status).toBe(302);
    expect(a.headers.location).toBe('http://h.example/redirected-full');
    expect(echo.requests.length).toBe(before);
  });

  it('RequestMirror on a backendRef mirrors', async () => {
    const before = mirror.requests.length;
    const a = await send(agent, gw.url(80, '/backend-mirror/m'));
    expect(a.status).toBe(200);
    expect(await settle(() => mirror.requests.length, before + 1)).toBe(before + 1);
    expect(mirror.requests[before]?.path).toBe('/backend-mirror/m');
  });

  it('an unresolved ExtensionRef on a backendRef fails closed with 500', async () => {
    const before = echo.requests.length;
    const a = await send(agent, gw.url(80, '/backend-extension'));
    expect(a.status).toBe(500);
    expect(a.json()).toMatchObject({ status: 500, response_flags: 'IC' });
    expect(echo.requests.length).toBe(before);
  });
});

describe('CORS', () => {
  it('answers an allowed preflight itself, with the configured headers', async () => {
    const before = echo.requests.length;
    const a = await send(agent, gw.url(80, '/cors/x'), {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'x-a',
      },
    });
    expect(a.status).toBe(200);
    expect(a.headers).toMatchObject({
      'access-control-allow-origin': 'https://app.example',
      'access-control-allow-methods': 'GET, PUT',
      'access-control-allow-headers': 'x-a, x-b',
      'access-control-expose-headers': 'x-c',
      'access-control-max-age': '600',
      'access-control-allow-credentials': 'true',
    });
    expect(String(a.headers.vary)).toMatch(/origin/i);
    expect(echo.requests.length).toBe(before);
  });

  it('a preflight from an origin that is not allowed gets no CORS headers', async () => {
    const a = await send(agent, gw.url(80, '/cors/x'), {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' },
    });
    expect([200, 204, 403]).toContain(a.status);
    expect(a.headers['access-control-allow-origin']).toBeUndefined();
  });

  // Regression: the upstream's Vary was replaced by the CORS "Vary: Origin" instead of extended.
  it('adds Origin to the upstream’s Vary instead of replacing it', async () => {
    const a = await send(agent, gw.url(80, '/cors/vary'), {
      headers: { origin: 'https://app.example', 'x-echo-set-header': 'Vary:Accept-Encoding' },
    });
    expect(a.headers.vary).toBe('Accept-Encoding, Origin');
  });

  it('an actual request is forwarded and its answer gets the CORS headers', async () => {
    const a = await send(agent, gw.url(80, '/cors/y'), {
      headers: { origin: 'https://a.b.apps.example' },
    });
    expect(a.status).toBe(200);
    expect(a.echo().server).toBe('echo');
    expect(a.headers['access-control-allow-origin']).toBe('https://a.b.apps.example');
    expect(a.headers['access-control-allow-credentials']).toBe('true');
    expect(a.headers['access-control-expose-headers']).toBe('x-c');
  });

  it('an OPTIONS request without Access-Control-Request-Method is an ordinary request', async () => {
    const a = await send(agent, gw.url(80, '/cors/z'), {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example' },
    });
    expect(a.echo()).toMatchObject({ server: 'echo', method: 'OPTIONS' });
  });
});
