// A JWKS document on loopback and a signer for tokens with any claims (any issuer), for the
// RequestAuthentication tests: Istio's test policies point several issuers at one `{JWKS_URI}`.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JSONWebKeySet,
  type JWTPayload,
} from 'jose';

export interface JwksServer {
  /** URL of the JWKS document. */
  uri: string;
  jwks: JSONWebKeySet;
  /** Signs `claims` exactly as given (iss, sub, exp… included) with the published key. */
  sign(claims: JWTPayload): Promise<string>;
  /** Same claims, signed with a key that is not in the JWKS: the signature does not verify. */
  signWithUnknownKey(claims: JWTPayload): Promise<string>;
  fetches: number;
  close(): Promise<void>;
}

const KID = 'test-key-1';

export async function startJwksServer(): Promise<JwksServer> {
  const published = await generateKeyPair('RS256', { extractable: true });
  const other = await generateKeyPair('RS256', { extractable: true });
  const jwks: JSONWebKeySet = {
    keys: [{ ...(await exportJWK(published.publicKey)), kid: KID, alg: 'RS256', use: 'sig' }],
  };
  const state = { fetches: 0 };
  const server: Server = createServer((_req, res) => {
    state.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sign = (key: CryptoKey, claims: JWTPayload) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' }).sign(key);
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
    jwks,
    sign: (claims) => sign(published.privateKey, claims),
    signWithUnknownKey: (claims) => sign(other.privateKey, claims),
    get fetches() {
      return state.fetches;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
