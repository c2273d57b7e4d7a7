import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  addResponseCookies,
  clearChunked,
  readChunked,
  readCookies,
  SessionCodec,
  setChunked,
  withoutCookies,
  type CookieAttributes,
  type LoginFlow,
  type SessionTokens,
} from '../../../gateway/auth/oidc-session.ts';
import type { ClientResponse } from '../../../shared/proxy/forward.ts';

// The OIDC login's cookies: encryption (dir + A256GCM with HKDF-derived keys), chunking of long
// sessions, and the Set-Cookie merge for a transparent refresh.

const session: SessionTokens = { v: 1, at: 'access', it: 'id', rt: 'refresh', exp: 1_000 };
const flow: LoginFlow = {
  v: 1,
  state: 's',
  nonce: 'n',
  verifier: 'v',
  returnTo: '/orders?page=2',
  exp: 2_000,
};
const attrs: CookieAttributes = { path: '/', secure: true, sameSite: 'Lax' };

describe('SessionCodec', () => {
  const codec = new SessionCodec('client-secret', 'https://idp.test\0client');

  it('seals a session as a compact JWE with dir and A256GCM, and opens it again', async () => {
    const jwe = await codec.sealSession(session);
    expect(jwe.split('.')).toHaveLength(5);
    expect(decodeProtectedHeader(jwe)).toEqual({ alg: 'dir', enc: 'A256GCM' });
    expect(jwe).not.toContain('access');
    expect(await codec.openSession(jwe)).toEqual(session);
    expect(await codec.openFlow(await codec.sealFlow(flow))).toEqual(flow);
  });

  it('opens nothing that was altered, sealed for the other purpose, or with another key', async () => {
    const jwe = await codec.sealSession(session);
    const i = jwe.length - 30;
    const tampered = `${jwe.slice(0, i)}${jwe[i] === 'A' ? 'B' : 'A'}${jwe.slice(i + 1)}`;
    expect(await codec.openSession(tampered)).toBeUndefined();
    expect(await codec.openSession('not a jwe')).toBeUndefined();
    // The flow key is not the session key: a flow cookie is no session.
    expect(await codec.openSession(await codec.sealFlow(flow))).toBeUndefined();
    // A rotated client secret, or another client of the same provider, retires the session.
    expect(await new SessionCodec('rotated', 'https://idp.test\0client').openSession(jwe)).toBe(
      undefined,
    );
    expect(
      await new SessionCodec('client-secret', 'https://idp.test\0other').openSession(jwe),
    ).toBe(undefined);
  });
});

describe('session cookies', () => {
  it('splits a long value over chunk cookies and joins them again', () => {
    const value = 'x'.repeat(3800) + 'y'.repeat(3800) + 'z'.repeat(100);
    const set = setChunked(new Map(), 'S', value, attrs, 60);
    expect(set.map((c) => c.split('=')[0])).toEqual(['S', 'S.1', 'S.2']);
    expect(set[0]).toMatch(/; Path=\/; Max-Age=60; HttpOnly; SameSite=Lax; Secure$/);
    const cookies = readCookies(set.map((c) => c.split(';')[0]).join('; '));
    expect(readChunked(cookies, 'S')).toBe(value);
  });

  it('clears the chunks of a longer earlier value', () => {
    const cookies = readCookies('S=a; S.1=b; S.2=c; other=1');
    const set = setChunked(cookies, 'S', 'short', { ...attrs, domain: 'example.com' }, 60);
    expect(set).toEqual([
      'S=short; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure; Domain=example.com',
      'S.1=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure; Domain=example.com',
      'S.2=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure; Domain=example.com',
    ]);
    expect(clearChunked(cookies, 'S', attrs).map((c) => c.split(';')[0])).toEqual([
      'S=',
      'S.1=',
      'S.2=',
    ]);
  });

  it("removes the gateway's cookies from what goes upstream", () => {
    const drop = (n: string) => n === 'S' || n.startsWith('S.') || n.startsWith('OauthFlow-');
    expect(withoutCookies('a=1; S=x; S.1=y; OauthFlow-1.ab=z; b=2', drop)).toBe('a=1; b=2');
    expect(withoutCookies('S=x', drop)).toBeUndefined();
  });

  it("adds Set-Cookie headers to the response without dropping the upstream's", () => {
    const written: Record<string, unknown>[] = [];
    const res = {
      writeHead: (_status: number, headers?: Record<string, unknown>) =>
        written.push(headers ?? {}),
    } as unknown as ClientResponse;
    addResponseCookies(res, ['S=new']);
    res.writeHead(200, { 'set-cookie': ['cart=3'], 'content-type': 'text/plain' });
    expect(written[0]).toEqual({ 'set-cookie': ['cart=3', 'S=new'], 'content-type': 'text/plain' });
  });
});
