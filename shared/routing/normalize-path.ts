// Request path normalization, before routing and before any policy looks at the path, so that
// the path we match, authorize and forward is one and the same.
//
// Rules (RFC 3986 and Envoy's HttpConnectionManager `normalize_path` + `merge_slashes` +
// `path_with_escaped_slashes_action`, which Envoy Gateway turns on for every listener):
// 1. The request-target must be origin-form: start with "/", no "#" (a fragment is never sent),
//    no control characters (C0, DEL). Envoy accepts "a/b" and prefixes "/"; we reject it.
// 2. The query (after the first "?") is split off and returned untouched.
// 3. Percent-escapes must be "%" HEXDIG HEXDIG, and "%00" is refused (as Envoy does).
//    Escapes of unreserved characters (RFC 3986 §2.3: ALPHA DIGIT - . _ ~) are decoded
//    (§6.2.2.2); every other escape keeps its byte with uppercase hex (§6.2.2.1: `%2f` → `%2F`;
//    Envoy keeps the client's case, we canonicalize so routes and policies see one spelling).
// 4. `%2F` and `%5C` (escaped "/" and "\") follow `escapedSlashesAction`, applied before dot
//    segments are resolved, as in Envoy.
// 5. A literal "\" becomes "/" (Envoy's normalizer, built on Chromium's URL canonicalizer, does
//    the same: "/a/..\\c" → "/c"), so that a backend that treats "\" as a separator cannot be
//    reached around a path rule.
// 6. Other characters that may not appear in a path (space, `"`, `<`, `>`, `^`, `` ` ``, `{`,
//    `|`, `}`, non-ASCII) are percent-encoded as UTF-8.
// 7. Dot segments are resolved per RFC 3986 §5.2.4 (after step 3, so "%2E%2E" is ".."); ".."
//    never climbs above the root ("/../a" → "/a"); a trailing "." or ".." leaves a trailing "/".
// 8. Runs of "/" are merged into one unless `disableMergeSlashes` (Envoy Gateway's default is to
//    merge). This runs after step 7, Envoy's order: "/a//../b" → "/a/b".

/** Envoy Gateway ClientTrafficPolicy `spec.path.escapedSlashesAction`. */
export type EscapedSlashesAction =
  'KeepUnchanged' | 'RejectRequest' | 'UnescapeAndRedirect' | 'UnescapeAndForward';

/**
 * Envoy Gateway's default (api/v1alpha1 PathSettings: "The default is UnescapeAndRedirect"; the
 * gateway-api translator builds every HTTP listener with `EscapedSlashesAction:
 * ir.UnescapeAndRedirect, MergeSlashes: true`).
 */
export const DEFAULT_ESCAPED_SLASHES_ACTION: EscapedSlashesAction = 'UnescapeAndRedirect';

/** Envoy Gateway ClientTrafficPolicy `spec.path` (PathSettings). */
export interface PathNormalization {
  /** Default UnescapeAndRedirect. */
  escapedSlashesAction?: EscapedSlashesAction;
  /** Default false: adjacent slashes are merged. */
  disableMergeSlashes?: boolean;
}

export type NormalizedPath =
  | {
      ok: true;
      path: string;
      /** Everything after the first "?", without it; "" when there is none. */
      query: string;
      /**
       * UnescapeAndRedirect found `%2F`/`%5C`: answer with a redirect to `path` (plus the query)
       * instead of routing, so every party sees the unescaped path.
       */
      redirect: boolean;
    }
  | { ok: false; reason: string };

const HEX = '0123456789ABCDEF';

/** Characters that may appear literally in a normalized path: pchar (minus "%") and "/". */
const PATH_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") {
  PATH_CHAR[c.charCodeAt(0)] = 1;
}

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2d ||
    b === 0x2e ||
    b === 0x5f ||
    b === 0x7e
  );
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function escapeByte(b: number): string {
  return `%${HEX[b >> 4]}${HEX[b & 15]}`;
}

/** Control characters and "#" are refused anywhere in the request target. */
function invalidChar(c: number): string | undefined {
  if (c < 0x20 || c === 0x7f) return `control character 0x${c.toString(16)} in path`;
  if (c === 0x23) return '"#" (fragment) in request target';
  return undefined;
}

function fail(reason: string): NormalizedPath {
  return { ok: false, reason };
}

export function normalizePath(rawPath: string, options: PathNormalization = {}): NormalizedPath {
  const action = options.escapedSlashesAction ?? DEFAULT_ESCAPED_SLASHES_ACTION;
  if (rawPath.length === 0 || rawPath.charCodeAt(0) !== 0x2f) {
    return fail('path must start with "/"');
  }
  const q = rawPath.indexOf('?');
  const end = q === -1 ? rawPath.length : q;
  const query = q === -1 ? '' : rawPath.slice(q + 1);
  for (let i = end + 1; i < rawPath.length; i++) {
    const bad = invalidChar(rawPath.charCodeAt(i));
    if (bad !== undefined) return fail(bad);
  }

  // Pass 1: escapes, backslashes and characters to encode. Unchanged runs are copied in one slice.
  let out = '';
  let runStart = 0;
  let sawEscapedSlash = false;
  let i = 0;
  while (i < end) {
    const c = rawPath.charCodeAt(i);
    if (c < 0x80 && PATH_CHAR[c] === 1) {
      i++;
      continue;
    }
    const bad = invalidChar(c);
    if (bad !== undefined) return fail(bad);
    out += rawPath.slice(runStart, i);
    if (c === 0x25 /* % */) {
      const hi = i + 2 < end ? hexValue(rawPath.charCodeAt(i + 1)) : -1;
      const lo = hi === -1 ? -1 : hexValue(rawPath.charCodeAt(i + 2));
      if (lo === -1) return fail(`bad percent-escape "${rawPath.slice(i, Math.min(i + 3, end))}"`);
      const b = (hi << 4) | lo;
      if (b === 0) return fail('"%00" in path');
      if (isUnreserved(b)) {
        out += String.fromCharCode(b);
      } else if (b === 0x2f || b === 0x5c) {
        if (action === 'RejectRequest') return fail(`escaped slash "${escapeByte(b)}" in path`);
        if (action === 'KeepUnchanged') {
          out += escapeByte(b);
        } else {
          // Unescaped "\" would become "/" by rule 5, so both land as "/".
          out += '/';
          sawEscapedSlash = true;
        }
      } else {
        out += escapeByte(b);
      }
      i += 3;
    } else if (c === 0x5c /* \ */) {
      out += '/';
      i++;
    } else if (c < 0x80) {
      out += escapeByte(c);
      i++;
    } else {
      const cp = rawPath.codePointAt(i) ?? c;
      if (cp >= 0xd800 && cp <= 0xdfff) return fail('lone surrogate in path');
      out += encodeURIComponent(String.fromCodePoint(cp));
      i += cp > 0xffff ? 2 : 1;
    }
    runStart = i;
  }
  let path = runStart === 0 ? rawPath.slice(0, end) : out + rawPath.slice(runStart, end);

  if (path.includes('/.')) path = removeDotSegments(path);
  if (!options.disableMergeSlashes && path.includes('//')) path = path.replace(/\/{2,}/g, '/');

  return {
    ok: true,
    path,
    query,
    redirect: sawEscapedSlash && action === 'UnescapeAndRedirect',
  };
}

/** RFC 3986 §5.2.4 for an absolute path ("/" first); ".." at the root stays at the root. */
export function removeDotSegments(path: string): string {
  const segments = path.split('/'); // [ '', s1, s2, ... ]
  const stack: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const s = segments[i] as string;
    if (s === '.' || s === '..') {
      if (s === '..') stack.pop();
      // "/a/." and "/a/b/.." keep the trailing slash: the last segment is then empty.
      if (i === last) stack.push('');
    } else {
      stack.push(s);
    }
  }
  return `/${stack.join('/')}`;
}
