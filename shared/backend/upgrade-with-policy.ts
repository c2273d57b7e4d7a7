// An Upgrade (WebSocket) to a backend that has a BackendPolicy, shared by the edge and the sidecars:
// the layers of forward-with-policy.ts that apply to a tunnel. Fault injection first; then the
// circuit breaker admits it (queueing as any request) and counts it in flight until the tunnel
// closes, as Envoy counts an upgraded stream as an active request of its cluster; the balancer
// picks the endpoint (skipping ejected and unhealthy ones, by the request's hash for
// ConsistentHash; LeastRequest counts an open tunnel as a request in flight); outlier detection
// hears the handshake's answer or failure. Retries and timeouts do not apply: an Upgrade is sent
// once, and a tunnel lives as long as its peers keep it (shared/proxy/upgrade.ts).

import type { ServerResponse } from 'node:http';
import { ProxyError } from '../proxy/errors.ts';
import type { HeaderMap } from '../proxy/headers.ts';
import { forwardUpgrade, type Tunnel } from '../proxy/upgrade.ts';
import type { BackendPolicy } from './backend-policy.ts';
import type { Endpoint } from './endpoint-set.ts';
import {
  admit,
  appendHeader,
  injectFault,
  localOriginFailure,
  type AdmissionWait,
  type PolicyForwardDeps,
  type PolicyRequest,
} from './forward-with-policy.ts';
import { hashRequest } from './load-balancer.ts';

export async function upgradeWithPolicy(
  policy: BackendPolicy,
  req: PolicyRequest & { protocol: string },
  res: ServerResponse,
  tunnel: Tunnel,
  deps: PolicyForwardDeps,
): Promise<void> {
  const waiting: AdmissionWait = {};
  const onClose = () => waiting.stop?.();
  res.once('close', onClose);
  try {
    if (policy.fault && (await injectFault(policy, req, res, deps))) return;
    await admit(policy, req.label, 0, deps, waiting);
  } finally {
    res.removeListener('close', onClose);
  }
  const breaker = policy.breaker;
  const hashed = policy.hashPolicy
    ? hashRequest(policy.hashPolicy, req.hash, req.connectionKey)
    : undefined;
  const i = policy.choose(deps.random, deps.now(), hashed?.hash, undefined);
  if (i < 0) {
    breaker.release();
    throw new ProxyError('MG_ERR_NO_HEALTHY_UPSTREAM', `${req.label}: no healthy endpoint`);
  }
  const endpoint = policy.endpoints[i] as Endpoint;
  req.onUpstream?.(endpoint.origin);
  policy.lb.onRequestStart(i);
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    policy.lb.onRequestEnd(i);
    breaker.release();
  };
  let upgraded: boolean;
  try {
    upgraded = await forwardUpgrade(
      {
        dispatcher: policy.pools?.[i] ?? deps.dispatcher(endpoint.origin),
        origin: endpoint.origin,
        method: req.method,
        path: req.path,
        headers: req.headers,
        protocol: req.protocol,
      },
      res,
      {
        ...tunnel,
        onClosed: () => {
          end();
          tunnel.onClosed();
        },
      },
      (status: number, headers: HeaderMap) => {
        policy.onResponse(i, status, deps.now());
        if (hashed?.setCookie) appendHeader(headers, 'set-cookie', hashed.setCookie);
        req.responseHeaders?.(status, headers);
      },
    );
  } catch (err) {
    const local = err instanceof ProxyError ? localOriginFailure(err, res.headersSent) : undefined;
    if (local) policy.onLocalOriginFailure(i, local, deps.now());
    end();
    throw err;
  }
  // No tunnel: the answer was relayed whole, the request is over.
  if (!upgraded) end();
}
