// The outside world of the multi-tenant-edge example, on 127.0.0.1:
//   9401  the identity providers of two tenants: /tenant-a/jwks.json (RS256) and
//         /tenant-b/jwks.json (ES256), with keys made at start (no private key is kept on disk)
//   9402  the orders API, which answers with the tenant, consumer and plan the gateway passed on
// and prints a token per consumer, as shell lines to paste:
//   ALICE (tenant a, free plan), BOB (tenant a, pro plan), CAROL (tenant b, free plan), and
//   MALLORY: signed by tenant a's provider but claiming tenant b.
//
//   node --import tsx examples/multi-tenant-edge/issuers.ts

import { createServer, type Server, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

interface Issuer {
  issuer: string;
  alg: 'RS256' | 'ES256';
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function makeIssuer(issuer: string, alg: Issuer['alg'], kid: string): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return {
    issuer,
    alg,
    kid,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' },
  };
}

const tenants = {
  'tenant-a': await makeIssuer('https://idp.tenant-a.example', 'RS256', 'tenant-a-1'),
  'tenant-b': await makeIssuer('https://login.tenant-b.example', 'ES256', 'tenant-b-1'),
};

function sign(by: Issuer, claims: { sub: string; tenant: string; plan: string }): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: by.alg, kid: by.kid, typ: 'JWT' })
    .setIssuer(by.issuer)
    .setAudience('orders')
    .setIssuedAt()
    .setExpirationTime('12h')
    .sign(by.privateKey);
}

function listen(server: Server, port: number, what: string): Promise<void> {
  return new Promise((resolve) => {
    server.on('error', (err) => {
      process.stderr.write(`${what}: cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
      process.exit(1);
    });
    server.listen(port, '127.0.0.1', () => {
      process.stdout.write(`${JSON.stringify({ msg: 'listening', what, port })}\n`);
      resolve();
    });
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const idp = createServer((req, res) => {
  const tenant = /^\/(tenant-[ab])\/jwks\.json$/.exec(req.url ?? '')?.[1] as
    keyof typeof tenants | undefined;
  if (!tenant) return json(res, 404, { error: 'no such JWKS' });
  json(res, 200, { keys: [tenants[tenant].jwk] });
});

const orders = createServer((req, res) =>
  json(res, 200, {
    service: 'orders',
    path: req.url,
    tenant: req.headers['x-tenant'] ?? null,
    consumer: req.headers['x-consumer'] ?? null,
    plan: req.headers['x-plan'] ?? null,
  }),
);

await listen(idp, 9401, 'identity providers');
await listen(orders, 9402, 'orders API');

const a = tenants['tenant-a'];
const b = tenants['tenant-b'];
const tokens = {
  ALICE: await sign(a, { sub: 'alice', tenant: 'a', plan: 'free' }),
  BOB: await sign(a, { sub: 'bob', tenant: 'a', plan: 'pro' }),
  CAROL: await sign(b, { sub: 'carol', tenant: 'b', plan: 'free' }),
  MALLORY: await sign(a, { sub: 'mallory', tenant: 'b', plan: 'pro' }),
};
process.stdout.write(
  `\nTokens (valid 12 h); paste these lines into the shell you try from:\n\n${Object.entries(tokens)
    .map(([name, token]) => `export ${name}=${token}`)
    .join('\n')}\n\n`,
);

const stop = () => {
  for (const s of [idp, orders]) {
    s.close();
    s.closeAllConnections();
  }
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
