import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';

export interface RequestLimits {
  /** Longest request target accepted (414 beyond). */
  maxUrlLength: number;
  /** Most header fields accepted (431 beyond); Node's parser enforces the byte size. */
  maxHeaders: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxUrlLength: 8192, maxHeaders: 100 };

/**
 * Refuses requests over the URL and header-count limits, and requests without a usable Host.
 * An HTTP/1 connection that sent such a request is closed after the answer, as Node's parser does
 * for a header block over the byte limit: the client is not one to keep talking to.
 */
export function enforceRequestLimits(limits: RequestLimits) {
  return function enforceLimits(r: EdgeRequest): void {
    const url = r.req.url ?? '';
    if (url.length > limits.maxUrlLength)
      throw new ProxyError(
        'MG_ERR_URI_TOO_LONG',
        `the request target has ${url.length} characters; the limit is ${limits.maxUrlLength}`,
        closeAfter(r),
      );
    const count = r.req.rawHeaders.length / 2;
    if (count > limits.maxHeaders)
      throw new ProxyError(
        'MG_ERR_TOO_MANY_HEADERS',
        `the request has ${count} header fields; the limit is ${limits.maxHeaders}`,
        closeAfter(r),
      );
    if (!r.client.host)
      throw new ProxyError('MG_ERR_BAD_HOST', 'the request has no Host header', closeAfter(r));
  };
}

/** `Connection: close` on HTTP/1 (HTTP/2 has no such header: the stream ends, the session stays). */
export function closeAfter(r: EdgeRequest): { headers?: Record<string, string> } {
  return 'shouldKeepAlive' in r.res ? { headers: { connection: 'close' } } : {};
}
