import { ProxyError } from '../../shared/proxy/errors.ts';
import type { EdgeRequest } from '../request-context.ts';

/**
 * Every authenticator the rule's SecurityPolicy configures must pass (JWT may be `optional`:
 * a missing token passes, an invalid one never does). 401 with RFC 6750's WWW-Authenticate; the
 * reason goes to the log only.
 */
export async function authenticate(r: EdgeRequest): Promise<void> {
  const policy = r.rule?.security;
  if (!policy) return;
  const realm = `realm="${policy.realm}"`;
  if (policy.apiKey) {
    const outcome = policy.apiKey.authenticate(r);
    if (outcome.kind !== 'ok')
      throw new ProxyError(
        'MG_ERR_UNAUTHENTICATED',
        outcome.kind === 'missing' ? 'no API key in the request' : outcome.reason,
        {
          headers: { 'www-authenticate': `APIKey ${realm}` },
          publicDetail: 'A valid API key is required.',
        },
      );
    r.principal.apiKeyClient = outcome.clientId;
  }
  if (policy.jwt) {
    const outcome = await policy.jwt.authenticate(r);
    if (outcome.kind === 'ok') r.principal.jwt = outcome.principal;
    else if (outcome.kind === 'missing') {
      if (!policy.jwt.optional)
        throw new ProxyError('MG_ERR_UNAUTHENTICATED', 'no bearer token in the request', {
          headers: { 'www-authenticate': `Bearer ${realm}` },
          publicDetail: 'A bearer token is required.',
        });
    } else
      throw new ProxyError('MG_ERR_UNAUTHENTICATED', `invalid token: ${outcome.reason}`, {
        headers: { 'www-authenticate': `Bearer ${realm}, error="invalid_token"` },
        publicDetail: 'The bearer token is not valid.',
      });
  }
}
