// The client of the control plane's admin API for join tokens. The contract, shared with the
// control plane: `POST /tokens` on the admin port (15014) with
// `{namespace, serviceAccount, ttlSeconds}`, answered with `{token, expiresAt}` (RFC 3339).

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15014';
export const JOIN_TOKEN_ADMIN_PATH = '/tokens';

export interface JoinTokenApiRequest {
  namespace: string;
  serviceAccount: string;
  ttlSeconds: number;
}

export interface JoinTokenApiResponse {
  token: string;
  expiresAt: string;
}

/** The control plane could not be reached or refused the request; the message says which. */
export class JoinTokenApiError extends Error {
  override name = 'JoinTokenApiError';
}

/** Asks the control plane at `adminUrl` (e.g. http://127.0.0.1:15014) for a join token. */
export async function requestJoinToken(
  adminUrl: string,
  request: JoinTokenApiRequest,
  options: { timeoutMs?: number } = {},
): Promise<JoinTokenApiResponse> {
  let base: URL;
  try {
    base = new URL(adminUrl);
  } catch {
    throw new JoinTokenApiError(
      `--control-plane ${adminUrl}: not a URL (e.g. ${DEFAULT_ADMIN_URL})`,
    );
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new JoinTokenApiError(`--control-plane ${adminUrl}: expected an http:// or https:// URL`);
  // Keep a path prefix the admin API may be mounted under: http://host/admin → /admin/tokens.
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}${JOIN_TOKEN_ADMIN_PATH}`, base);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why =
      (err as Error).name === 'TimeoutError'
        ? 'no answer in time'
        : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new JoinTokenApiError(
      `cannot reach the control plane admin API at ${url.origin} (${why}); is \`meshgate control-plane\` running there? Or write the token store directly with --data DIR`,
      { cause: err },
    );
  }
  const text = await response.text();
  if (!response.ok) {
    let detail = text.trim().slice(0, 500);
    try {
      const body = JSON.parse(text) as { detail?: string; title?: string; message?: string };
      detail = body.detail ?? body.message ?? body.title ?? detail;
    } catch {
      // not JSON: keep the text
    }
    throw new JoinTokenApiError(
      `the control plane refused: ${response.status} ${response.statusText}${detail ? `: ${detail}` : ''}`,
    );
  }
  let body: Partial<JoinTokenApiResponse>;
  try {
    body = JSON.parse(text) as Partial<JoinTokenApiResponse>;
  } catch {
    throw new JoinTokenApiError(`the control plane answered ${url.pathname} with no JSON`);
  }
  if (typeof body.token !== 'string' || typeof body.expiresAt !== 'string')
    throw new JoinTokenApiError(
      `the control plane's answer has no token and expiresAt: ${text.slice(0, 200)}`,
    );
  return { token: body.token, expiresAt: body.expiresAt };
}
