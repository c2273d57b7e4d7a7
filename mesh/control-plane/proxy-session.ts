// One connected proxy: its hello, the identity its certificate proved, the stream it reads, and
// what it has been sent and has acknowledged. The control plane pushes a view only when its
// version differs from the last one this proxy was sent (or said it serves, after a reconnect).

import type { ServerResponse } from 'node:http';
import type {
  ProxyHello,
  ProxyStatus,
  ProxyView,
  RegisteredEndpoint,
  ServerMessage,
} from '../../shared/discovery/protocol.ts';
import type { PeerIdentity } from '../../shared/identity/peer-verification.ts';

/** A proxy that stops reading its stream is cut off once this much is queued for it. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;

export class ProxySession {
  readonly proxyId: string;
  /** The last view computed for this proxy: sent, or adopted from the hello's currentVersion. */
  latest: ProxyView | undefined;
  ackedVersion: string | undefined;
  nack: { version: string; error: string } | undefined;
  certificateExpiry: Date | undefined;
  /** The heartbeat-lapse timer, owned by the control plane. */
  lapseTimer: unknown;
  closed = false;

  constructor(
    readonly hello: ProxyHello,
    readonly identity: PeerIdentity,
    readonly connectedAt: Date,
    private readonly res: ServerResponse,
  ) {
    this.proxyId = hello.proxyId;
  }

  /** The endpoint this sidecar registers, when its hello gives everything peers need to reach it. */
  get endpoint(): RegisteredEndpoint | undefined {
    const h = this.hello;
    if (h.kind !== 'sidecar' || !h.address || h.inboundPort === undefined) return undefined;
    if (h.appPort === undefined) return undefined;
    return {
      proxyId: h.proxyId,
      namespace: this.identity.namespace,
      serviceAccount: this.identity.serviceAccount,
      labels: h.labels,
      address: h.address,
      port: h.inboundPort,
      appPort: h.appPort,
    };
  }

  /** Sends `view` unless this proxy already has its version; true when it was sent. */
  push(view: ProxyView): boolean {
    if (this.latest?.version === view.version) return false;
    this.latest = view;
    return this.send({ type: 'view', view });
  }

  /** The proxy said (hello.currentVersion) that it already serves this view: not resent. */
  adopt(view: ProxyView): void {
    this.latest = view;
    this.ackedVersion = view.version;
  }

  acknowledge(version: string, ok: boolean, error: string | undefined): void {
    if (ok) {
      this.ackedVersion = version;
      if (this.nack?.version === version) this.nack = undefined;
    } else {
      this.nack = { version, error: error?.slice(0, 2000) || 'no reason given' };
    }
  }

  send(message: ServerMessage): boolean {
    if (this.closed || this.res.destroyed) return false;
    if (this.res.writableLength > MAX_QUEUED_BYTES) {
      // It will reconnect and get the whole view; better than buffering without bound.
      this.res.destroy(new Error('the proxy does not read its stream'));
      return false;
    }
    this.res.write(`${JSON.stringify(message)}\n`);
    return true;
  }

  /** Ends the stream, with a goaway first when the proxy should come back. */
  close(goaway?: { reason: string; retryAfterMs: number }): void {
    if (this.closed) return;
    if (goaway) this.send({ type: 'goaway', ...goaway });
    this.closed = true;
    if (!this.res.destroyed) this.res.end();
  }

  /** Drops the connection without a goodbye (a proxy whose heartbeat lapsed is likely gone). */
  destroy(): void {
    this.closed = true;
    this.res.destroy();
  }

  status(): ProxyStatus {
    const latest = this.latest?.version ?? '';
    const nacked = this.nack !== undefined && this.nack.version === latest;
    const h = this.hello;
    return {
      proxyId: this.proxyId,
      kind: h.kind,
      identity: this.identity.spiffeId,
      namespace: this.identity.namespace,
      ...(h.service ? { service: h.service } : {}),
      ...(h.address ? { address: h.address } : {}),
      connectedAt: this.connectedAt.toISOString(),
      latestVersion: latest,
      ...(this.ackedVersion ? { ackedVersion: this.ackedVersion } : {}),
      state: nacked ? 'NACKED' : this.ackedVersion === latest ? 'SYNCED' : 'STALE',
      ...(nacked ? { nackError: this.nack?.error } : {}),
      ...(this.certificateExpiry
        ? { certificateExpiry: this.certificateExpiry.toISOString() }
        : {}),
    };
  }
}
