// Remote JWKS documents, fetched once and shared by every view (a reload does not refetch):
// refreshed in the background when older than the cache duration, refetched on an unknown `kid`
// at most once per cooldown, and served stale while the JWKS endpoint is down.

import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import * as undici from '../../shared/proxy/undici-core.ts';

export interface JwksCacheOptions {
  now: () => number;
  /** Least time between two fetches of one URI caused by unknown kids. */
  cooldownMs: number;
  fetchTimeoutMs: number;
  onError?: (uri: string, err: Error) => void;
}

interface Entry {
  uri: string;
  maxAgeMs: number;
  keys?: JWTVerifyGetKey;
  kids: Set<string>;
  fetchedAt: number;
  lastAttempt: number;
  inflight?: Promise<void>;
  /** The endpoint failed last time; logged once per outage. */
  failing: boolean;
}

export class JwksCache {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly options: JwksCacheOptions) {}

  /** A key resolver for jose that reads this cache. */
  resolver(uri: string, maxAgeMs: number): JWTVerifyGetKey {
    let entry = this.entries.get(uri);
    if (!entry) {
      entry = {
        uri,
        maxAgeMs,
        kids: new Set(),
        fetchedAt: 0,
        lastAttempt: -Infinity,
        failing: false,
      };
      this.entries.set(uri, entry);
    }
    entry.maxAgeMs = maxAgeMs;
    const e = entry;
    return async (header, token) => {
      const now = this.options.now();
      const unknownKid =
        header.kid !== undefined && e.keys !== undefined && !e.kids.has(header.kid);
      if (!e.keys) await this.refresh(e);
      else if (unknownKid && now - e.lastAttempt >= this.options.cooldownMs) await this.refresh(e);
      else if (now - e.fetchedAt >= e.maxAgeMs && now - e.lastAttempt >= this.options.cooldownMs)
        void this.refresh(e);
      if (!e.keys) throw new Error(`JWKS ${uri} is not available`);
      return e.keys(header, token);
    };
  }

  /** Fetches the document now (used at load so the first request does not wait). */
  prefetch(uri: string): Promise<void> {
    const e = this.entries.get(uri);
    return e ? this.refresh(e) : Promise.resolve();
  }

  private refresh(e: Entry): Promise<void> {
    e.inflight ??= this.fetch(e).finally(() => {
      e.inflight = undefined;
    });
    return e.inflight;
  }

  private async fetch(e: Entry): Promise<void> {
    e.lastAttempt = this.options.now();
    try {
      const res = await undici.request(e.uri, {
        headersTimeout: this.options.fetchTimeoutMs,
        bodyTimeout: this.options.fetchTimeoutMs,
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const jwks = (await res.body.json()) as JSONWebKeySet;
      if (!jwks || !Array.isArray(jwks.keys)) throw new Error('the document has no "keys" list');
      e.keys = createLocalJWKSet(jwks);
      e.kids = new Set(
        jwks.keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string'),
      );
      e.fetchedAt = this.options.now();
      e.failing = false;
    } catch (err) {
      // Keep serving the keys we have; say so once per outage, not per request.
      if (!e.failing) this.options.onError?.(e.uri, err as Error);
      e.failing = true;
    }
  }
}
