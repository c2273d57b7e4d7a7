import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CookieJar } from '../../helpers/cookie-jar.ts';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { send, type Answer } from '../../helpers/http-request.ts';
import { startOidcProvider, type TestOidcProvider } from '../../helpers/oidc-provider.ts';

// SecurityPolicy oidc through the gateway's real listener, against a real OpenID Provider on
// loopback: the code flow with PKCE, state and nonce, the encrypted session cookie, transparent
// refresh on an injectable clock, logout with end_session, denyRedirect and passThroughAuthHeader;
// by hand with a cookie jar, and in headless Chromium.

const CHROMIUM = '/usr/bin/chromium';
const CLIENT_ID = 'meshgate-edge';
const CLIENT_SECRET = 'a client secret: with a colon & more';
const ALICE = {
  sub: 'alice',
  name: 'Alice Liddell',
  email: 'alice@example.com',
  groups: ['staff'],
};
const BOB = { sub: 'bob', name: 'Bob', groups: ['guests'] };

let clock = Date.now();
let provider: TestOidcProvider;
let upstream: EchoServer;
let gw: GatewayUnderTest;
let previousDispatcher: Dispatcher;
const agent = new Agent({ keepAliveTimeout: 1000 });
let tlsAgent: Agent;

function policy(name: string, route: string, issuer: string, extra = ''): string {
  return `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: { name: ${name}, namespace: web }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: ${route} }]
  oidc:
    provider: { issuer: "${issuer}" }
    clientID: ${CLIENT_ID}
    clientSecret: { name: oidc-client }
${extra}`;
}

function route(name: string, hostname?: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: web }
spec:
  parentRefs: [{ name: edge }]
${hostname ? `  hostnames: [${hostname}]\n` : ''}  rules:
    - backendRefs: [{ name: app, port: 80 }]`;
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function config(deadIssuer: string): string {
  return docs(
    GATEWAY_CLASS,
    gatewayYaml('web', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    serviceYaml('web', 'app', upstream.port),
    `apiVersion: v1
kind: Secret
metadata: { name: oidc-client, namespace: web }
type: Opaque
stringData:
  client-secret: "${CLIENT_SECRET}"`,
    route('app'),
    route('strict', 'strict.test'),
    route('down', 'down.test'),
    policy(
      'app-login',
      'app',
      provider.issuer,
      `    scopes: [profile, email]
    forwardAccessToken: true
    forwardIDToken: { header: X-ID-Token }
    denyRedirect:
      headers: [{ name: X-Requested-With, value: XMLHttpRequest }]
    passThroughAuthHeader: true
  jwt:
    providers:
      - name: idp
        issuer: "${provider.issuer}"
        audiences: [orders-api]
        remoteJWKS: { uri: "${provider.issuer}/jwks" }
  authorization:
    defaultAction: Deny
    rules:
      - name: staff
        action: Allow
        principal:
          jwt:
            provider: idp
            claims: [{ name: groups, valueType: StringArray, values: [staff] }]`,
    ),
    policy(
      'strict-login',
      'strict',
      provider.issuer,
      `    cookieConfig: { sameSite: Strict }
    cookieDomain: strict.test
    cookieNames: { accessToken: strict-session }
    logoutPath: /signout`,
    ),
    policy('down-login', 'down', deadIssuer),
  );
}

beforeAll(async () => {
  provider = await startOidcProvider({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    user: ALICE,
    now: () => clock,
  });
  tlsAgent = new Agent({ keepAliveTimeout: 1000, connect: { ca: provider.caPem } });
  // The gateway's own calls (discovery, token endpoint, JWKS) go through undici's global
  // dispatcher: make it trust the provider's self-signed certificate.
  previousDispatcher = getGlobalDispatcher();
  setGlobalDispatcher(tlsAgent);
  upstream = await startEchoServer('app', (req, res) => {
    if (!req.url?.startsWith('/hello')) return false;
    const idToken = req.headers['x-id-token'];
    const name = typeof idToken === 'string' ? String(decodeJwt(idToken).name) : 'nobody';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>App</title><h1 id="user">Hello, ${name}</h1>`);
    return true;
  });
  gw = await startGateway(config(`https://127.0.0.1:${await closedPort()}`), {
    wallClock: () => clock,
  });
});

afterAll(async () => {
  setGlobalDispatcher(previousDispatcher);
  await gw?.close();
  await upstream?.close();
  await provider?.close();
  await agent.close();
  await tlsAgent?.close();
});

beforeEach(() => {
  provider.user = ALICE;
  provider.signIn();
});

// --- a browser by hand: a cookie jar and redirects followed one by one ---

/** GET `url` as a browser would: its cookies, and hosts other than 127.0.0.1 sent to the gateway. */
async function get(
  jar: CookieJar,
  url: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const u = new URL(url);
  const direct = u.hostname === '127.0.0.1';
  const res = await send(
    u.protocol === 'https:' ? tlsAgent : agent,
    direct ? url : gw.url(8080, `${u.pathname}${u.search}`),
    { headers: { cookie: jar.header(url), ...headers }, ...(direct ? {} : { host: u.host }) },
  );
  jar.store(url, res.headers['set-cookie']);
  return res;
}

/** Follows redirects from `url`; the answers in order, each with the URL it answered. */
async function browse(
  jar: CookieJar,
  url: string,
  headers: Record<string, string> = {},
): Promise<(Answer & { url: string })[]> {
  const hops: (Answer & { url: string })[] = [];
  for (let next: string | undefined = url; next && hops.length < 10;) {
    const res = await get(jar, next, headers);
    hops.push({ ...res, url: next });
    const location = res.headers.location;
    next =
      res.status >= 300 && res.status < 400 && location
        ? new URL(String(location), next).href
        : undefined;
  }
  return hops;
}

const appUrl = (path: string) => gw.url(8080, path);
const appHost = () => new URL(appUrl('/')).hostname;

async function login(jar = new CookieJar(), path = '/orders?page=2') {
  const hops = await browse(jar, appUrl(path));
  return { jar, hops, last: hops[hops.length - 1] as Answer & { url: string } };
}

function sessionCookieName(jar: CookieJar): string {
  const name = jar.names(appHost()).find((n) => n.startsWith('OauthSession-'));
  if (!name) throw new Error('no session cookie');
  return name;
}

describe('OIDC login (HTTP, by hand)', () => {
  it('redirects to the provider with the code flow, PKCE S256, state and nonce, then back with a session', async () => {
    const jar = new CookieJar();
    jar.set(appHost(), 'theme', 'dark');
    const { hops, last } = await login(jar);
    const [start, atProvider, callback] = hops;
    expect(start?.status).toBe(302);
    const authorize = new URL(String(start?.headers.location));
    expect(`${authorize.origin}${authorize.pathname}`).toBe(`${provider.issuer}/authorize`);
    const q = authorize.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe(CLIENT_ID);
    expect(q.get('redirect_uri')).toBe(appUrl('/oauth2/callback'));
    expect(q.get('scope')).toBe('profile email openid');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(start?.headers['cache-control']).toBe('no-store');
    // The login-flow cookie: encrypted, HttpOnly, only sent to the callback, Lax so it comes back.
    const flow = jar.store(appUrl('/'), start?.headers['set-cookie'])[0];
    expect(flow?.name).toMatch(/^OauthFlow-[0-9a-f]{8}\./);
    expect(flow?.value.split('.')).toHaveLength(5); // a compact JWE
    expect(flow?.attributes).toMatchObject({
      path: '/oauth2/callback',
      samesite: 'Lax',
      'max-age': '600',
    });
    expect(flow?.attributes).toHaveProperty('httponly');
    expect(flow?.attributes).not.toHaveProperty('secure'); // plain HTTP listener

    expect(atProvider?.status).toBe(302);
    expect(callback?.url).toMatch(/\/oauth2\/callback\?code=/);
    expect(callback?.status).toBe(302);
    expect(callback?.headers.location).toBe('/orders?page=2');
    const set = [callback?.headers['set-cookie'] ?? []].flat();
    const session = set.find((c) => c.startsWith('OauthSession-'));
    expect(session).toMatch(/; Path=\/; Max-Age=604800; HttpOnly; SameSite=Lax$/);
    expect(set.some((c) => c.startsWith('OauthFlow-') && c.includes('Max-Age=0'))).toBe(true);

    expect(last.status).toBe(200);
    const seen = last.echo();
    expect(seen.path).toBe('/orders?page=2');
    const bearer = String(seen.headers.authorization);
    expect(bearer).toMatch(/^Bearer ey/);
    expect(decodeJwt(bearer.slice(7))).toMatchObject({ sub: 'alice', aud: 'orders-api' });
    const idToken = decodeJwt(String(seen.headers['x-id-token']));
    expect(idToken).toMatchObject({ sub: 'alice', aud: CLIENT_ID, iss: provider.issuer });
    // The gateway's cookies stay at the edge; the application's own cookies go through.
    expect(seen.headers.cookie).toBe('theme=dark');
    expect(provider.tokenRequests.authorization_code).toBeGreaterThanOrEqual(1);
  });

  it('keeps a session: later requests pass without the provider', async () => {
    const { jar } = await login();
    const before = provider.authorizations;
    for (let i = 0; i < 3; i++) expect((await get(jar, appUrl(`/orders/${i}`))).status).toBe(200);
    expect(provider.authorizations).toBe(before);
  });

  it("puts the ID token's claims into the principal, so authorization rules on claims apply", async () => {
    provider.user = BOB; // not in the staff group
    const { last } = await login();
    expect(last.status).toBe(403);
    expect(last.json()).toMatchObject({ code: 'MG_ERR_FORBIDDEN' });
  });

  it('refreshes an expired access token without the user seeing the provider', async () => {
    const { jar } = await login();
    const name = sessionCookieName(jar);
    const oldCookie = jar.get(appHost(), name)?.value;
    const authorizations = provider.authorizations;
    const refreshes = provider.tokenRequests.refresh_token;
    clock += 10 * 60_000; // the 5-minute access token has expired

    // A page's parallel requests with the expired session: one refresh (the provider rotates
    // refresh tokens, so a second refresh with the same token would fail).
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        send(agent, appUrl(`/orders/parallel-${i}`), {
          // The upstream sets a cookie of its own: the renewed session is added, not swapped in.
          headers: { cookie: `${name}=${oldCookie}`, 'x-echo-set-header': 'set-cookie:cart=3' },
        }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(provider.tokenRequests.refresh_token).toBe(refreshes + 1);
    expect([answers[0]?.headers['set-cookie']].flat()).toContain('cart=3');
    for (const a of answers) {
      const set = [a.headers['set-cookie'] ?? []].flat();
      expect(set.find((c) => c.startsWith(`${name}=`))).toMatch(/HttpOnly; SameSite=Lax$/);
    }
    // The upstream got the new access token.
    const fresh = decodeJwt(String(answers[0]?.echo().headers.authorization).slice(7));
    expect(fresh.iat).toBe(Math.floor(clock / 1000));

    const res = await get(jar, appUrl('/orders'));
    expect(res.status).toBe(200);
    const renewed = jar.store(appUrl('/'), res.headers['set-cookie']).find((c) => c.name === name);
    expect(renewed?.value).not.toBe(oldCookie);
    expect((await get(jar, appUrl('/orders'))).headers['set-cookie']).toBeUndefined();
    expect(provider.authorizations).toBe(authorizations);
    expect(provider.tokenRequests.refresh_token).toBe(refreshes + 1);
  });

  it('starts a new login when the refresh fails', async () => {
    const { jar } = await login();
    provider.revokeRefreshTokens();
    clock += 10 * 60_000;
    const res = await get(jar, appUrl('/orders'));
    expect(res.status).toBe(302);
    expect(String(res.headers.location)).toContain(`${provider.issuer}/authorize?`);
  });

  it('starts a new login when the session cookie was tampered with', async () => {
    const { jar } = await login();
    const name = sessionCookieName(jar);
    const value = jar.get(appHost(), name)?.value as string;
    const i = Math.floor(value.length / 2);
    jar.set(
      appHost(),
      name,
      `${value.slice(0, i)}${value[i] === 'A' ? 'B' : 'A'}${value.slice(i + 1)}`,
    );
    const forwarded = upstream.requests.length;
    const res = await get(jar, appUrl('/orders'));
    expect(res.status).toBe(302);
    expect(String(res.headers.location)).toContain(`${provider.issuer}/authorize?`);
    expect(upstream.requests.length).toBe(forwarded);
  });

  it('answers a callback whose state does not match the login with 401', async () => {
    const jar = new CookieJar();
    const start = await get(jar, appUrl('/orders'));
    const atProvider = await get(jar, String(start.headers.location));
    const callback = new URL(String(atProvider.headers.location));
    callback.searchParams.set('state', 'forged-state-forged-state-forged-state-abcd');
    const res = await get(jar, callback.href);
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json()).toMatchObject({
      code: 'MG_ERR_UNAUTHENTICATED',
      detail: 'The login could not be completed; try again.',
    });
    // Nor does a callback from a browser that never started the login (no flow cookie).
    const stranger = await get(new CookieJar(), String(atProvider.headers.location));
    expect(stranger.status).toBe(401);
  });

  it('answers a callback carrying the provider error with 401', async () => {
    const res = await get(new CookieJar(), appUrl('/oauth2/callback?error=access_denied&state=x'));
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ detail: 'The login was not completed.' });
  });

  it('answers 401 instead of redirecting requests that match denyRedirect', async () => {
    const res = await get(new CookieJar(), appUrl('/orders'), {
      'x-requested-with': 'XMLHttpRequest',
    });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="meshgate"');
    expect(res.json()).toMatchObject({ code: 'MG_ERR_UNAUTHENTICATED' });
  });

  it('lets a bearer token the JWT providers accept skip the login (passThroughAuthHeader)', async () => {
    const token = await provider.accessToken();
    const res = await get(new CookieJar(), appUrl('/orders'), { authorization: `Bearer ${token}` });
    expect(res.status).toBe(200);
    expect(res.echo().headers.authorization).toBe(`Bearer ${token}`);
    const bad = await get(new CookieJar(), appUrl('/orders'), {
      authorization: 'Bearer not-a-jwt',
    });
    expect(bad.status).toBe(401);
    expect(bad.headers['www-authenticate']).toBe('Bearer realm="meshgate", error="invalid_token"');
  });

  it('logs out: clears the session and ends the provider session with id_token_hint', async () => {
    const { jar } = await login();
    const name = sessionCookieName(jar);
    const hops = await browse(jar, appUrl('/logout'));
    const [logout, endSession, home, signedOut] = hops;
    expect(logout?.status).toBe(302);
    const to = new URL(String(logout?.headers.location));
    expect(`${to.origin}${to.pathname}`).toBe(`${provider.issuer}/end_session`);
    expect(to.searchParams.get('post_logout_redirect_uri')).toBe(appUrl('/'));
    expect(decodeJwt(String(to.searchParams.get('id_token_hint'))).sub).toBe('alice');
    expect([logout?.headers['set-cookie']].flat()).toContainEqual(
      expect.stringMatching(new RegExp(`^${name}=; Path=/; Max-Age=0`)),
    );
    expect(jar.get(appHost(), name)).toBeUndefined();
    expect(endSession?.status).toBe(302);
    expect(home?.url).toBe(appUrl('/'));
    expect(home?.status).toBe(302); // no session any more: a new login
    // The provider no longer signs the user in by itself.
    expect(signedOut?.url).toContain('/authorize?');
    expect(signedOut?.body).toContain('You are signed out');
    expect(provider.logouts.at(-1)?.postLogoutRedirectUri).toBe(appUrl('/'));
  });

  it('with SameSite=Strict, continues from the callback with a same-site page, on cookieDomain', async () => {
    const jar = new CookieJar();
    const hops = await browse(jar, 'http://strict.test/reports');
    const last = hops[hops.length - 1] as Answer & { url: string };
    expect(last.url).toMatch(/^http:\/\/strict\.test\/oauth2\/callback\?/);
    expect(last.status).toBe(200);
    expect(last.body).toContain('<meta http-equiv="refresh" content="0;url=/reports">');
    const session = jar.get('strict.test', 'strict-session');
    expect(session?.attributes).toMatchObject({ samesite: 'Strict', domain: 'strict.test' });
    expect((await get(jar, 'http://strict.test/reports')).status).toBe(200);
    expect((await get(jar, 'http://strict.test/signout')).status).toBe(302);
    expect(jar.get('strict.test', 'strict-session')).toBeUndefined();
  });

  it('fails closed with 503 when the provider cannot be reached', async () => {
    const res = await get(new CookieJar(), 'http://down.test/anything');
    expect(res.status).toBe(503);
    expect(res.json()).toMatchObject({
      code: 'MG_ERR_UPSTREAM_CONNECT',
      detail: 'The identity provider is not reachable; try again later.',
    });
  });
});

const chromiumTitle = existsSync(CHROMIUM)
  ? 'logs in through the provider, shows the user, and logs out (headless Chromium)'
  : `SKIPPED: ${CHROMIUM} is missing (apt-get install -y chromium); the browser login is not tested`;
if (!existsSync(CHROMIUM)) console.warn(`oidc.test.ts: ${chromiumTitle}`);

describe('OIDC login (a real browser)', () => {
  it.skipIf(!existsSync(CHROMIUM))(
    chromiumTitle,
    async () => {
      const { chromium } = await import('playwright-core');
      const profile = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'));
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        ignoreHTTPSErrors: true, // the provider's self-signed certificate
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      try {
        const page = await browser.newPage();
        const before = provider.authorizations;
        await page.goto(appUrl('/hello'));
        expect(page.url()).toBe(appUrl('/hello'));
        expect(await page.textContent('#user')).toBe('Hello, Alice Liddell');
        expect(provider.authorizations).toBe(before + 1);
        const cookies = await browser.cookies(appUrl('/'));
        const session = cookies.find((c) => c.name.startsWith('OauthSession-'));
        expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
        expect(await page.evaluate('document.cookie')).toBe(''); // HttpOnly: no script sees it

        await page.reload();
        expect(await page.textContent('#user')).toBe('Hello, Alice Liddell');
        expect(provider.authorizations).toBe(before + 1);

        await page.goto(appUrl('/logout'));
        expect(await page.textContent('h1')).toBe('You are signed out');
        expect(
          (await browser.cookies(appUrl('/'))).some((c) => c.name.startsWith('OauthSession-')),
        ).toBe(false);
      } finally {
        await browser.close();
        rmSync(profile, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
