import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext } from 'playwright-core';
import { startEchoServer, type EchoServer } from '../../helpers/echo-server.ts';
import { docs, GATEWAY_CLASS, gatewayYaml, serviceYaml } from '../../helpers/gateway-config.ts';
import { startGateway, type GatewayUnderTest } from '../../helpers/gateway-under-test.ts';
import { apiYaml, inline, ORDERS_31, PETSTORE_30, routeYaml } from './fixtures.ts';

// The docs pages in a real browser: Debian's Chromium, headless, driven by playwright-core. Each
// page must render the API's title and an operation with every request going to the gateway on
// 127.0.0.1 (the UIs are served from npm packages through the gateway, never a CDN).

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(
    `skipping the docs page browser tests: ${CHROMIUM} is missing (apt-get install chromium)`,
  );

let upstream: EchoServer;
let gw: GatewayUnderTest;
let browser: BrowserContext | undefined;
let profile: string | undefined;

beforeAll(async () => {
  if (!haveChromium) return;
  upstream = await startEchoServer('app');
  gw = await startGateway(
    docs(
      GATEWAY_CLASS,
      gatewayYaml('api', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
      serviceYaml('api', 'app', upstream.port),
      routeYaml('petstore', '/petstore'),
      routeYaml('shop', '/shop'),
      apiYaml('petstore', 'petstore', inline(PETSTORE_30)),
      apiYaml('orders', 'shop', `  publish: { docsUi: SwaggerUI }\n${inline(ORDERS_31)}`),
    ),
  );
  profile = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'));
  // A fresh profile per run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
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
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.close();
  await upstream?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Opens a page, recording every request it makes and every CSP or script error. */
async function open(path: string) {
  const page = await (browser as BrowserContext).newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (req) => requests.push(req.url()));
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  await page.goto(gw.url(8080, path), { waitUntil: 'load' });
  return { page, requests, errors };
}

function offLoopback(urls: string[]): string[] {
  return urls.filter((u) => {
    if (u.startsWith('data:') || u.startsWith('blob:') || u === 'about:blank') return false;
    return new URL(u).hostname !== '127.0.0.1';
  });
}

describe.skipIf(!haveChromium)('docs pages in headless Chromium', () => {
  it('renders the Scalar reference: title and an operation, nothing fetched from outside', async () => {
    const { page, requests, errors } = await open('/apis/petstore/docs');
    await page.getByText('List all pets').first().waitFor({ timeout: 20_000 });
    // The sidebar shows before the content pane renders: wait for the title itself.
    await page
      .getByRole('heading', { name: 'Petstore' })
      .first()
      .waitFor({ state: 'visible', timeout: 20_000 });
    expect(await page.getByRole('heading', { name: 'Petstore' }).first().isVisible()).toBe(true);
    expect(await page.getByText('Create a pet').count()).toBeGreaterThan(0);
    expect(await page.getByText('Developer Tools').count()).toBe(0);
    expect(requests).toContain(gw.url(8080, '/apis/_assets/scalar/standalone.js'));
    expect(requests).toContain(gw.url(8080, '/apis/petstore/openapi.json'));
    expect(offLoopback(requests)).toEqual([]);
    expect(errors.filter((e) => /Content Security Policy/i.test(e))).toEqual([]);
    await page.close();
  }, 60_000);

  it('renders Swagger UI: title and an operation, nothing fetched from outside', async () => {
    const { page, requests, errors } = await open('/apis/orders/docs');
    await page.locator('.opblock-summary-path').first().waitFor({ timeout: 20_000 });
    expect(await page.locator('.info .title').first().textContent()).toContain('Orders');
    expect(await page.locator('.opblock-summary-path').first().textContent()).toContain(
      '/orders/{orderId}',
    );
    expect(offLoopback(requests)).toEqual([]);
    expect(errors.filter((e) => /Content Security Policy/i.test(e))).toEqual([]);
    await page.close();
  }, 60_000);

  it('shows the catalog page with a link to each API', async () => {
    const { page, requests } = await open('/apis');
    expect(await page.getByRole('link', { name: 'Documentation' }).count()).toBe(2);
    expect(await page.getByRole('heading', { name: /Petstore/ }).isVisible()).toBe(true);
    expect(offLoopback(requests)).toEqual([]);
    await page.close();
  }, 30_000);
});
