// OpenID Provider metadata from `<issuer>/.well-known/openid-configuration` (OpenID Connect
// Discovery 1.0 section 4), shared by every view: fetched once per issuer, refreshed in the
// background when older than maxAge, and served stale while the provider is unreachable.

import { getJson } from './oauth-client.ts';

export interface ProviderMetadata {
  issuer: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  end_session_endpoint?: string;
  jwks_uri?: string;
}

export interface OidcDiscoveryOptions {
  /** ms since epoch. */
  now: () => number;
  maxAgeMs: number;
  /** Least time between two failed fetches of one issuer (a down provider is not hammered). */
  retryMs: number;
  fetchTimeoutMs: number;
  onError?: (issuer: string, err: Error) => void;
}

interface Entry {
  metadata?: ProviderMetadata;
  fetchedAt: number;
  lastAttempt: number;
  inflight?: Promise<void>;
  lastError?: Error;
  failing: boolean;
}

export class OidcDiscovery {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly options: OidcDiscoveryOptions) {}

  /** The issuer's metadata; fetched now when never fetched (or after a failed fetch's retry delay). */
  async metadata(issuer: string): Promise<ProviderMetadata> {
    const e = this.entry(issuer);
    const now = this.options.now();
    const due = now - e.lastAttempt >= this.options.retryMs;
    if (!e.metadata && (due || e.inflight)) await this.refresh(issuer, e);
    else if (e.metadata && now - e.fetchedAt >= this.options.maxAgeMs && due)
      void this.refresh(issuer, e);
    if (!e.metadata)
      throw new Error(
        `discovery of ${issuer} failed${e.lastError ? `: ${e.lastError.message}` : ''}`,
      );
    return e.metadata;
  }

  /** Fetches now, so the first login does not wait (called when a view is built). */
  prefetch(issuer: string): void {
    const e = this.entry(issuer);
    if (!e.metadata && !e.inflight) void this.refresh(issuer, e);
  }

  private entry(issuer: string): Entry {
    let e = this.entries.get(issuer);
    if (!e) {
      e = { fetchedAt: 0, lastAttempt: -Infinity, failing: false };
      this.entries.set(issuer, e);
    }
    return e;
  }

  private refresh(issuer: string, e: Entry): Promise<void> {
    e.inflight ??= this.fetch(issuer, e).finally(() => {
      e.inflight = undefined;
    });
    return e.inflight;
  }

  private async fetch(issuer: string, e: Entry): Promise<void> {
    e.lastAttempt = this.options.now();
    try {
      const doc = await getJson(
        `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
        this.options.fetchTimeoutMs,
      );
      // Section 4.3: the issuer in the document must be exactly the one configured.
      if (doc.issuer !== issuer)
        throw new Error(`the document names issuer ${JSON.stringify(doc.issuer)}, not ${issuer}`);
      const str = (k: string) => (typeof doc[k] === 'string' ? { [k]: doc[k] } : {});
      e.metadata = {
        issuer,
        ...str('authorization_endpoint'),
        ...str('token_endpoint'),
        ...str('end_session_endpoint'),
        ...str('jwks_uri'),
      };
      e.fetchedAt = this.options.now();
      e.failing = false;
      e.lastError = undefined;
    } catch (err) {
      e.lastError = err as Error;
      if (!e.failing) this.options.onError?.(issuer, err as Error);
      e.failing = true;
    }
  }
}
