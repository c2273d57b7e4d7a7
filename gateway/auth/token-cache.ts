// Verified credentials by digest, until they expire: a hot token is verified once, not on every
// request. Bounded: the oldest entries go first when it is full.

import * as crypto from 'node:crypto';

/**
 * SHA-256, base64url, of one string: crypto.hash (Node 20.12 and later) is one call with no Hash
 * object, half the cost of createHash on the request path; createHash where it is missing.
 */
const sha256: (data: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (data) =>
        (crypto as unknown as { hash(a: string, d: string, e: string): string }).hash(
          'sha256',
          data,
          'base64url',
        )
    : (data) => crypto.createHash('sha256').update(data).digest('base64url');

export interface CachedPrincipal<P> {
  principal: P;
  /** ms since epoch; the entry is dropped after it. */
  expiresAt: number;
}

export class TokenCache<P> {
  private readonly entries = new Map<string, CachedPrincipal<P>>();
  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  static digest(scope: string, token: string): string {
    return sha256(`${scope}\0${token}`);
  }

  get(key: string): P | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.principal;
  }

  set(key: string, principal: P, expiresAt: number): void {
    if (expiresAt <= this.now()) return;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { principal, expiresAt });
  }

  get size(): number {
    return this.entries.size;
  }
}
