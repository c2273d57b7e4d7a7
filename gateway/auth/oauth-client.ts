// The gateway as an OAuth 2.0 client of an authorization server: form POSTs to its token and
// introspection endpoints with client_secret_basic, and reading its JSON answers.

import { request, type Dispatcher } from 'undici';

/** The answer of an authorization server endpoint: its status and its JSON body (if it had one). */
export interface EndpointAnswer {
  status: number;
  body: Record<string, unknown> | undefined;
}

/** Bodies larger than this are not read: a token or introspection response is a few KB. */
const MAX_ANSWER_BYTES = 256 * 1024;

/**
 * RFC 6749 section 2.3.1: client id and secret are form-encoded before they are joined for HTTP
 * Basic, so a secret with ":" or non-ASCII characters survives.
 */
export function clientSecretBasic(clientId: string, clientSecret: string): string {
  const enc = (s: string) => new URLSearchParams({ s }).toString().slice(2);
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
}

/**
 * POSTs `application/x-www-form-urlencoded` parameters. Throws on a transport failure or a
 * timeout (the endpoint is unavailable); any HTTP status is returned for the caller to judge.
 */
export async function postForm(
  url: string,
  params: Record<string, string>,
  options: { authorization: string; timeoutMs: number; dispatcher?: Dispatcher },
): Promise<EndpointAnswer> {
  const res = await request(url, {
    method: 'POST',
    headers: {
      authorization: options.authorization,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: new URLSearchParams(params).toString(),
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    signal: AbortSignal.timeout(options.timeoutMs),
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
  });
  const length = Number(res.headers['content-length'] ?? 0);
  if (length > MAX_ANSWER_BYTES) {
    res.body.destroy();
    return { status: res.statusCode, body: undefined };
  }
  const text = await res.body.text();
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = text.length <= MAX_ANSWER_BYTES ? JSON.parse(text) : undefined;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      body = parsed as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, body };
}

/** GETs a JSON document (OIDC discovery). Throws unless the answer is 200 with a JSON object. */
export async function getJson(
  url: string,
  timeoutMs: number,
  dispatcher?: Dispatcher,
): Promise<Record<string, unknown>> {
  const res = await request(url, {
    headers: { accept: 'application/json' },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal: AbortSignal.timeout(timeoutMs),
    ...(dispatcher ? { dispatcher } : {}),
  });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`HTTP ${res.statusCode}`);
  }
  const doc: unknown = await res.body.json();
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new Error('the document is not a JSON object');
  return doc as Record<string, unknown>;
}
