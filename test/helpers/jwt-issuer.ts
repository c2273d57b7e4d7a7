import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  exportJWK,
  generateKeyPair,
  SignJWT,
  type JWK,
  type JWTPayload,
  type CryptoKey,
} from 'jose';

export type TestAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';

export interface TestIssuer {
  issuer: string;
  /** URL of the JWKS document (served on 127.0.0.1). */
  jwksUri: string;
  jwks: { keys: JWK[] };
  sign(
    claims: JWTPayload,
    options?: {
      alg?: TestAlg;
      kid?: string;
      expiresIn?: string | number;
      notBefore?: string | number;
    },
  ): Promise<string>;
  /** Adds a key (key rotation); it is published on the JWKS endpoint at once. */
  addKey(alg: TestAlg, kid: string): Promise<void>;
  /** How often the JWKS endpoint was fetched. */
  fetches: number;
  /** Make the JWKS endpoint answer 503 (outage). */
  down: boolean;
  close(): Promise<void>;
}

/** A JWT issuer for tests: keys generated at test time, JWKS served over HTTP on loopback. */
export async function startJwtIssuer(
  issuer = 'https://issuer.test',
  algs: TestAlg[] = ['RS256', 'PS256', 'ES256', 'EdDSA'],
): Promise<TestIssuer> {
  const keys = new Map<string, { alg: TestAlg; privateKey: CryptoKey; jwk: JWK }>();
  const add = async (alg: TestAlg, kid: string) => {
    const { privateKey, publicKey } = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    });
    const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    keys.set(kid, { alg, privateKey, jwk });
  };
  for (const alg of algs) await add(alg, `${alg.toLowerCase()}-1`);
  const state = { fetches: 0, down: false };
  const server: Server = createServer((req, res) => {
    state.fetches++;
    if (state.down) {
      res.writeHead(503).end();
      return;
    }
    const body = JSON.stringify({ keys: [...keys.values()].map((k) => k.jwk) });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  return {
    issuer,
    jwksUri,
    get jwks() {
      return { keys: [...keys.values()].map((k) => k.jwk) };
    },
    async sign(claims, options = {}) {
      const alg = options.alg ?? 'RS256';
      const kid = options.kid ?? `${alg.toLowerCase()}-1`;
      const key = keys.get(kid);
      if (!key) throw new Error(`no key ${kid}`);
      const jwt = new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg, kid })
        .setIssuer(issuer)
        .setIssuedAt();
      jwt.setExpirationTime(options.expiresIn ?? '1h');
      if (options.notBefore !== undefined) jwt.setNotBefore(options.notBefore);
      return jwt.sign(key.privateKey);
    },
    addKey: add,
    get fetches() {
      return state.fetches;
    },
    get down() {
      return state.down;
    },
    set down(v: boolean) {
      state.down = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
