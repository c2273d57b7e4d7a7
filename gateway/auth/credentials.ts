// Where a credential sits in a request: a header (with an optional prefix such as "Bearer "),
// a cookie or a query parameter.

import type { EdgeRequest } from '../request-context.ts';

export type CredentialSource =
  | { kind: 'header'; name: string; prefix: string }
  | { kind: 'cookie'; name: string }
  | { kind: 'param'; name: string };

export interface FoundCredential {
  value: string;
  source: CredentialSource;
}

export function findCredential(
  r: EdgeRequest,
  sources: readonly CredentialSource[],
): FoundCredential | undefined {
  for (const source of sources) {
    let value: string | undefined;
    switch (source.kind) {
      case 'header': {
        const h = r.header(source.name);
        if (h === undefined) break;
        if (!source.prefix) value = h.trim();
        else if (
          h.length > source.prefix.length &&
          h.slice(0, source.prefix.length).toLowerCase() === source.prefix.toLowerCase()
        )
          value = h.slice(source.prefix.length).trim();
        break;
      }
      case 'cookie':
        value = cookie(r.header('cookie'), source.name);
        break;
      case 'param':
        value = r.query ? (new URLSearchParams(r.query).get(source.name) ?? undefined) : undefined;
        break;
    }
    if (value) return { value, source };
  }
  return undefined;
}

export function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** Removes a credential before the request goes upstream (apiKeyAuth `sanitize`). */
export function removeCredential(r: EdgeRequest, found: FoundCredential): void {
  const s = found.source;
  if (s.kind === 'header') delete r.client.headers[s.name.toLowerCase()];
  else if (s.kind === 'param') {
    const params = new URLSearchParams(r.query);
    params.delete(s.name);
    r.query = params.toString();
  } else {
    const cookies = r.header('cookie');
    if (!cookies) return;
    const kept = cookies.split(';').filter((p) => p.split('=')[0]?.trim() !== s.name);
    if (kept.length > 0) r.client.headers.cookie = kept.join(';').trim();
    else delete r.client.headers.cookie;
  }
}
