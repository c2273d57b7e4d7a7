// Verified credentials by digest, until they expire: a hot token is verified once, not on every
// request. Bounded: the oldest entries go first when it is full.

import { createHash } from 'node:crypto';

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
    return createHash('sha256').update(scope).update('\0').update(token).digest('base64url');
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
