import type { Http2ServerRequest } from 'node:http2';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { requestTimers } from '../../shared/backend/clock.ts';
import {
  forwardWithPolicy,
  type PolicyForwardDeps,
  type PolicyRequest,
} from '../../shared/backend/forward-with-policy.ts';
import { pickBackendRef } from '../../shared/proxy/backend-ref.ts';
import { addCorsHeaders } from '../../shared/proxy/cors.ts';
import { ProxyError } from '../../shared/proxy/errors.ts';
import { forward, RetryableResponse } from '../../shared/proxy/forward.ts';
import { applyHeaderOps, type HeaderMap } from '../../shared/proxy/headers.ts';
import { MeshPools, meshServerName } from '../../shared/proxy/mesh-pools.ts';
import type { UpstreamPools } from '../../shared/proxy/upstream-pools.ts';
import type { CompiledBackend, CompiledRule, Mirror } from '../edge-view.ts';
import type { EdgeRequest } from '../request-context.ts';
import { answerRedirect, hostWithoutPort, modifyPath } from './answer-rule-directly.ts';
import { answerCors } from './apply-cors.ts';

/**
 * The process's mTLS pools to mesh sidecars, for a gateway that joined the mesh: the worker gives
 * it the gateway's credentials (and every rotation), and backends whose endpoints are sidecars
 * (CompiledBackend.identities) are called through it. Standalone, it is never used.
 */
export const meshPools = new MeshPools();

/** The dispatcher for one endpoint of `backend`: mTLS to a sidecar, plain HTTP to anything else. */
export function dispatcherFor(
  pools: UpstreamPools,
  backend: CompiledBackend,
  origin: string,
): Dispatcher {
  const spiffeId = backend.identities?.get(origin);
  return spiffeId === undefined
    ? (pools.get(origin) as Dispatcher)
    : meshPools.get(origin, spiffeId, meshServerName(backend.key));
}

export interface ForwardDeps {
  pools: UpstreamPools;
  random: () => number;
  now: () => number;
}

/**
 * The backend layer: picks a backendRef by weight and an endpoint by round robin, applies the
 * rule's request filters, mirrors, and forwards with the rule's timeouts and retries. A backend
 * with a BackendTrafficPolicy goes through the policy's layers instead (forwardWithPolicy).
 */
export function forwardToBackend(deps: ForwardDeps) {
  const plainDeps: PolicyForwardDeps = {
    random: deps.random,
    now: deps.now,
    timers: requestTimers,
    dispatcher: (origin) => deps.pools.get(origin) as Dispatcher,
  };
  return async function forwardToBackend(r: EdgeRequest): Promise<void> {
    const rule = r.rule as CompiledRule;
    const backend = chooseBackend(r, rule, deps.random);
    if (!backend) return;
    if (backend.cors && !rule.cors) {
      answerCors(r, backend.cors);
      if (r.done) return;
    }

    const headers = upstreamHeaders(r, rule, backend);
    const path = upstreamPath(r, rule, backend);
    let body: Readable | null = r.body ?? (hasBody(r) ? r.req : null);
    const configured =
      backend.mirrors.length > 0 ? [...rule.mirrors, ...backend.mirrors] : rule.mirrors;
    const mirrors =
      configured.length > 0
        ? configured.filter((m) => deps.random() * m.denominator < m.numerator)
        : [];
    if (mirrors.length > 0) body = sendMirrors(r, mirrors, headers, path, body, deps.pools);
    if (backend.policy)
      return forwardWithPolicy(
        backend.policy,
        policyRequest(r, rule, backend, headers, path, body),
        r.res,
        backend.identities
          ? { ...plainDeps, dispatcher: (origin) => dispatcherFor(deps.pools, backend, origin) }
          : plainDeps,
      );

    const deadline = rule.requestTimeoutMs > 0 ? r.startedAt + rule.requestTimeoutMs : 0;
    // A streamed body cannot be sent twice: retries are for bodiless requests.
    const attempts = 1 + (rule.retry && body === null ? rule.retry.attempts : 0);
    for (let attempt = 1; ; attempt++) {
      const endpoint = backend.endpoints.pick();
      if (!endpoint)
        throw new ProxyError('MG_ERR_NO_HEALTHY_UPSTREAM', `${backend.key} has no ready endpoint`);
      r.upstream = endpoint.origin;
      const remaining = deadline > 0 ? deadline - deps.now() : 0;
      if (deadline > 0 && remaining <= 0)
        throw new ProxyError(
          'MG_ERR_UPSTREAM_TIMEOUT',
          `${rule.id}: request timeout of ${rule.requestTimeoutMs} ms reached`,
        );
      const timeoutMs = minPositive(rule.backendTimeoutMs, remaining);
      const last = attempt >= attempts;
      try {
        await forward(
          {
            dispatcher: dispatcherFor(deps.pools, backend, endpoint.origin),
            origin: endpoint.origin,
            method: r.method,
            path,
            headers,
            body,
            timeoutMs,
          },
          r.res,
          {
            responseHeaders: (_status, h) => {
              if (rule.responseHeaders) applyHeaderOps(h, rule.responseHeaders);
              if (backend.responseHeaders) applyHeaderOps(h, backend.responseHeaders);
              if (r.corsHeaders) addCorsHeaders(h, r.corsHeaders);
            },
            ...(!last && rule.retry
              ? {
                  retryOn: (status: number) =>
                    (rule.retry as { codes: ReadonlySet<number> }).codes.has(status),
                }
              : {}),
          },
        );
        return;
      } catch (err) {
        const retryable =
          err instanceof RetryableResponse ||
          (err instanceof ProxyError && err.code === 'MG_ERR_UPSTREAM_CONNECT');
        if (last || !retryable || r.res.headersSent) {
          if (err instanceof RetryableResponse)
            throw new ProxyError(
              'MG_ERR_UPSTREAM_RESET',
              `retry budget spent; last answer was ${err.status}`,
            );
          throw err;
        }
        r.flags = 'URX';
        await sleep(backoff(rule.retry?.backoffMs ?? 25, attempt, deps.random));
      }
    }
  };
}

/**
 * A backendRef of the rule by weight. Its own filters come first: fail closed or redirect may
 * answer right here (undefined then).
 */
export function chooseBackend(
  r: EdgeRequest,
  rule: CompiledRule,
  random: () => number,
): CompiledBackend | undefined {
  const backend = pickBackendRef(rule, random);
  if (backend.redirect) {
    answerRedirect(r, backend.redirect);
    return undefined;
  }
  return backend;
}

/** The request as the BackendTrafficPolicy layers see it. */
export function policyRequest(
  r: EdgeRequest,
  rule: CompiledRule,
  backend: CompiledBackend,
  headers: HeaderMap,
  path: string,
  body: Readable | null,
): PolicyRequest {
  return {
    method: r.method,
    path,
    headers,
    body,
    startedAt: r.startedAt,
    hash: r,
    connectionKey: () => {
      const s = r.req.socket;
      return `${s?.remoteAddress}:${s?.remotePort}|${s?.localAddress}:${s?.localPort}`;
    },
    responseHeaders: (_status, h) => {
      if (rule.responseHeaders) applyHeaderOps(h, rule.responseHeaders);
      if (backend.responseHeaders) applyHeaderOps(h, backend.responseHeaders);
      if (r.corsHeaders) addCorsHeaders(h, r.corsHeaders);
    },
    onUpstream: (origin) => {
      r.upstream = origin;
    },
    onFlag: (flag) => {
      r.flags = r.flags === '-' ? flag : `${r.flags},${flag}`;
    },
    label: `${rule.id} → ${backend.key}`,
  };
}

/**
 * HTTP/1 announces a body in its headers (Content-Length, Transfer-Encoding); HTTP/2 by not
 * ending the stream with the HEADERS frame, where content-length is optional (RFC 9113 §8.1.1).
 */
function hasBody(r: EdgeRequest): boolean {
  if (r.client.hasBody) return true;
  const stream = (r.req as Partial<Http2ServerRequest>).stream;
  return stream !== undefined && !stream.endAfterHeaders;
}

function minPositive(a: number, b: number): number {
  if (a > 0 && b > 0) return Math.min(a, b);
  return a > 0 ? a : b > 0 ? b : 0;
}

/** Exponential backoff with full jitter, capped at ten times the base (Envoy's default shape). */
function backoff(baseMs: number, attempt: number, random: () => number): number {
  return Math.min(baseMs * 2 ** (attempt - 1), baseMs * 10) * random();
}

/** Request headers for the upstream: the client's (hop-by-hop dropped), forwarding headers, the rule's and the backendRef's modifiers. */
export function upstreamHeaders(
  r: EdgeRequest,
  rule: CompiledRule,
  backend: CompiledBackend,
): HeaderMap {
  const headers = r.client.headers;
  const host = r.client.host as string;
  headers.host = backend.rewrite?.hostname ?? rule.rewrite?.hostname ?? host;
  headers['x-forwarded-for'] = r.client.forwardedFor
    ? `${r.client.forwardedFor}, ${r.clientAddress}`
    : r.clientAddress;
  headers['x-forwarded-proto'] = r.scheme;
  headers['x-forwarded-host'] = host;
  headers['x-request-id'] = r.requestId;
  if (r.client.wantsTrailers) headers.te = 'trailers';
  if (rule.requestHeaders) applyHeaderOps(headers, rule.requestHeaders);
  if (backend.requestHeaders) applyHeaderOps(headers, backend.requestHeaders);
  return headers;
}

/** The path sent upstream: a backendRef's URLRewrite path wins over the rule's (both rewrite the request's path). */
export function upstreamPath(r: EdgeRequest, rule: CompiledRule, backend: CompiledBackend): string {
  const modifier = backend.rewrite?.path ?? rule.rewrite?.path;
  const p = modifier ? modifyPath(r.path, modifier, r.match?.prefixLength ?? 0) : r.path;
  return r.query ? `${p}?${r.query}` : p;
}

/**
 * RequestMirror: a copy goes to one endpoint of the mirror backend, its answer is dropped. A
 * body is teed; a mirror that cannot keep up is cut off rather than slowing the real request.
 */
function sendMirrors(
  r: EdgeRequest,
  mirrors: readonly Mirror[],
  headers: HeaderMap,
  path: string,
  body: Readable | null,
  pools: UpstreamPools,
): Readable | null {
  const copies: PassThrough[] = [];
  for (const m of mirrors) {
    const endpoint = m.target.endpoints.pick();
    if (!endpoint || m.target.invalid) continue;
    const copy = body ? new PassThrough({ highWaterMark: 1 << 20 }) : null;
    if (copy) copies.push(copy);
    const mirrored: HeaderMap = {
      ...headers,
      host: `${hostWithoutPort(String(headers.host))}-shadow`,
    };
    dispatcherFor(pools, m.target, endpoint.origin)
      .request({ origin: endpoint.origin, method: r.method, path, headers: mirrored, body: copy })
      .then((res) => res.body.dump())
      .catch(() => copy?.destroy());
  }
  if (!body || copies.length === 0) return body;
  const main = new PassThrough();
  body.on('data', (chunk: Buffer) => {
    for (const c of copies) if (!c.destroyed && !c.write(chunk)) c.destroy();
    if (!main.write(chunk)) body.pause();
  });
  main.on('drain', () => body.resume());
  body.on('end', () => {
    main.end();
    for (const c of copies) if (!c.destroyed) c.end();
  });
  body.on('error', (err) => main.destroy(err));
  return main;
}
