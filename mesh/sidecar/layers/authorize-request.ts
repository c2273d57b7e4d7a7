import { authorizeInbound, type InboundDecision } from '../../../shared/authz/evaluate.ts';
import { ProxyError } from '../../../shared/proxy/errors.ts';
import { RESPONSE_FLAGS_HEADER } from '../../../shared/proxy/problem.ts';
import type { InboundRequest } from '../request-context.ts';

export interface AuthorizeDeps {
  /** The workload port: what PeerAuthentication portLevelMtls and `to.operation.ports` mean. */
  appPort: number;
  /** A request was refused: the denial log, the metric, the log line naming the policy. */
  onDenied(r: InboundRequest, decision: InboundDecision): void;
}

/** Envoy's RBAC filter answers exactly this (403, text/plain); Istio's tests compare the text. */
export const RBAC_DENIED_BODY = 'RBAC: access denied';

/**
 * RequestAuthentication and AuthorizationPolicy for one request, decided by shared/authz, the
 * evaluator `meshgate explain` runs: the facts handed over are the ones the connection proved
 * (peer principal from the verified certificate, addresses, SNI) and the request as sent; the
 * evaluator normalizes the path before any policy sees it, and the normalized path is the one
 * forwarded to the app.
 */
export function authorizeRequest(deps: AuthorizeDeps) {
  return async function authorizeRequest(r: InboundRequest): Promise<void> {
    const tls = r.connection.tls;
    const servername = tls?.servername;
    const sourceIp = plainIp(r.clientAddress);
    const decision = await authorizeInbound(r.view.inbound, {
      port: deps.appPort,
      ...(r.peer ? { peerPrincipal: r.peer.principal } : {}),
      sourceIp,
      remoteIp: remoteIp(r.client.forwardedFor) ?? sourceIp,
      destinationIp: plainIp(r.localAddress),
      ...(typeof servername === 'string' && servername ? { sni: servername } : {}),
      method: r.method,
      path: r.req.url ?? '/',
      ...(r.client.host !== undefined ? { host: r.client.host } : {}),
      headers: r.req.headers,
    });
    r.decision = decision;
    if (decision.allow) {
      const q = (r.req.url ?? '').indexOf('?');
      r.path = decision.path ?? '/';
      r.query = q < 0 ? '' : (r.req.url as string).slice(q + 1);
      const mutation = decision.headers;
      if (mutation) {
        for (const name of mutation.remove) delete r.client.headers[name];
        for (const [name, value] of Object.entries(mutation.set)) r.client.headers[name] = value;
      }
      return;
    }
    deps.onDenied(r, decision);
    if (decision.plaintextRefused) {
      // STRICT and a plaintext caller: PeerAuthentication changed to STRICT under a connection
      // accepted before; as at accept time, no HTTP answer, the connection is closed.
      r.done = true;
      r.addFlag('NR');
      r.req.socket?.destroy();
      return;
    }
    if (decision.status === 400) throw new ProxyError('MG_ERR_BAD_PATH', decision.reason);
    r.done = true;
    r.addFlag(decision.status === 401 ? 'UAEX' : 'RBAC');
    const body =
      decision.status === 401
        ? 'Jwt verification fails'
        : decision.reason.startsWith('request authentication failed')
          ? 'Audiences in Jwt are not allowed'
          : RBAC_DENIED_BODY;
    r.res.writeHead(decision.status, {
      'content-type': 'text/plain',
      'content-length': String(Buffer.byteLength(body)),
      'x-request-id': r.requestId,
      [RESPONSE_FLAGS_HEADER]: decision.status === 401 ? 'UAEX' : 'RBAC',
      ...(decision.status === 401 ? { 'www-authenticate': 'Bearer realm="mesh"' } : {}),
    });
    r.res.end(body);
  };
}

/** "::ffff:127.0.0.1" (an IPv4 peer on a dual-stack socket) as policies write it. */
function plainIp(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * `remote.ip`: the last address of X-Forwarded-For, as Envoy derives the downstream address
 * when the sidecar's inbound does not use the connection's (use_remote_address false, no
 * trusted hops).
 */
function remoteIp(forwardedFor: string | undefined): string | undefined {
  if (!forwardedFor) return undefined;
  const last = forwardedFor.slice(forwardedFor.lastIndexOf(',') + 1).trim();
  return last || undefined;
}
