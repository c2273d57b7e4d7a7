// Connection pools to mesh peers (sidecars' inbound listeners), over mTLS: our workload
// certificate, the mesh root as the only CA, and the peer's SPIFFE id checked against the one the
// control plane says that endpoint has. Shared by the sidecar's outbound and the edge gateway.
//
// Each (endpoint, identity, SNI) gets one MeshDispatcher, a stable undici Dispatcher that hands
// every request to a Pool built from the credentials current when the pool was opened. The SNI is
// the destination Service as Istio names it (`outbound_.<port>_._.<svc>.<ns>.svc.cluster.local`),
// fixed per dispatcher: undici would otherwise take it from each request's Host header and open a
// new connection whenever two requests spell the Service differently. When the
// credentials rotate, every dispatcher opens a new Pool for new requests and closes the old one
// gracefully (undici's close() lets the requests it holds finish), so no request is dropped and
// no connection outlives the certificate it was made with by more than one request's time.

import { createSecureContext, type SecureContext } from 'node:tls';
import type { buildConnector, Dispatcher, Pool } from 'undici';
import * as undici from './undici-core.ts';
import {
  createCheckServerIdentity,
  expectPeers,
  secureContextOptions,
  type MtlsCredentials,
} from '../identity/peer-verification.ts';
import { DEFAULT_UPSTREAM_POOL_OPTIONS, type UpstreamPoolOptions } from './upstream-pools.ts';

/** Per-pool settings beyond the shared ones (a BackendTrafficPolicy's connection settings). */
export type MeshPoolSettings = Omit<Pool.Options, 'connect'> & { connectTimeoutMs?: number };

export interface MeshPoolsOptions {
  pools?: UpstreamPoolOptions;
  trustDomain?: string;
  /** Every outbound mTLS handshake: ok, or the error (chain, identity) that refused the peer. */
  onHandshake?: (origin: string, error: Error | undefined) => void;
}

/** One generation of credentials: the secure context every pool of the generation shares. */
interface Generation {
  credentials: MtlsCredentials;
  context: SecureContext;
  minVersion: NonNullable<ReturnType<typeof secureContextOptions>['minVersion']>;
}

export class MeshPools {
  private generation: Generation | undefined;
  private readonly dispatchers = new Map<string, MeshDispatcher>();
  private readonly options: UpstreamPoolOptions;
  private readonly trustDomain: string | undefined;
  private closed = false;

  constructor(private readonly settings: MeshPoolsOptions = {}) {
    this.options = settings.pools ?? DEFAULT_UPSTREAM_POOL_OPTIONS;
    this.trustDomain = settings.trustDomain;
  }

  /** Whether credentials are set (until then no mTLS connection can be opened). */
  get ready(): boolean {
    return this.generation !== undefined;
  }

  /**
   * New credentials (the first ones, or a rotation): pools opened from now on use them, and the
   * pools of the previous credentials close once their requests are done.
   */
  setCredentials(credentials: MtlsCredentials): void {
    const options = secureContextOptions(credentials);
    this.generation = {
      credentials,
      context: createSecureContext(options),
      minVersion: options.minVersion ?? 'TLSv1.3',
    };
    for (const d of this.dispatchers.values()) d.rotate();
  }

  /**
   * The dispatcher for a peer endpoint ("https://address:port") that must prove `spiffeId`,
   * sending `servername` as SNI (none: the request's Host, as undici does).
   */
  get(origin: string, spiffeId: string, servername?: string): Dispatcher {
    const key = `${origin}|${spiffeId}|${servername ?? ''}`;
    let d = this.dispatchers.get(key);
    if (!d) {
      d = new MeshDispatcher(this, origin, spiffeId, servername, {});
      this.dispatchers.set(key, d);
    }
    return d;
  }

  /** A dispatcher with its own pool settings (not shared, not tracked: its owner closes it). */
  create(
    origin: string,
    spiffeId: string,
    settings: MeshPoolSettings,
    servername?: string,
  ): Dispatcher {
    return new MeshDispatcher(this, origin, spiffeId, servername, settings);
  }

  /** Closes the dispatchers of peers no longer in use ("origin|spiffeId" keys, any SNI). */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, d] of this.dispatchers) {
      if (keys.has(key.slice(0, key.lastIndexOf('|')))) continue;
      this.dispatchers.delete(key);
      d.close().catch(() => undefined);
    }
  }

  get size(): number {
    return this.dispatchers.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.dispatchers.values()];
    this.dispatchers.clear();
    await Promise.all(all.map((d) => d.close().catch(() => d.destroy())));
  }

  /** @internal A Pool for one peer with the current credentials. */
  openPool(origin: string, spiffeId: string, settings: MeshPoolSettings): Pool {
    const g = this.generation;
    if (!g || this.closed)
      throw Object.assign(new Error('no workload certificate yet: cannot open mTLS to the mesh'), {
        code: 'ECONNREFUSED',
      });
    const { connectTimeoutMs, ...poolSettings } = settings;
    const timeout = connectTimeoutMs ?? this.options.connectTimeoutMs;
    const connector = undici.buildConnector({
      timeout,
      // No TLS session resumption: every connection proves its identity with a full handshake,
      // and a resumed session would outlive a rotation of the certificate it was made with.
      maxCachedSessions: 0,
      secureContext: g.context,
      rejectUnauthorized: true,
      minVersion: g.minVersion,
      checkServerIdentity: createCheckServerIdentity(
        expectPeers({
          ...(this.trustDomain ? { trustDomain: this.trustDomain } : {}),
          identities: [spiffeId],
        }),
      ),
    } as buildConnector.BuildOptions);
    const onHandshake = this.settings.onHandshake;
    return new undici.Pool(origin, {
      connections: this.options.connections,
      keepAliveTimeout: this.options.keepAliveTimeoutMs,
      keepAliveMaxTimeout: this.options.keepAliveTimeoutMs,
      pipelining: 1,
      ...poolSettings,
      connect: onHandshake
        ? (opts, callback) =>
            connector(opts, (...args: Parameters<buildConnector.Callback>) => {
              onHandshake(origin, args[0] ?? undefined);
              callback(...args);
            })
        : connector,
    });
  }
}

/** A stable dispatcher for one peer whose Pool is replaced when the credentials rotate. */
class MeshDispatcher extends undici.Dispatcher {
  private pool: Pool | undefined;
  private closed = false;

  constructor(
    private readonly owner: MeshPools,
    private readonly origin: string,
    private readonly spiffeId: string,
    private readonly servername: string | undefined,
    private readonly settings: MeshPoolSettings,
  ) {
    super();
  }

  override dispatch(
    opts: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): boolean {
    if (this.closed)
      throw Object.assign(new Error('dispatcher closed'), { code: 'UND_ERR_CLOSED' });
    this.pool ??= this.owner.openPool(this.origin, this.spiffeId, this.settings);
    // undici's Request takes `servername` (the SNI) from its options, else from the Host header.
    // Set on the caller's object, which is made for this one dispatch (forward.ts).
    if (this.servername !== undefined)
      (opts as Dispatcher.DispatchOptions & { servername?: string }).servername = this.servername;
    return this.pool.dispatch(opts, handler);
  }

  /** New requests get a new Pool; the old one finishes what it holds, then closes. */
  rotate(): void {
    const old = this.pool;
    this.pool = undefined;
    old?.close().catch(() => undefined);
  }

  override async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  override async destroy(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }
}

/**
 * The SNI Istio's client sidecars send for a Service port ("namespace/name:port"), which inbound
 * policies can match with `connection.sni`.
 */
export function meshServerName(servicePort: string): string {
  const slash = servicePort.indexOf('/');
  const colon = servicePort.lastIndexOf(':');
  const ns = servicePort.slice(0, slash);
  const name = servicePort.slice(slash + 1, colon);
  const port = servicePort.slice(colon + 1);
  return `outbound_.${port}_._.${name}.${ns}.svc.cluster.local`;
}
