// The RateLimit-Policy and RateLimit response fields of draft-ietf-httpapi-ratelimit-headers-11:
// Structured Field Lists (RFC 9651) of one Item each, the policy name as an sf-string with its
// parameters: q (quota) and w (window, seconds) on the policy; r (available quota) and t
// (effective window, seconds) on the service limit.
//   RateLimit-Policy: "default/api-quota/local/0";q=100;w=60
//   RateLimit: "default/api-quota/local/0";r=42;t=17
// DraftVersion03 (a rule's xRateLimitHeaders, as Envoy emits them): X-RateLimit-Limit,
// X-RateLimit-Remaining and X-RateLimit-Reset of draft-polli-ratelimit-headers-03.

/** An sf-string (RFC 9651 section 3.3.3): printable ASCII, with `"` and `\` escaped. */
export function sfString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.charCodeAt(0);
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (code >= 0x20 && code <= 0x7e) out += ch;
    else out += '?';
  }
  return `${out}"`;
}

/** The RateLimit-Policy field value of one policy: fixed for a rule, built once. */
export function policyField(name: string, quota: number, windowSeconds: number): string {
  return `${sfString(name)};q=${quota};w=${windowSeconds}`;
}

/** The RateLimit field value: `quotedName` is sfString(name), built once per rule. */
export function limitField(quotedName: string, remaining: number, resetSeconds: number): string {
  return `${quotedName};r=${Math.max(0, remaining)};t=${resetSeconds}`;
}

/** draft-polli-ratelimit-headers-03, for rules with xRateLimitHeaders: DraftVersion03. */
export function draft03Fields(
  quota: number,
  windowSeconds: number,
  remaining: number,
  resetSeconds: number,
): Record<string, string> {
  return {
    'x-ratelimit-limit': `${quota}, ${quota};w=${windowSeconds}`,
    'x-ratelimit-remaining': String(Math.max(0, remaining)),
    'x-ratelimit-reset': String(resetSeconds),
  };
}
