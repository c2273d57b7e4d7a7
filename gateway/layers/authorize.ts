import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';

/** SecurityPolicy authorization: 403 (RBAC) when the first matching rule, or the default, denies. */
export function authorize(r: EdgeRequest): void {
  const authz = r.rule?.security?.authorize;
  if (!authz) return;
  const decision = authz({
    method: r.method,
    clientIP: r.clientIP,
    header: (n) => r.header(n),
    jwt: r.principal.jwt,
  });
  if (!decision.allow)
    throw new ProxyError('MG_ERR_FORBIDDEN', `denied by ${r.rule?.security?.id} ${decision.by}`, {
      publicDetail: 'Access to this resource is denied.',
    });
}
