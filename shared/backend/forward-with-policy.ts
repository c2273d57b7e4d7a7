// The backend layer's work for a backend that has a BackendPolicy, shared by the edge gateway and
// the sidecars: fault injection, then attempts, each one admitted by the circuit breaker, sent to
// the endpoint the balancer picks (skipping ejected and unhealthy ones), bounded by the request
// and per-attempt timeouts, its outcome fed to outlier detection, and retried as the retry policy
// says. Nothing here runs for a backend without a policy.
//
// Order, as in Envoy: the fault filter runs before the router (delay, then abort); the router then
// asks the connection pool (circuit breaker), which picks the host (load balancer). An attempt's
// answer is judged on its status line: a retriable one is dropped unseen and retried, any other
// is streamed to the client and ends the request.

import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError } from '../proxy/errors.ts';
import { forward, RetryableResponse, type ClientResponse } from '../proxy/forward.ts';
import type { HeaderMap } from '../proxy/headers.ts';
import { RESPONSE_FLAGS_HEADER } from '../proxy/problem.ts';
import type { BackendPolicy } from './backend-policy.ts';
import { sleep, type TimerHandle, type Timers } from './clock.ts';
import type { Endpoint } from './endpoint-set.ts';
import type { FaultAbort } from './fault-injection.ts';
import { hashRequest, type HashRequest, type RequestHash } from './load-balancer.ts';
import type { LocalOriginFailure } from './outlier-detection.ts';
import type { AttemptFailure } from './retry-policy.ts';

export interface PolicyRequest {
  method: string;
  path: string;
  headers: HeaderMap;
  /**
   * A stream is sent once and never retried; a Buffer (a body an earlier layer holds whole) is
   * sent again on every attempt; null: no body.
   */
  body: Readable | Buffer | null;
  /** When the request arrived, on the deps' `now` clock (the request timeout counts from it). */
  startedAt: number;
  /** What ConsistentHash reads. */
  hash: HashRequest;
  /** Identifies the client connection, for a generated hash cookie (Envoy hashes its addresses). */
  connectionKey?: () => string;
  /** Last changes to the response's status-line headers (route and backendRef filters, CORS). */
  responseHeaders?: (status: number, headers: HeaderMap) => void;
  /** The endpoint an attempt goes to ("http://address:port"), for the access log. */
  onUpstream?: (origin: string) => void;
  /** A response flag for the access log that is not an error: DI (delayed), URX (retries spent). */
  onFlag?: (flag: string) => void;
  /** How errors name the request's target, e.g. "httproute/ns/r/rule/0 → ns/svc:80". */
  label: string;
}

export interface PolicyForwardDeps {
  random: () => number;
  /** Monotonic ms. */
  now: () => number;
  /** For waits the request is blocked on: fault delay, back-off, a queued admission. */
  timers: Timers;
  /** The shared pool of an endpoint (a policy without connection settings uses these). */
  dispatcher(origin: string): Dispatcher;
}

function minPositive(a: number, b: number): number {
  if (a > 0 && b > 0) return Math.min(a, b);
  return a > 0 ? a : b > 0 ? b : 0;
}

export async function forwardWithPolicy(
  policy: BackendPolicy,
  req: PolicyRequest,
  res: ClientResponse,
  deps: PolicyForwardDeps,
): Promise<void> {
  const deadline = policy.requestTimeoutMs > 0 ? req.startedAt + policy.requestTimeoutMs : 0;
  const retry = req.body === null || Buffer.isBuffer(req.body) ? policy.retry : undefined;
  const perAttempt = minPositive(policy.attemptTimeoutMs, retry?.perTryTimeoutMs ?? 0);
  const hashed: RequestHash | undefined = policy.hashPolicy
    ? hashRequest(policy.hashPolicy, req.hash, req.connectionKey)
    : undefined;
  const breaker = policy.breaker;
  let tried: number[] | undefined;
  let clientGone = false;
  const waiting: AdmissionWait = {};
  // Not after a response this function wrote: it drops the listener first. A response ended
  // by someone else (a ClientTrafficPolicy timeout at the gateway) ends the attempts too.
  const onClose = () => {
    clientGone = true;
    waiting.stop?.();
  };
  res.once('close', onClose);

  try {
    if (policy.fault && (await injectFault(policy, req, res, deps))) return;
    for (let attempt = 1; ; attempt++) {
      const isRetry = attempt > 1;
      try {
        if (clientGone)
          throw new ProxyError('MG_ERR_UPSTREAM_RESET', 'client closed the connection');
        await admit(policy, req.label, deadline, deps, waiting);
      } catch (err) {
        if (isRetry) breaker.retryDone();
        throw err;
      }
      let index = -1;
      let retrying = false;
      try {
        const now = deps.now();
        const remaining = deadline > 0 ? deadline - now : 0;
        if (deadline > 0 && remaining <= 0)
          throw new ProxyError(
            'MG_ERR_UPSTREAM_TIMEOUT',
            `${req.label}: request timeout of ${policy.requestTimeoutMs} ms reached`,
          );
        index = policy.choose(deps.random, now, hashed?.hash, tried);
        if (index < 0)
          throw new ProxyError('MG_ERR_NO_HEALTHY_UPSTREAM', `${req.label}: no healthy endpoint`);
        const i = index;
        const endpoint = policy.endpoints[i] as Endpoint;
        req.onUpstream?.(endpoint.origin);
        const timeoutMs = minPositive(perAttempt, remaining);
        const attemptBound = perAttempt > 0 && (deadline === 0 || perAttempt < remaining);
        policy.lb.onRequestStart(i);
        try {
          await forward(
            {
              dispatcher: policy.pools?.[i] ?? deps.dispatcher(endpoint.origin),
              origin: endpoint.origin,
              method: req.method,
              path: req.path,
              headers: req.headers,
              body: Buffer.isBuffer(req.body) ? Readable.from(req.body) : req.body,
              timeoutMs,
            },
            res,
            {
              retryOn: (status) => {
                policy.onResponse(i, status, deps.now());
                if (!retry || !retry.retriable(status)) return false;
                if (!retry.hasRetriesLeft(attempt)) {
                  req.onFlag?.('URX');
                  return false;
                }
                if (deadline > 0 && deps.now() >= deadline) return false;
                if (!breaker.tryStartRetry()) return false;
                retrying = true;
                return true;
              },
              // Only when there is something to change: without a hook the upstream's headers
              // go to the client as they came (forward.ts).
              ...(hashed?.setCookie || req.responseHeaders
                ? {
                    responseHeaders: (status: number, headers: HeaderMap) => {
                      if (hashed?.setCookie) appendHeader(headers, 'set-cookie', hashed.setCookie);
                      req.responseHeaders?.(status, headers);
                    },
                  }
                : {}),
            },
          );
          return;
        } catch (err) {
          if (retrying || clientGone || !(err instanceof ProxyError)) throw err;
          const local = localOriginFailure(err, res.headersSent);
          if (!local) throw err;
          policy.onLocalOriginFailure(i, local, deps.now());
          // Only an attempt's own timeout is retried; the request timeout ends the request.
          const failure: AttemptFailure | undefined =
            local !== 'timeout' ? local : attemptBound ? 'per-try-timeout' : undefined;
          if (!failure || !retry || !retry.retriable(failure)) throw err;
          if (!retry.hasRetriesLeft(attempt)) {
            req.onFlag?.('URX');
            throw err;
          }
          if (deadline > 0 && deps.now() >= deadline) throw err;
          if (!breaker.tryStartRetry()) throw err;
          retrying = true;
        } finally {
          policy.lb.onRequestEnd(i);
        }
      } catch (err) {
        if (!(retrying && (err instanceof RetryableResponse || err instanceof ProxyError)))
          throw err;
      } finally {
        breaker.release();
        if (isRetry) breaker.retryDone();
      }
      // A retry was decided (and counted by the breaker until that attempt ends): back off, and
      // prefer another endpoint (Envoy Gateway's previous_hosts retry predicate).
      (tried ??= []).push(index);
      const wait = (retry as NonNullable<typeof retry>).backoffMs(attempt, deps.random);
      const left = deadline > 0 ? Math.max(0, deadline - deps.now()) : wait;
      if (wait > 0) await sleep(deps.timers, Math.min(wait, left));
    }
  } finally {
    res.removeListener('close', onClose);
  }
}

/** Lets a request waiting for admission give up (the client went away). */
export interface AdmissionWait {
  stop?: () => void;
}

/**
 * Admission by the circuit breaker, waiting in its queue when it says so: until the request's
 * `deadline` (0: none) or until `waiting.stop()` (the client left). Admitted: counted in flight
 * until `breaker.release()`.
 */
export async function admit(
  policy: BackendPolicy,
  label: string,
  deadline: number,
  deps: PolicyForwardDeps,
  waiting: AdmissionWait,
): Promise<void> {
  const breaker = policy.breaker;
  const admission = breaker.tryAcquire();
  if (admission === 'admitted') return;
  if (admission === 'overflow')
    throw new ProxyError(
      'MG_ERR_UPSTREAM_OVERFLOW',
      `${label}: circuit breaker overflow (${breaker.active} requests in flight, ${breaker.pending} waiting)`,
    );
  const slot = breaker.waitForSlot();
  let timer: TimerHandle | undefined;
  const gaveUp = await new Promise<'timeout' | 'gone' | undefined>((resolve) => {
    slot.admitted.then(
      () => resolve(undefined),
      () => undefined,
    );
    waiting.stop = () => resolve('gone');
    if (deadline > 0)
      timer = deps.timers.setTimeout(() => resolve('timeout'), Math.max(0, deadline - deps.now()));
  });
  waiting.stop = undefined;
  if (timer !== undefined) deps.timers.clearTimeout(timer);
  if (!gaveUp || !slot.cancel()) return;
  if (gaveUp === 'gone')
    throw new ProxyError('MG_ERR_UPSTREAM_RESET', 'client closed the connection');
  throw new ProxyError(
    'MG_ERR_UPSTREAM_TIMEOUT',
    `${label}: request timeout of ${policy.requestTimeoutMs} ms reached while waiting for a connection`,
  );
}

/** Fault injection: the delay, then the abort; true when the abort answered the request. */
export async function injectFault(
  policy: BackendPolicy,
  req: PolicyRequest,
  res: ClientResponse,
  deps: PolicyForwardDeps,
): Promise<boolean> {
  const fault = policy.fault;
  if (!fault) return false;
  const delay = fault.delayMs(deps.random);
  if (delay > 0) {
    req.onFlag?.('DI');
    await sleep(deps.timers, delay);
  }
  const abort = fault.abort(deps.random);
  if (!abort) return false;
  answerFault(abort, req, res);
  return true;
}

/** What an attempt's error says about the upstream; undefined: not the upstream's doing. */
export function localOriginFailure(
  err: ProxyError,
  headersSent: boolean,
): LocalOriginFailure | undefined {
  if (headersSent) return undefined;
  switch (err.code) {
    case 'MG_ERR_UPSTREAM_CONNECT':
      return 'connect-failure';
    case 'MG_ERR_UPSTREAM_RESET':
      return 'reset';
    case 'MG_ERR_UPSTREAM_TIMEOUT':
      return 'timeout';
    default:
      return undefined;
  }
}

function answerFault(abort: FaultAbort, req: PolicyRequest, res: ClientResponse): void {
  req.onFlag?.('FI');
  if ('grpcStatus' in abort) {
    // gRPC clients read a trailers-only answer: HTTP 200 with grpc-status in the headers.
    res.writeHead(200, {
      'content-type': 'application/grpc',
      'grpc-status': String(abort.grpcStatus),
      'grpc-message': 'fault filter abort',
      [RESPONSE_FLAGS_HEADER]: 'FI',
    });
    res.end();
    return;
  }
  throw new ProxyError('MG_ERR_FAULT_ABORT', `${req.label}: fault filter abort`, {
    status: abort.httpStatus,
  });
}

/** Adds a value to a response header, keeping those already there (Set-Cookie). */
export function appendHeader(headers: HeaderMap, name: string, value: string): void {
  const prev = headers[name];
  headers[name] =
    prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
}
