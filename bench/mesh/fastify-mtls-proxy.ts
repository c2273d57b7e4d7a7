// One hop of the naive baseline (row 2): fastify with @fastify/http-proxy, as a team would put two
// of them in front of a service to get mutual TLS between hosts without a mesh.
//   hop A: plain HTTP in, HTTPS out with a client certificate, verifying the server's chain and name
//   hop B: HTTPS in, requiring a client certificate that chains to the root; plain HTTP out
// Usage: node --import tsx bench/mesh/fastify-mtls-proxy.ts --port P --upstream ORIGIN
//          [--server-cert F --server-key F --client-ca F]     (hop B: the listener's TLS)
//          [--client-cert F --client-key F --upstream-ca F]   (hop A: the upstream's TLS)

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const { values: v } = parseArgs({
  options: {
    port: { type: 'string' },
    upstream: { type: 'string' },
    'server-cert': { type: 'string' },
    'server-key': { type: 'string' },
    'client-ca': { type: 'string' },
    'client-cert': { type: 'string' },
    'client-key': { type: 'string' },
    'upstream-ca': { type: 'string' },
  },
});
if (!v.port || !v.upstream)
  throw new Error('usage: fastify-mtls-proxy.ts --port P --upstream ORIGIN …');
const read = (file: string | undefined) => (file ? readFileSync(file) : undefined);

const serverTls = v['server-cert']
  ? {
      cert: read(v['server-cert']),
      key: read(v['server-key']),
      ca: read(v['client-ca']),
      requestCert: true,
      rejectUnauthorized: true,
    }
  : undefined;
// Typed as the plain-HTTP instance: the HTTPS one registers plugins the same way.
const app = (
  serverTls ? Fastify({ logger: false, https: serverTls }) : Fastify({ logger: false })
) as ReturnType<typeof Fastify>;
// 64 upstream connections, as nginx's `keepalive 64` (row 3) and the gateway bench's proxies
await app.register(proxy, {
  upstream: v.upstream,
  undici: {
    connections: 64,
    pipelining: 1,
    ...(v['client-cert']
      ? {
          connect: {
            cert: read(v['client-cert']),
            key: read(v['client-key']),
            ca: read(v['upstream-ca']),
            rejectUnauthorized: true,
          },
        }
      : {}),
  },
});
await app.listen({ port: Number(v.port), host: '127.0.0.1' });
