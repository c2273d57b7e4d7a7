// The Bookinfo sample as one small Node server, parameterised by role, in the spirit of Istio's
// Bookinfo (https://istio.io/latest/docs/examples/bookinfo/):
//
//   productpage  /productpage, /static/*, /api/v1/products…   calls details and reviews
//   details      /details/ID
//   reviews      /reviews/ID   (v1: no stars; v2: black stars; v3: red stars)  v2, v3 call ratings
//   ratings      /ratings/ID
//
// It knows nothing of mTLS: it listens in plain HTTP on 127.0.0.1 behind its sidecar, and calls
// other services in plain HTTP through its sidecar's outbound port, as an HTTP proxy
// (absolute-form request line, `GET http://reviews.bookinfo:9080/reviews/0`). Each answer says
// which service and version answered and which caller its sidecar saw (the URI of the
// X-Forwarded-Client-Cert header, which only the sidecar sets: the caller's SPIFFE id).
//
//   node --import tsx examples/bookinfo/apps/bookinfo-app.ts --role reviews --version v2 \
//     --port 9085 --outbound-port 15001 [--namespace bookinfo]

import {
  Agent,
  createServer,
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const ROLES = ['productpage', 'details', 'reviews', 'ratings'] as const;
type Role = (typeof ROLES)[number];

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    version: { type: 'string', default: 'v1' },
    port: { type: 'string', default: '0' },
    'outbound-port': { type: 'string' },
    namespace: { type: 'string', default: 'bookinfo' },
  },
});
const role = values.role as Role;
if (!ROLES.includes(role)) {
  process.stderr.write(`bookinfo-app: --role must be one of ${ROLES.join(', ')}\n`);
  process.exit(2);
}
const version = values.version;
const namespace = values.namespace;
const outboundPort = values['outbound-port'] ? Number(values['outbound-port']) : undefined;

/** Headers a Bookinfo app passes on to the services it calls (Istio's list, trimmed). */
const PROPAGATED = ['end-user', 'x-request-id', 'traceparent', 'tracestate', 'user-agent'];

const BOOK = {
  id: 0,
  title: 'The Comedy of Errors',
  descriptionHtml:
    "Wikipedia Summary: The Comedy of Errors is one of William Shakespeare's early plays. It is his shortest and one of his most farcical comedies.",
};

const keepAlive = new Agent({ keepAlive: true, maxSockets: 32 });

interface Upstream {
  status: number;
  body: unknown;
}

/** GET http://SERVICE.NAMESPACE:9080PATH through the sidecar, as an HTTP proxy client does. */
function callService(service: string, path: string, incoming: IncomingHttpHeaders) {
  return new Promise<Upstream>((resolve) => {
    if (outboundPort === undefined) {
      resolve({ status: 503, body: { error: 'no --outbound-port: this app has no sidecar' } });
      return;
    }
    const authority = `${service}.${namespace}:9080`;
    const headers: Record<string, string> = { host: authority, accept: 'application/json' };
    for (const name of PROPAGATED) {
      const v = incoming[name];
      if (typeof v === 'string') headers[name] = v;
    }
    const req = request(
      {
        host: '127.0.0.1',
        port: outboundPort,
        method: 'GET',
        path: `http://${authority}${path}`,
        headers,
        agent: keepAlive,
        timeout: 5_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // a proxy's plain-text answer, such as "RBAC: access denied"
          }
          resolve({ status: res.statusCode ?? 502, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ status: 502, body: { error: err.message } }));
    req.end();
  });
}

/** The dependency's JSON, or what went wrong, so that a page shows a failed call instead of failing. */
function embed(u: Upstream): unknown {
  return u.status === 200 ? u.body : { error: { status: u.status, body: u.body } };
}

/** The caller's SPIFFE id from X-Forwarded-Client-Cert (Envoy's format: …;URI=spiffe://…). */
function caller(req: IncomingMessage): string | null {
  const xfcc = req.headers['x-forwarded-client-cert'];
  const match = typeof xfcc === 'string' ? /(?:^|;)URI=([^;,]+)/.exec(xfcc) : null;
  return match?.[1] ?? null;
}

function about(req: IncomingMessage) {
  return { service: role, version, caller: caller(req) };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function idFrom(match: RegExpExecArray | null): number | undefined {
  return match ? Number(match[1]) : undefined;
}

async function productpage(req: IncomingMessage, res: ServerResponse, path: string) {
  if (path === '/productpage') {
    const [details, reviews] = await Promise.all([
      callService('details', '/details/0', req.headers),
      callService('reviews', '/reviews/0', req.headers),
    ]);
    const page = {
      ...about(req),
      user: req.headers['end-user'] ?? null,
      product: BOOK,
      details: embed(details),
      reviews: embed(reviews),
    };
    if (req.headers.accept?.includes('text/html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        `<!doctype html><title>Bookinfo</title><link rel="stylesheet" href="/static/bookinfo.css">` +
          `<h1>${BOOK.title}</h1><p>${BOOK.descriptionHtml}</p><pre>${escapeHtml(JSON.stringify(page, null, 2))}</pre>`,
      );
      return;
    }
    send(res, 200, page);
    return;
  }
  if (path === '/static/bookinfo.css') {
    res.writeHead(200, { 'content-type': 'text/css' });
    res.end('body { font-family: sans-serif; margin: 2em; } pre { background: #f4f4f4; }\n');
    return;
  }
  if (path === '/api/v1/products') {
    send(res, 200, [BOOK]);
    return;
  }
  const product = idFrom(/^\/api\/v1\/products\/(\d+)$/.exec(path));
  if (product !== undefined) {
    const details = await callService('details', `/details/${product}`, req.headers);
    send(res, 200, {
      ...BOOK,
      id: product,
      requestedBy: req.headers['x-user'] ?? null,
      details: embed(details),
    });
    return;
  }
  const reviewsOf = idFrom(/^\/api\/v1\/products\/(\d+)\/reviews$/.exec(path));
  if (reviewsOf !== undefined) {
    const reviews = await callService('reviews', `/reviews/${reviewsOf}`, req.headers);
    send(res, reviews.status === 200 ? 200 : 502, embed(reviews));
    return;
  }
  send(res, 404, { error: `productpage has no ${path}` });
}

async function reviews(req: IncomingMessage, res: ServerResponse, id: number) {
  const stars = version === 'v2' ? 'black' : version === 'v3' ? 'red' : undefined;
  const ratings = stars ? await callService('ratings', `/ratings/${id}`, req.headers) : undefined;
  const scores = (ratings?.status === 200 ? ratings.body : undefined) as
    { ratings?: Record<string, number> } | undefined;
  const review = (reviewer: string, text: string) => ({
    reviewer,
    text,
    ...(stars ? { rating: { stars: scores?.ratings?.[reviewer] ?? null, color: stars } } : {}),
  });
  send(res, 200, {
    ...about(req),
    id,
    reviews: [
      review(
        'Reviewer1',
        'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!',
      ),
      review('Reviewer2', 'Absolutely fun and entertaining. The play lacks thematic depth.'),
    ],
    ...(ratings ? { ratings: embed(ratings) } : {}),
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://app').pathname;
  if (path === '/health') {
    send(res, 200, { ...about(req), ok: true });
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { error: 'GET only' });
    return;
  }
  if (role === 'productpage') return productpage(req, res, path);
  const id = idFrom(new RegExp(`^/${role}/(\\d+)$`).exec(path));
  if (id === undefined) {
    send(res, 404, { error: `${role} has no ${path}` });
    return;
  }
  if (role === 'reviews') return reviews(req, res, id);
  if (role === 'details')
    send(res, 200, {
      ...about(req),
      id,
      author: 'William Shakespeare',
      year: 1595,
      type: 'paperback',
      pages: 200,
      publisher: 'PublisherA',
      language: 'English',
      'ISBN-10': '1234567890',
      'ISBN-13': '123-1234567890',
    });
  else send(res, 200, { ...about(req), id, ratings: { Reviewer1: 5, Reviewer2: 4 } });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err: unknown) => {
    if (!res.headersSent) send(res, 500, { error: (err as Error).message });
    else res.destroy();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(
    `${JSON.stringify({ msg: 'listening', role, version, port, outboundPort })}\n`,
  );
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  keepAlive.destroy();
  server.close(() => process.exit(0));
  // Idle keep-alive connections (the sidecar's pool) would hold close() open.
  server.closeIdleConnections();
  setTimeout(() => server.closeAllConnections(), 1_000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Started by `meshgate demo` with an IPC channel: if the demo dies, so does the app.
if (process.send) process.on('disconnect', stop);
