// The documentation UIs' files, served by the gateway itself under /apis/_assets/ from the npm
// packages that ship them (never from a CDN): Scalar's standalone bundle and swagger-ui-dist.
// Only the files listed here are served; each is read once, on first use.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export const ASSETS_PREFIX = '/apis/_assets/';

interface AssetSource {
  pkg?: string;
  file?: string;
  text?: string;
  type: string;
}

/** Starts Swagger UI on the element that names the document (no inline script: the CSP forbids it). */
const SWAGGER_INIT = `window.addEventListener('load', function () {
  var el = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: el.getAttribute('data-url'),
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  });
});
`;

const SOURCES: Record<string, AssetSource> = {
  'scalar/standalone.js': {
    pkg: '@scalar/api-reference',
    file: 'dist/browser/standalone.js',
    type: 'text/javascript; charset=utf-8',
  },
  'swagger-ui/swagger-ui-bundle.js': {
    pkg: 'swagger-ui-dist',
    file: 'swagger-ui-bundle.js',
    type: 'text/javascript; charset=utf-8',
  },
  'swagger-ui/swagger-ui.css': {
    pkg: 'swagger-ui-dist',
    file: 'swagger-ui.css',
    type: 'text/css; charset=utf-8',
  },
  'swagger-ui/init.js': { text: SWAGGER_INIT, type: 'text/javascript; charset=utf-8' },
};

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const loaded = new Map<string, Asset | null>();

/** The asset at /apis/_assets/NAME, or undefined (not listed, or its package is not installed). */
export function docsAsset(name: string): Asset | undefined {
  let asset = loaded.get(name);
  if (asset === undefined) {
    asset = load(name);
    loaded.set(name, asset);
  }
  return asset ?? undefined;
}

function load(name: string): Asset | null {
  if (!Object.prototype.hasOwnProperty.call(SOURCES, name)) return null;
  const source = SOURCES[name] as AssetSource;
  let body: Buffer;
  if (source.text !== undefined) body = Buffer.from(source.text);
  else {
    const dir = packageDir(source.pkg as string);
    if (!dir) return null;
    body = readFileSync(join(dir, source.file as string));
  }
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, type: source.type, etag };
}

/** A package's folder, found the way Node looks for it (its `exports` may hide package.json). */
function packageDir(pkg: string): string | undefined {
  const require = createRequire(import.meta.url);
  for (const base of require.resolve.paths(pkg) ?? []) {
    const dir = join(base, pkg);
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  return undefined;
}
