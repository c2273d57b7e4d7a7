import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';

export interface RequestLimits {
  /** Longest request target accepted (414 beyond). */
  maxUrlLength: number;
  /** Most header fields accepted (431 beyond); Node's parser enforces the byte size. */
  maxHeaders: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxUrlLength: 8192, maxHeaders: 100 };

/** Refuses requests over the URL and header-count limits, and requests without a usable Host. */
export function enforceRequestLimits(limits: RequestLimits) {
  return function enforceLimits(r: EdgeRequest): void {
    const url = r.req.url ?? '';
    if (url.length > limits.maxUrlLength)
      throw new ProxyError(
        'MG_ERR_URI_TOO_LONG',
        `the request target has ${url.length} characters; the limit is ${limits.maxUrlLength}`,
      );
    const count = r.req.rawHeaders.length / 2;
    if (count > limits.maxHeaders)
      throw new ProxyError(
        'MG_ERR_TOO_MANY_HEADERS',
        `the request has ${count} header fields; the limit is ${limits.maxHeaders}`,
      );
    if (!r.client.host) throw new ProxyError('MG_ERR_BAD_HOST', 'the request has no Host header');
  };
}
