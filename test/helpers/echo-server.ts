import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoedRequest {
  server: string;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface EchoServer {
  port: number;
  name: string;
  requests: EchoedRequest[];
  server: Server;
  close(): Promise<void>;
}

/**
 * An upstream for tests: answers with a JSON echo of what it received (server name, method,
 * path, headers, body). `handler` may take over particular paths. Like the Gateway API
 * conformance echo server, `X-Echo-Set-Header: name:value,name:value` sets response headers.
 */
export async function startEchoServer(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<EchoServer> {
  const requests: EchoedRequest[] = [];
  const server = createServer((req, res) => {
    if (handler?.(req, res)) return;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const echoed: EchoedRequest = {
        server: name,
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      requests.push(echoed);
      const body = JSON.stringify(echoed);
      const headers: Record<string, string | number> = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-upstream': name,
      };
      const set = req.headers['x-echo-set-header'];
      for (const pair of typeof set === 'string' && set ? set.split(',') : []) {
        const colon = pair.indexOf(':');
        if (colon > 0) headers[pair.slice(0, colon).trim()] = pair.slice(colon + 1).trim();
      }
      res.writeHead(200, headers);
      res.end(body);
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    name,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
