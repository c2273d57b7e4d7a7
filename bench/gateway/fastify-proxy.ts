// The peer: fastify with @fastify/http-proxy (reply-from over undici), every path to the
// upstream. Usage: node --import tsx bench/gateway/fastify-proxy.ts PORT UPSTREAM

import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const [port, upstream] = process.argv.slice(2);
if (!port || !upstream) throw new Error('usage: fastify-proxy.ts PORT UPSTREAM_ORIGIN');

const app = Fastify({ logger: false });
// 64 upstream connections, as nginx's `keepalive 64` and the bare proxy's Pool
await app.register(proxy, { upstream, undici: { connections: 64, pipelining: 1 } });
await app.listen({ port: Number(port), host: '127.0.0.1' });
