// CORS as the Gateway API's HTTPCORSFilter defines it (Envoy Gateway's SecurityPolicy cors maps
// onto the same shape), compiled once: origins become matchers, header values are prejoined.

export interface CorsConfig {
  allowOrigins: readonly string[];
  allowCredentials: boolean;
  allowMethods: readonly string[];
  allowHeaders: readonly string[];
  exposeHeaders: readonly string[];
  maxAge: number;
}

export interface CorsPolicy {
  /** Whether a request Origin is allowed. */
  allows(origin: string): boolean;
  /**
   * Headers for a preflight (OPTIONS with Access-Control-Request-Method). An origin that is not
   * allowed gets a plain 200 without CORS headers, so the browser refuses it (the spec's choice).
   */
  preflightHeaders(
    origin: string,
    requestMethod: string,
    requestHeaders: string | undefined,
  ): Record<string, string>;
  /** Headers added to the response of an actual cross-origin request. */
  responseHeaders(origin: string): Record<string, string>;
}

/**
 * An origin pattern: "*" for any; otherwise scheme://host[:port] where a "*" in the host is a
 * greedy match of labels to its left. Default ports are filled in so "https://a" equals "https://a:443".
 */
function originMatcher(pattern: string): (origin: string) => boolean {
  if (pattern === '*') return () => true;
  const escaped = withDefaultPort(pattern.toLowerCase())
    .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.+');
  const re = new RegExp(`^${escaped}$`);
  return (origin) => re.test(withDefaultPort(origin.toLowerCase()));
}

function withDefaultPort(origin: string): string {
  const m = /^(https?):\/\/([^/]+?)(:\d+)?$/.exec(origin);
  if (!m) return origin;
  return `${m[1]}://${m[2]}${m[3] ?? (m[1] === 'https' ? ':443' : ':80')}`;
}

export function compileCors(c: CorsConfig): CorsPolicy {
  const matchers = c.allowOrigins.map(originMatcher);
  const anyMethod = c.allowMethods.includes('*');
  const anyHeader = c.allowHeaders.includes('*');
  const methods = c.allowMethods.join(', ');
  const headers = c.allowHeaders.join(', ');
  const expose =
    c.exposeHeaders.includes('*') && c.allowCredentials ? '' : c.exposeHeaders.join(', ');
  const maxAge = String(c.maxAge);
  const allows = (origin: string) => matchers.some((m) => m(origin));
  return {
    allows,
    preflightHeaders(origin, requestMethod, requestHeaders) {
      if (!allows(origin)) return {};
      // The origin is echoed even for "*" (the spec allows either; the conformance test of a
      // simple request on a "*" route without credentials accepts only the echo, as Envoy does).
      const out: Record<string, string> = {
        'access-control-allow-origin': origin,
        'access-control-max-age': maxAge,
        vary: 'Origin',
      };
      if (c.allowCredentials) out['access-control-allow-credentials'] = 'true';
      // The conformance test HTTPRouteCORS expects the expose list on the preflight answer too.
      if (expose) out['access-control-expose-headers'] = expose;
      // With credentials, "*" may not be sent back: echo what the browser asked for instead.
      if (anyMethod) out['access-control-allow-methods'] = c.allowCredentials ? requestMethod : '*';
      else if (methods) out['access-control-allow-methods'] = methods;
      if (anyHeader) {
        if (c.allowCredentials) {
          if (requestHeaders) out['access-control-allow-headers'] = requestHeaders;
        } else out['access-control-allow-headers'] = '*';
      } else if (headers) out['access-control-allow-headers'] = headers;
      return out;
    },
    responseHeaders(origin) {
      if (!allows(origin)) return {};
      const out: Record<string, string> = { 'access-control-allow-origin': origin, vary: 'Origin' };
      if (c.allowCredentials) out['access-control-allow-credentials'] = 'true';
      if (expose) out['access-control-expose-headers'] = expose;
      return out;
    },
  };
}

/** Adds CORS headers to a response's headers; Vary is appended to, never replaced. */
export function addCorsHeaders(
  headers: Record<string, string | string[]>,
  cors: Readonly<Record<string, string>>,
): void {
  for (const name in cors) {
    const value = cors[name] as string;
    const prev = headers[name];
    headers[name] =
      name === 'vary' && prev !== undefined
        ? `${Array.isArray(prev) ? prev.join(', ') : prev}, ${value}`
        : value;
  }
}
