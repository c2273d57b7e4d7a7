// The apps of the mesh-only example, in one process: web on 127.0.0.1:9201, api v1 on 9202 and
// api v2 on 9203 (the targetPorts in services.yaml). Each answers with JSON: which app answered,
// the path, and the caller its sidecar saw (the URI of X-Forwarded-Client-Cert, which only the
// sidecar sets: the caller's SPIFFE id).
//
//   node --import tsx examples/mesh-only/apps.ts

import { createServer } from 'node:http';

const APPS = { web: 9201, 'api-v1': 9202, 'api-v2': 9203 } as const;

const servers = Object.entries(APPS).map(([app, port]) => {
  const server = createServer((req, res) => {
    const xfcc = req.headers['x-forwarded-client-cert'];
    const caller =
      typeof xfcc === 'string' ? (/(?:^|;)URI=([^;,]+)/.exec(xfcc)?.[1] ?? null) : null;
    const body = JSON.stringify({ app, path: req.url, caller }, null, 2);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.on('error', (err) => {
    process.stderr.write(`${app}: cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () =>
    process.stdout.write(`${JSON.stringify({ msg: 'listening', app, port })}\n`),
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
