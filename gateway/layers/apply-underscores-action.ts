import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';
import { closeAfter } from './enforce-request-limits.ts';

/**
 * ClientTrafficPolicy headers.withUnderscoresAction, before any other layer reads a header:
 * RejectRequest answers 400 (and closes an HTTP/1 connection, as Envoy's codec does); DropHeader
 * removes such headers, so that neither routing, authentication nor the upstream sees them.
 * Backends that map "-" and "_" to the same variable (CGI, WSGI, PHP) would otherwise take
 * X_User for the X-User a layer set or checked.
 */
export function applyUnderscoresAction(r: EdgeRequest): void {
  const action = r.port.clientTraffic.underscores;
  if (action === 'Allow') return;
  if (action === 'DropHeader') {
    const headers = r.client.headers;
    for (const name in headers) if (name.includes('_')) delete headers[name];
    return;
  }
  // The raw list also holds the fields readClientHeaders leaves out (hop-by-hop ones).
  const raw = r.req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.includes('_'))
      throw new ProxyError(
        'MG_ERR_HEADER_UNDERSCORE',
        `the header ${name} has an underscore in its name, which this listener refuses`,
        closeAfter(r),
      );
  }
}
