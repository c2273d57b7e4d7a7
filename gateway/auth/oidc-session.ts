// The OIDC login's browser state: an encrypted session cookie (the tokens) and a short-lived
// encrypted login-flow cookie (state, nonce and PKCE verifier between the redirect to the provider
// and the callback). Both are compact JWEs (dir + A256GCM): the browser can neither read nor alter
// them, and nothing is kept in the gateway, so any replica can serve any request.

import { hkdfSync } from 'node:crypto';
import { compactDecrypt, CompactEncrypt } from 'jose';
import type { ClientResponse } from '../../shared/proxy/forward.ts';

export interface SessionTokens {
  v: 1;
  /** Access token. */
  at: string;
  /** ID token, verified when it was received. */
  it: string;
  /** Refresh token, when the provider gave one and refreshToken is on. */
  rt?: string;
  /** ms since epoch when the access token expires. */
  exp: number;
  /** Scopes the provider granted (the token response's `scope`). */
  scope?: string;
}

export interface LoginFlow {
  v: 1;
  state: string;
  nonce: string;
  /** PKCE code_verifier (RFC 7636). */
  verifier: string;
  /** Path and query to go back to after the login; always starts with a single "/". */
  returnTo: string;
  /** ms since epoch; a callback after it starts over. */
  exp: number;
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const DECRYPT_OPTIONS = {
  keyManagementAlgorithms: ['dir'],
  contentEncryptionAlgorithms: ['A256GCM'],
};

/**
 * Encrypts and decrypts one OIDC client's cookies. The keys come from the client secret through
 * HKDF (RFC 5869) rather than from a key of their own: every gateway replica derives the same
 * keys from what the snapshot already carries, with no key to generate, distribute or rotate; a
 * rotated client secret retires old sessions with it; HKDF's info separates the session key from
 * the flow key and one provider/client from another, and the secret itself never becomes a cipher
 * key.
 */
export class SessionCodec {
  private readonly sessionKey: Uint8Array;
  private readonly flowKey: Uint8Array;

  constructor(clientSecret: string, context: string) {
    const derive = (purpose: string) =>
      new Uint8Array(
        hkdfSync('sha256', clientSecret, 'meshgate-oidc-v1', `${purpose}\0${context}`, 32),
      );
    this.sessionKey = derive('session');
    this.flowKey = derive('flow');
  }

  sealSession(s: SessionTokens): Promise<string> {
    return seal(s, this.sessionKey);
  }

  async openSession(jwe: string): Promise<SessionTokens | undefined> {
    const s = await open(jwe, this.sessionKey);
    return s && s.v === 1 && typeof s.at === 'string' && typeof s.it === 'string'
      ? (s as unknown as SessionTokens)
      : undefined;
  }

  sealFlow(f: LoginFlow): Promise<string> {
    return seal(f, this.flowKey);
  }

  async openFlow(jwe: string): Promise<LoginFlow | undefined> {
    const f = await open(jwe, this.flowKey);
    return f && f.v === 1 && typeof f.state === 'string' && typeof f.verifier === 'string'
      ? (f as unknown as LoginFlow)
      : undefined;
  }
}

function seal(payload: object, key: Uint8Array): Promise<string> {
  return new CompactEncrypt(ENCODER.encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .encrypt(key);
}

/** A cookie that does not decrypt (tampered, another key, garbage) is no cookie at all. */
async function open(jwe: string, key: Uint8Array): Promise<Record<string, unknown> | undefined> {
  try {
    const { plaintext } = await compactDecrypt(jwe, key, DECRYPT_OPTIONS);
    const value: unknown = JSON.parse(DECODER.decode(plaintext));
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

// --- cookies ---

export interface CookieAttributes {
  domain?: string;
  path: string;
  secure: boolean;
  sameSite: 'Lax' | 'Strict' | 'None';
}

/**
 * Browsers keep a cookie of up to 4096 bytes (RFC 6265 section 6.1's minimum, and Chromium's
 * limit for name and value). Three tokens from a real provider often exceed it once encrypted, so
 * a long session is split over `name`, `name.1`, `name.2`, …
 */
const CHUNK_BYTES = 3800;
const MAX_CHUNKS = 8;

/** Every cookie of a request by name (the first of duplicates wins, as RFC 6265 orders them). */
export function readCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name && !out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/** A value split over chunk cookies, joined again; undefined when the first chunk is absent. */
export function readChunked(cookies: Map<string, string>, name: string): string | undefined {
  let value = cookies.get(name);
  if (value === undefined) return undefined;
  for (let i = 1; i < MAX_CHUNKS; i++) {
    const next = cookies.get(`${name}.${i}`);
    if (next === undefined) break;
    value += next;
  }
  return value;
}

/** Set-Cookie headers for a chunked value, clearing chunks of a longer earlier value. */
export function setChunked(
  cookies: Map<string, string>,
  name: string,
  value: string,
  attrs: CookieAttributes,
  maxAgeSeconds: number,
): string[] {
  const out: string[] = [];
  let i = 0;
  for (let at = 0; at < value.length && i < MAX_CHUNKS; at += CHUNK_BYTES, i++)
    out.push(
      setCookie(chunkName(name, i), value.slice(at, at + CHUNK_BYTES), attrs, maxAgeSeconds),
    );
  for (; i < MAX_CHUNKS && cookies.has(chunkName(name, i)); i++)
    out.push(clearCookie(chunkName(name, i), attrs));
  return out;
}

/** Set-Cookie headers that remove a chunked value (every chunk the request carried). */
export function clearChunked(
  cookies: Map<string, string>,
  name: string,
  attrs: CookieAttributes,
): string[] {
  const out = [clearCookie(name, attrs)];
  for (let i = 1; i < MAX_CHUNKS && cookies.has(chunkName(name, i)); i++)
    out.push(clearCookie(chunkName(name, i), attrs));
  return out;
}

function chunkName(name: string, i: number): string {
  return i === 0 ? name : `${name}.${i}`;
}

export function setCookie(
  name: string,
  value: string,
  attrs: CookieAttributes,
  maxAgeSeconds: number,
): string {
  let c = `${name}=${value}; Path=${attrs.path}; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=${attrs.sameSite}`;
  if (attrs.secure) c += '; Secure';
  if (attrs.domain) c += `; Domain=${attrs.domain}`;
  return c;
}

export function clearCookie(name: string, attrs: CookieAttributes): string {
  return setCookie(name, '', attrs, 0);
}

/** The request's Cookie header without the cookies `drop` names (undefined when none is left). */
export function withoutCookies(
  header: string | undefined,
  drop: (name: string) => boolean,
): string | undefined {
  if (!header) return header;
  const kept = header
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p && !drop(p.slice(0, Math.max(0, p.indexOf('='))).trim()));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/**
 * Adds Set-Cookie headers to whatever response the rest of the stack writes (the upstream's or
 * a problem), keeping the upstream's own cookies. The edge stack has no response hook for the
 * authn layer, and only a transparent token refresh needs one, so the response is wrapped then.
 */
export function addResponseCookies(res: ClientResponse, cookies: readonly string[]): void {
  const writeHead = res.writeHead.bind(res);
  res.writeHead = (status, headers = {}) => {
    const prev = headers['set-cookie'];
    const own = prev === undefined ? [] : Array.isArray(prev) ? prev : [String(prev)];
    return writeHead(status, { ...headers, 'set-cookie': [...own, ...cookies] });
  };
}
