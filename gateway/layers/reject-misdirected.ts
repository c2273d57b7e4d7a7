import type { TLSSocket } from 'node:tls';
import { ProxyError } from '../../shared/proxy/errors.ts';
import { normalizeHost } from '../../shared/routing/hostname.ts';
import type { EdgeRequest } from '../request-context.ts';

/**
 * On a TLS port, a connection set up (by SNI) for one listener must not carry requests for a
 * host another listener serves: 421, as the Gateway API's misdirected-request test expects. The
 * Host's listener is the one its hostname selects, whether or not a route matches it (SNI
 * "second-example.org", Host "unknown-example.org" is 421, not 404), so this runs before routing.
 */
export function rejectMisdirected(r: EdgeRequest): void {
  if (!r.port.tls) return;
  const servername = (r.req.socket as TLSSocket).servername;
  if (!servername) return;
  const sniListener = r.view.listenerForServername(r.port.port, servername);
  if (sniListener === undefined) return;
  const host = normalizeHost(r.client.host ?? '');
  const hostListener = r.view.listenerForServername(r.port.port, host);
  if (hostListener !== sniListener)
    throw new ProxyError(
      'MG_ERR_MISDIRECTED',
      `the connection was opened for ${servername} (listener ${sniListener}); ${host} is served by ${hostListener === undefined ? 'no listener of this port' : `listener ${hostListener}`}`,
    );
}
