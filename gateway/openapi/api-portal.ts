// The /apis prefix on a listener that publishes an API: the catalog (JSON, or HTML for a
// browser), each API's document as JSON and YAML with `servers` and security rewritten, its
// documentation page (Scalar or Swagger UI), and the pages' assets. It runs before routing: on
// such a listener /apis belongs to meshgate (the compiler marks routes it shadows).

import { stringify as toYaml } from 'yaml';
import { API_PORTAL_PREFIX } from '../../shared/config/compile/api-definitions.ts';
import { ProxyError } from '../../shared/proxy/errors.ts';
import { hostnameMatches, normalizeHost } from '../../shared/routing/hostname.ts';
import type { EdgeRequest } from '../request-context.ts';
import { ASSETS_PREFIX, docsAsset } from './docs-assets.ts';
import { withServer } from './published-document.ts';
import type { ListenerPortal, PublishedApi } from './view-apis.ts';

type Json = Record<string, unknown>;

/** A layer: answers requests for /apis… on listeners that publish an API; others pass. */
export function serveApiPortal(r: EdgeRequest): void | Promise<void> {
  const portals = r.port.apis;
  if (!portals) return;
  const path = r.path;
  if (path !== API_PORTAL_PREFIX && !path.startsWith(`${API_PORTAL_PREFIX}/`)) return;
  const portal = portals.forHost(r.client.host as string);
  if (!portal) return;
  if (r.method !== 'GET' && r.method !== 'HEAD')
    throw new ProxyError('MG_ERR_METHOD_NOT_ALLOWED', `${path} is read-only`, {
      headers: { allow: 'GET, HEAD' },
    });
  if (path.startsWith(ASSETS_PREFIX)) return serveAsset(r, path.slice(ASSETS_PREFIX.length));
  const apis = visibleApis(portal, r.client.host as string);
  const rest = path.slice(API_PORTAL_PREFIX.length + 1);
  if (rest === '' || rest === 'index.html' || rest === 'index.json')
    return serveCatalog(r, portal, apis, rest);
  const slash = rest.indexOf('/');
  const id = slash < 0 ? rest : rest.slice(0, slash);
  const page = slash < 0 ? '' : rest.slice(slash + 1);
  const api = apis.find((a) => a.id === id);
  if (!api) throw new ProxyError('MG_ERR_NO_ROUTE', `no API named ${id} is published here`);
  switch (page) {
    case '':
      return answer(r, 302, '', 'text/plain', {
        location: `${API_PORTAL_PREFIX}/${id}/${api.api.spec.publish.docsUi === 'None' ? 'openapi.json' : 'docs'}`,
      });
    case 'openapi.json':
    case 'openapi.yaml':
      return serveDocument(r, portal, api, page === 'openapi.yaml');
    case 'docs':
      if (api.api.spec.publish.docsUi !== 'None') return serveDocs(r, api);
  }
  throw new ProxyError('MG_ERR_NO_ROUTE', `${path}: not a page of the API catalog`);
}

/** APIs whose route takes this Host. */
function visibleApis(portal: ListenerPortal, host: string): PublishedApi[] {
  const name = normalizeHost(host);
  return portal.apis.filter(
    (a) => a.hostnames.length === 0 || a.hostnames.some((h) => hostnameMatches(h, name)),
  );
}

function serveDocument(
  r: EdgeRequest,
  portal: ListenerPortal,
  api: PublishedApi,
  yaml: boolean,
): void | Promise<void> {
  const secured = api.secured();
  if (!secured) return api.api.settledDocument().then(() => serveFetched(r, portal, api, yaml));
  const prefix = api.api.spec.basePath.replace(/\/+$/, '');
  const doc = withServer(secured.published, `${publicOrigin(r, portal)}${prefix}`);
  if (yaml) answer(r, 200, toYaml(doc, { aliasDuplicateObjects: false }), 'application/yaml');
  else answer(r, 200, JSON.stringify(doc, null, 2), 'application/json');
}

/** After waiting for a URL document's fetch: it, or 503 while it cannot be had. */
function serveFetched(r: EdgeRequest, portal: ListenerPortal, api: PublishedApi, yaml: boolean) {
  if (!api.secured())
    throw new ProxyError(
      'MG_ERR_API_UNAVAILABLE',
      `ApiDefinition ${api.api.key}: ${api.api.unavailableReason}`,
      { headers: { 'retry-after': '5' } },
    );
  return serveDocument(r, portal, api, yaml);
}

async function serveCatalog(
  r: EdgeRequest,
  portal: ListenerPortal,
  apis: PublishedApi[],
  page: string,
): Promise<void> {
  // URL documents fetched on demand: wait for those under way, so a new gateway lists them.
  await Promise.all(apis.map((a) => a.api.settledDocument()));
  const entries = apis.flatMap((a) => {
    const doc = a.api.document();
    if (!doc) return [];
    const info = (doc.document.info ?? {}) as Json;
    const base = `${API_PORTAL_PREFIX}/${a.id}`;
    return [
      {
        name: a.api.name,
        namespace: a.api.namespace,
        title: String(info.title ?? a.api.name),
        version: String(info.version ?? ''),
        ...(typeof info.description === 'string' ? { description: info.description } : {}),
        url: `${publicOrigin(r, portal)}${a.api.spec.basePath.replace(/\/+$/, '')}`,
        links: {
          openapiJson: `${base}/openapi.json`,
          openapiYaml: `${base}/openapi.yaml`,
          ...(a.api.spec.publish.docsUi !== 'None' ? { docs: `${base}/docs` } : {}),
        },
      },
    ];
  });
  const html = page === 'index.html' || (page === '' && prefersHtml(r.header('accept')));
  if (!html) {
    answer(r, 200, JSON.stringify({ apis: entries }, null, 2), 'application/json', {
      vary: 'Accept',
    });
    return;
  }
  const items = entries
    .map(
      (e) => `<li><h2>${escapeHtml(e.title)} <small>${escapeHtml(e.version)}</small></h2>
${e.description ? `<p>${escapeHtml(e.description)}</p>` : ''}<p><code>${escapeHtml(e.url)}</code></p>
<p>${e.links.docs ? `<a href="${escapeHtml(e.links.docs)}">Documentation</a> · ` : ''}<a href="${escapeHtml(e.links.openapiJson)}">openapi.json</a> · <a href="${escapeHtml(e.links.openapiYaml)}">openapi.yaml</a></p></li>`,
    )
    .join('\n');
  answer(
    r,
    200,
    htmlPage(
      'APIs',
      `<h1>APIs</h1>\n<ul>\n${items || '<li>No API is published here yet.</li>'}\n</ul>`,
    ),
    'text/html; charset=utf-8',
    { vary: 'Accept', 'content-security-policy': DOCS_CSP },
  );
}

function serveDocs(r: EdgeRequest, api: PublishedApi): void {
  const doc = api.api.document();
  const title = String(((doc?.document.info ?? {}) as Json).title ?? api.api.name);
  const url = `${API_PORTAL_PREFIX}/${api.id}/openapi.json`;
  const body =
    api.api.spec.publish.docsUi === 'SwaggerUI'
      ? `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}: API reference</title>
<link rel="stylesheet" href="${ASSETS_PREFIX}swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui" data-url="${escapeHtml(url)}"></div>
<script src="${ASSETS_PREFIX}swagger-ui/swagger-ui-bundle.js"></script>
<script src="${ASSETS_PREFIX}swagger-ui/init.js"></script></body></html>
`
      : `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}: API reference</title></head>
<body><script id="api-reference" data-configuration="${escapeHtml(JSON.stringify(SCALAR_CONFIG(url)))}"></script>
<script src="${ASSETS_PREFIX}scalar/standalone.js"></script></body></html>
`;
  answer(r, 200, body, 'text/html; charset=utf-8', { 'content-security-policy': DOCS_CSP });
}

/**
 * Scalar, kept to this gateway: no web fonts, no telemetry, no AI agent (it searches Scalar's
 * hosted registry through their proxy), no developer tools. "Try it" goes to the API itself.
 */
const SCALAR_CONFIG = (url: string) => ({
  url,
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  // Its "Share" and "Deploy" menus upload the document to Scalar's hosted services.
  showDeveloperTools: 'never',
});

/**
 * The docs pages may load only from the gateway itself; "try it" requests go to the API on the
 * same origin. Styles are inline (both UIs inject them); scripts are files only.
 */
const DOCS_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join('; ');

function serveAsset(r: EdgeRequest, name: string): void {
  const asset = docsAsset(name);
  if (!asset) throw new ProxyError('MG_ERR_NO_ROUTE', `no asset ${name}`);
  const headers = { etag: asset.etag, 'cache-control': 'public, max-age=3600' };
  if (r.header('if-none-match') === asset.etag) return answer(r, 304, '', asset.type, headers);
  answer(r, 200, asset.body, asset.type, headers);
}

/**
 * The gateway's public origin: the request's scheme and Host, or X-Forwarded-Proto/-Host when a
 * ClientTrafficPolicy says a proxy in front of the gateway may be trusted to set them.
 */
function publicOrigin(r: EdgeRequest, portal: ListenerPortal): string {
  let scheme: string = r.scheme;
  let host = r.client.host as string;
  if (portal.trustsForwarded(r.clientAddress)) {
    const proto = firstValue(r.header('x-forwarded-proto'))?.toLowerCase();
    if (proto === 'http' || proto === 'https') scheme = proto;
    const fwdHost = firstValue(r.header('x-forwarded-host'));
    if (fwdHost && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(fwdHost))
      host = fwdHost;
  }
  return `${scheme}://${host}`;
}

function firstValue(v: string | undefined): string | undefined {
  return v?.split(',')[0]?.trim() || undefined;
}

/** Whether Accept ranks text/html above application/json (a browser, not an API client). */
function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  let html = -1;
  let json = -1;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    const q = Number(params.find((p) => p.trim().startsWith('q='))?.split('=')[1] ?? 1);
    if (type === 'text/html') html = Math.max(html, q);
    if (type === 'application/json') json = Math.max(json, q);
  }
  return html > 0 && html >= json;
}

function answer(
  r: EdgeRequest,
  status: number,
  body: string | Buffer,
  type: string,
  headers: Record<string, string> = {},
): void {
  r.done = true;
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  r.res.writeHead(status, {
    'content-type': type,
    'content-length': String(bytes.length),
    'x-request-id': r.requestId,
    ...(status === 200 && !headers['cache-control'] ? { 'cache-control': 'no-cache' } : {}),
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  r.res.end(r.method === 'HEAD' || status === 304 ? undefined : bytes);
}

function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}li{list-style:none;border-bottom:1px solid #ddd;padding:.5rem 0}h2{margin:.2rem 0}small{color:#666;font-weight:normal}</style>
</head><body>
${body}
</body></html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
