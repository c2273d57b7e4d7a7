// One undici Pool per upstream endpoint, kept across config reloads so keep-alive connections
// survive them; pools whose endpoint left the config are closed gracefully.

import type { Pool } from 'undici';
import * as undici from './undici-core.ts';

export interface UpstreamPoolOptions {
  /** Connections per endpoint (the per-endpoint connection limit). */
  connections: number;
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
}

export const DEFAULT_UPSTREAM_POOL_OPTIONS: UpstreamPoolOptions = {
  connections: 128,
  keepAliveTimeoutMs: 60_000,
  connectTimeoutMs: 10_000,
};

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly options: UpstreamPoolOptions = DEFAULT_UPSTREAM_POOL_OPTIONS) {}

  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new undici.Pool(origin, {
        connections: this.options.connections,
        keepAliveTimeout: this.options.keepAliveTimeoutMs,
        keepAliveMaxTimeout: this.options.keepAliveTimeoutMs,
        connect: { timeout: this.options.connectTimeoutMs },
        pipelining: 1,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** Closes pools for origins no longer in use; requests in flight on them finish first. */
  retain(origins: ReadonlySet<string>): void {
    for (const [origin, pool] of this.pools) {
      if (origins.has(origin)) continue;
      this.pools.delete(origin);
      pool.close().catch(() => undefined);
    }
  }

  get size(): number {
    return this.pools.size;
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => p.destroy())));
  }
}
