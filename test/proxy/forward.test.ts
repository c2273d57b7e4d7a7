// forward() on real sockets: a Node HTTP server in front, an upstream behind an undici Pool. The
// response headers reach the client either as the upstream's raw list (no hook, nothing set on
// the response yet) or through a header map a hook may edit; both must drop hop-by-hop headers
// and keep every value of a repeated header.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forward, type ForwardHooks } from '../../shared/proxy/forward.ts';
import { readClientHeaders } from '../../shared/proxy/headers.ts';

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

const upstream = createServer((req, res) => {
  if (req.url === '/trailers') {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('body');
    res.addTrailers({ 'x-checksum': 'abc' });
    res.end();
    return;
  }
  // Set-Cookie twice, a header the Connection header names, and the usual hop-by-hop ones.
  res.writeHead(201, [
    'Content-Type',
    'text/plain',
    'Set-Cookie',
    'a=1',
    'Set-Cookie',
    'b=2',
    'Connection',
    'keep-alive, X-Upstream-Hop',
    'X-Upstream-Hop',
    'secret',
    'Keep-Alive',
    'timeout=77',
    'X-Kept',
    'yes',
  ]);
  res.end(`${req.method} ${req.url}`);
});

type Setup = (res: ServerResponse) => ForwardHooks | undefined;

let upstreamOrigin: string;
let pool: Pool;
let front: Server;
let frontOrigin: string;
let setup: Setup = () => undefined;

beforeAll(async () => {
  upstreamOrigin = await listen(upstream);
  pool = new Pool(upstreamOrigin, { connections: 2 });
  front = createServer((req: IncomingMessage, res: ServerResponse) => {
    const hooks = setup(res);
    forward(
      {
        dispatcher: pool,
        origin: upstreamOrigin,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: readClientHeaders(req.rawHeaders).headers,
        body: null,
        timeoutMs: 5000,
      },
      res,
      hooks,
    ).catch((err: Error) => {
      res.statusCode = 502;
      res.end(err.message);
    });
  });
  frontOrigin = await listen(front);
});

afterAll(async () => {
  await new Promise((r) => front.close(r));
  await pool.close();
  await new Promise((r) => upstream.close(r));
});

async function get(path: string) {
  const r = await request(`${frontOrigin}${path}`);
  return {
    status: r.statusCode,
    headers: r.headers,
    body: await r.body.text(),
    trailers: r.trailers,
  };
}

describe('forward(): response headers', () => {
  it('relays the raw list without hop-by-hop headers, keeping repeated ones', async () => {
    setup = () => undefined;
    const r = await get('/plain');
    expect(r.status).toBe(201);
    expect(r.body).toBe('GET /plain');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-kept']).toBe('yes');
    expect(r.headers['x-upstream-hop']).toBeUndefined();
    // Node's own keep-alive, not the upstream's.
    expect(r.headers['keep-alive']).not.toBe('timeout=77');
  });

  it('keeps both lists when the response already had a header set', async () => {
    setup = (res) => {
      res.setHeader('x-set-before', '1');
      return undefined;
    };
    const r = await get('/set-before');
    expect(r.headers['x-set-before']).toBe('1');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-upstream-hop']).toBeUndefined();
  });

  it('lets a hook edit the headers as a map', async () => {
    setup = () => ({
      responseHeaders: (status, h) => {
        expect(status).toBe(201);
        expect(h['set-cookie']).toEqual(['a=1', 'b=2']);
        expect(h['x-upstream-hop']).toBeUndefined();
        expect(h.connection).toBeUndefined();
        h['x-added'] = 'by-hook';
        delete h['x-kept'];
      },
    });
    const r = await get('/hooked');
    expect(r.headers['x-added']).toBe('by-hook');
    expect(r.headers['x-kept']).toBeUndefined();
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('passes trailers on', async () => {
    setup = () => undefined;
    const r = await request(`${frontOrigin}/trailers`, { headers: { te: 'trailers' } });
    expect(await r.body.text()).toBe('body');
    expect(r.trailers['x-checksum']).toBe('abc');
  });

  it('hands a retriable status back without writing anything', async () => {
    setup = () => ({
      retryOn: (status) => status === 201,
      responseHeaders: () => {
        throw new Error('must not be called');
      },
    });
    const r = await get('/retry');
    expect(r.status).toBe(502);
    expect(r.body).toBe('upstream answered 201');
  });
});
