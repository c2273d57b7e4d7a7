// The one registry of errors that reach a client. Each has the HTTP status it answers with and an
// Envoy-style response flag, so a 404 or a 503 says why in the body, the header and the log.
// docs/errors.md lists them; test/proxy/errors.test.ts keeps the two in sync.

export interface ProxyErrorDefinition {
  status: number;
  /** Envoy's response flag where one fits (NR, UH, UT, UF, …); meshgate's own otherwise. */
  flag: string;
  title: string;
}

export const PROXY_ERRORS = {
  MG_ERR_NO_ROUTE: { status: 404, flag: 'NR', title: 'No route matches the request' },
  MG_ERR_NO_HEALTHY_UPSTREAM: { status: 503, flag: 'UH', title: 'No healthy upstream endpoint' },
  MG_ERR_UPSTREAM_CONNECT: { status: 503, flag: 'UF', title: 'Could not connect to the upstream' },
  MG_ERR_UPSTREAM_RESET: { status: 502, flag: 'UR', title: 'The upstream reset the connection' },
  MG_ERR_UPSTREAM_TIMEOUT: {
    status: 504,
    flag: 'UT',
    title: 'The upstream did not answer in time',
  },
  MG_ERR_UPSTREAM_OVERFLOW: {
    status: 503,
    flag: 'UO',
    title: 'The upstream circuit breaker is open (too many requests in flight)',
  },
  MG_ERR_INVALID_BACKEND: {
    status: 500,
    flag: 'NC',
    title: 'The route points at a backend that cannot be used',
  },
  MG_ERR_NO_BACKEND: { status: 500, flag: 'NC', title: 'The route rule has no backend' },
  MG_ERR_INVALID_CONFIG: {
    status: 500,
    flag: 'IC',
    title: 'The configuration for this route is invalid',
  },
  MG_ERR_BAD_PATH: { status: 400, flag: 'DPE', title: 'The request path is not valid' },
  MG_ERR_BAD_HOST: { status: 400, flag: 'DPE', title: 'The Host header is missing or not valid' },
  MG_ERR_URI_TOO_LONG: { status: 414, flag: 'DPE', title: 'The request URL is too long' },
  MG_ERR_TOO_MANY_HEADERS: { status: 431, flag: 'DPE', title: 'The request has too many headers' },
  MG_ERR_MISDIRECTED: {
    status: 421,
    flag: 'DPE',
    title: 'The request was sent on a connection for another host',
  },
  MG_ERR_HEADER_UNDERSCORE: {
    status: 400,
    flag: 'DPE',
    title: 'A request header name contains an underscore',
  },
  MG_ERR_REQUEST_TIMEOUT: {
    status: 408,
    flag: 'DPE',
    title: 'The request was not received in time',
  },
  MG_ERR_STREAM_IDLE_TIMEOUT: {
    status: 408,
    flag: 'SI',
    title: 'The request stream was idle for too long',
  },
  MG_ERR_UNAUTHENTICATED: { status: 401, flag: 'UAEX', title: 'Authentication is required' },
  MG_ERR_FORBIDDEN: { status: 403, flag: 'RBAC', title: 'Access denied' },
  MG_ERR_RATE_LIMITED: { status: 429, flag: 'RL', title: 'Too many requests' },
  MG_ERR_RATE_LIMIT_UNAVAILABLE: {
    status: 500,
    flag: 'RLSE',
    title: 'The rate limit service is unavailable',
  },
  MG_ERR_CORS_REJECTED: {
    status: 403,
    flag: 'CORS',
    title: 'The cross-origin request is not allowed',
  },
  MG_ERR_BODY_TOO_LARGE: { status: 413, flag: 'DPE', title: 'The request body is too large' },
  MG_ERR_INVALID_REQUEST: {
    status: 400,
    flag: 'VAL',
    title: 'The request does not match the API definition',
  },
  MG_ERR_NO_OPERATION: {
    status: 404,
    flag: 'VAL',
    title: 'The API definition has no operation at this path',
  },
  MG_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    flag: 'VAL',
    title: 'The method is not allowed on this path',
  },
  MG_ERR_API_UNAVAILABLE: {
    status: 503,
    flag: 'VAL',
    title: 'The API definition for this route is not available yet',
  },
  MG_ERR_FAULT_ABORT: {
    status: 503,
    flag: 'FI',
    title: 'The request was aborted by fault injection',
  },
  MG_ERR_INTERNAL: { status: 500, flag: 'IE', title: 'Internal error in the gateway' },
} as const satisfies Record<string, ProxyErrorDefinition>;

export type ProxyErrorCode = keyof typeof PROXY_ERRORS;

/** An error raised where it happens and turned into a response at the edge of the stack. */
export class ProxyError extends Error {
  readonly definition: ProxyErrorDefinition;
  /** Extra response headers (WWW-Authenticate, Retry-After, …). */
  readonly headers: Record<string, string> | undefined;
  /** What the client is told, when it must be less than `detail` (RFC 6750: no token failure reasons). */
  readonly publicDetail: string | undefined;
  constructor(
    readonly code: ProxyErrorCode,
    readonly detail: string,
    options?: {
      cause?: unknown;
      headers?: Record<string, string>;
      publicDetail?: string;
      /** Answer with this status instead of the code's (fault injection aborts with a configured one). */
      status?: number;
    },
  ) {
    super(
      `${code}: ${detail}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    const definition: ProxyErrorDefinition = PROXY_ERRORS[code];
    this.definition =
      options?.status === undefined ? definition : { ...definition, status: options.status };
    this.headers = options?.headers;
    this.publicDetail = options?.publicDetail;
  }
}
