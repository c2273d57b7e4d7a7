// An OAuth 2.0 token introspection endpoint (RFC 7662) for tests, over HTTP on 127.0.0.1: it
// checks client_secret_basic and the form body, and answers from a table of tokens.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface IntrospectionCall {
  contentType: string | undefined;
  params: Record<string, string>;
}

export interface TestIntrospectionEndpoint {
  url: string;
  /** Token → the response members (`active` included); unknown tokens are inactive. */
  tokens: Map<string, Record<string, unknown>>;
  calls: IntrospectionCall[];
  /** Every answer waits this long (for coalescing and timeout tests). */
  delayMs: number;
  /** Answer 503 (an outage). */
  down: boolean;
  close(): Promise<void>;
}

export async function startIntrospectionEndpoint(client: {
  id: string;
  secret: string;
}): Promise<TestIntrospectionEndpoint> {
  // RFC 6749 section 2.3.1: id and secret are form-encoded before they are joined with ":".
  const formEncode = (v: string) => new URLSearchParams({ v }).toString().slice(2);
  const expected = `Basic ${Buffer.from(`${formEncode(client.id)}:${formEncode(client.secret)}`).toString('base64')}`;
  const state = {
    tokens: new Map<string, Record<string, unknown>>(),
    calls: [] as IntrospectionCall[],
    delayMs: 0,
    down: false,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
      state.calls.push({ contentType: req.headers['content-type'], params });
      const answer = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        setTimeout(() => {
          if (res.destroyed) return;
          res.writeHead(status, { 'content-type': 'application/json' }).end(text);
        }, state.delayMs);
      };
      if (state.down) return answer(503, { error: 'temporarily_unavailable' });
      if (req.method !== 'POST' || req.url !== '/introspect') return answer(404, {});
      // RFC 7662 section 2.1: the protected resource authenticates to the endpoint.
      if (req.headers.authorization !== expected) return answer(401, { error: 'invalid_client' });
      const token = params.token ?? '';
      answer(200, state.tokens.get(token) ?? { active: false });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`;
  return Object.assign(state, {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
