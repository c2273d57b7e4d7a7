// The floor any Node proxy pays: node:http in, an undici Pool out, the body streamed through,
// no routing, no policy. Usage: node --import tsx bench/gateway/bare-undici-proxy.ts PORT UPSTREAM
// (UPSTREAM like http://127.0.0.1:8081).

import { createServer, type IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

const [port, upstream] = process.argv.slice(2);
if (!port || !upstream) throw new Error('usage: bare-undici-proxy.ts PORT UPSTREAM_ORIGIN');

// 64 connections, as nginx's `keepalive 64` in row 2
const pool = new Pool(upstream, { connections: 64, pipelining: 1 });

createServer((req, res) => {
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  pool
    .stream(
      {
        path: req.url ?? '/',
        method: req.method as Dispatcher.HttpMethod,
        headers: endToEnd(req.headers),
        body: bodyless ? null : req,
      },
      ({ statusCode, headers }) => {
        res.writeHead(statusCode, endToEnd(headers as IncomingHttpHeaders));
        return res;
      },
    )
    .catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
}).listen(Number(port), '127.0.0.1');
