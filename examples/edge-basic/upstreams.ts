// The three backends of the edge-basic example, on the ports its EndpointSlices name:
// catalog-v1 on 127.0.0.1:9101, catalog-v2 on 9102, cart on 9103. Each answers with JSON saying
// who answered and what it received, so that you can see where the gateway sent a request.
//
//   node --import tsx examples/edge-basic/upstreams.ts

import { createServer } from 'node:http';

const BACKENDS = { 'catalog-v1': 9101, 'catalog-v2': 9102, cart: 9103 } as const;

const servers = Object.entries(BACKENDS).map(([name, port]) => {
  const server = createServer((req, res) => {
    const body = JSON.stringify(
      { upstream: name, method: req.method, path: req.url, headers: req.headers },
      null,
      2,
    );
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.on('error', (err) => {
    process.stderr.write(`${name}: cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () =>
    process.stdout.write(`${JSON.stringify({ msg: 'listening', upstream: name, port })}\n`),
  );
  return server;
});

const stop = () => {
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
