// The one place a proxy error becomes a response: RFC 9457 problem+json with the error code, the
// request id and the response flag, or a reset when the response had already started.

import { PROXY_ERRORS, ProxyError, type ProxyErrorCode } from './errors.ts';
import type { ClientResponse } from './forward.ts';

export const RESPONSE_FLAGS_HEADER = 'meshgate-response-flags';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: ProxyErrorCode;
  request_id: string;
  response_flags: string;
}

export function problemBody(err: ProxyError, requestId: string, instance?: string): ProblemBody {
  return {
    type: `https://meshgate.io/errors/${err.code}`,
    title: err.definition.title,
    status: err.definition.status,
    detail: err.publicDetail ?? err.detail,
    ...(instance ? { instance } : {}),
    code: err.code,
    request_id: requestId,
    response_flags: err.definition.flag,
  };
}

/** Answers with the problem, or resets the response if its head has already gone out. */
export function sendProblem(
  res: ClientResponse,
  err: ProxyError,
  requestId: string,
  options: { instance?: string; headers?: Record<string, string> } = {},
): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const body = JSON.stringify(problemBody(err, requestId, options.instance));
  res.writeHead(err.definition.status, {
    'content-type': 'application/problem+json',
    'content-length': String(Buffer.byteLength(body)),
    'x-request-id': requestId,
    [RESPONSE_FLAGS_HEADER]: err.definition.flag,
    ...err.headers,
    ...options.headers,
  });
  res.end(body);
}

export function toProxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  return new ProxyError('MG_ERR_INTERNAL', err instanceof Error ? err.message : String(err), {
    cause: err,
  });
}

export function isProxyErrorCode(code: string): code is ProxyErrorCode {
  return Object.prototype.hasOwnProperty.call(PROXY_ERRORS, code);
}
