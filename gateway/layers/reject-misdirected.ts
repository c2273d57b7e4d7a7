import type { TLSSocket } from 'node:tls';
import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';

/**
 * On a TLS port, a connection set up (by SNI) for one listener must not carry requests for a
 * host another listener serves: 421, as the Gateway API's misdirected-request test expects.
 */
export function rejectMisdirected(r: EdgeRequest): void {
  if (!r.port.tls || !r.rule) return;
  const servername = (r.req.socket as TLSSocket).servername;
  if (!servername) return;
  const sniListener = r.view.listenerForServername(r.port.port, servername);
  if (sniListener !== undefined && sniListener !== r.rule.listener.name)
    throw new ProxyError(
      'MG_ERR_MISDIRECTED',
      `the connection was opened for ${servername} (listener ${sniListener}); this host is served by listener ${r.rule.listener.name}`,
    );
}
