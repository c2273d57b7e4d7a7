import { ProxyError } from '../../../shared/proxy/errors.ts';
import { parseHostHeader } from '../../../shared/routing/hostname.ts';
import type { OutboundRequest } from '../request-context.ts';

const ABSOLUTE_FORM = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)(.*)$/;

/**
 * Which Service port the app is calling. As an HTTP proxy (HTTP_PROXY) the app sends the
 * absolute form, `GET http://reviews.bookinfo:9080/x`, whose authority wins over Host (RFC 9112
 * §3.2.2); otherwise the Host header names it. Names are `svc`, `svc.ns`, `svc.ns.svc` and
 * `svc.ns.svc.cluster.local`, short ones in the sidecar's namespace; without a port, the
 * Service's only port. An unknown name is a 404 (NR), as Envoy answers a host no route takes.
 */
export function resolveDestination(r: OutboundRequest): void {
  const url = r.req.url ?? '/';
  let authority = r.client.host;
  let target = url;
  if (!url.startsWith('/')) {
    const m = ABSOLUTE_FORM.exec(url);
    if (!m) throw new ProxyError('MG_ERR_BAD_PATH', `request target ${JSON.stringify(url)}`);
    if ((m[1] as string).toLowerCase() !== 'http')
      throw new ProxyError(
        'MG_ERR_BAD_HOST',
        `${m[1]}:// through the sidecar: send plain http:// and the sidecar adds mTLS`,
      );
    authority = m[2] as string;
    const rest = m[3] as string;
    target = rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}`;
    r.client.host = authority;
  }
  const host = authority === undefined ? undefined : parseHostHeader(authority);
  if (!host || host.hostname === '')
    throw new ProxyError('MG_ERR_BAD_HOST', `no usable host in ${JSON.stringify(authority ?? '')}`);
  const found = r.view.resolve(host.hostname, host.port);
  if (!found)
    throw new ProxyError(
      'MG_ERR_NO_ROUTE',
      `no Service ${host.hostname} in the mesh view of this sidecar`,
    );
  if ('unknownPort' in found) {
    const s = found.unknownPort;
    throw new ProxyError(
      'MG_ERR_NO_ROUTE',
      host.port === undefined
        ? `Service ${s.namespace}/${s.name} has several ports: name one (${host.hostname}:PORT)`
        : `Service ${s.namespace}/${s.name} has no port ${host.port}`,
    );
  }
  r.destination = found;
  r.target = target;
}
