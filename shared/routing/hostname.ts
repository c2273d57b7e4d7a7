// Host header handling and Gateway API hostname matching.
//
// Gateway API (apis/v1 HTTPRouteSpec.Hostnames, Listener.Hostname):
// - the port of the Host header MUST be ignored when matching;
// - `*.example.com` is a suffix match: it matches `test.example.com` and `foo.test.example.com`,
//   but not `example.com` (the wildcard stands for one or more whole labels);
// - a hostname is lowercase RFC 1123 and never an IP, so an IP literal in the Host header only
//   ever reaches routes that have no hostname.

/** Patterns of the catch-all group: a listener or route without hostname matches any host. */
export const ANY_HOST = '*';

/**
 * Host header → the name routes are matched against: port stripped, lowercased, one trailing dot
 * removed (`Example.COM.:8080` → `example.com`). IPv6 literals keep their brackets
 * (`[::1]:443` → `[::1]`). Never throws; use `parseHostHeader` to reject malformed values.
 */
export function normalizeHost(host: string): string {
  // Fast path: already a lowercase name without port or trailing dot (the common case).
  let clean = host.length > 0;
  for (let i = 0; i < host.length && clean; i++) {
    const c = host.charCodeAt(i);
    clean = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e;
  }
  if (clean && host.charCodeAt(host.length - 1) !== 0x2e) return host;

  let name = host;
  if (name.charCodeAt(0) === 0x5b /* [ */) {
    const close = name.indexOf(']');
    if (close !== -1) return name.slice(0, close + 1).toLowerCase();
  } else {
    const colon = name.indexOf(':');
    // Exactly one colon: "name:port". More than one is a bare IPv6 address (invalid in Host, but
    // we do not guess where a port would start).
    if (colon !== -1 && name.indexOf(':', colon + 1) === -1) name = name.slice(0, colon);
  }
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name.toLowerCase();
}

export interface HostHeader {
  /** Normalized as by `normalizeHost`. */
  hostname: string;
  port?: number;
}

const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;
const IPV6_LITERAL = /^\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]$/;

/** Strict parse of a Host header (RFC 9110 §7.2: uri-host [ ":" port ]); undefined when malformed. */
export function parseHostHeader(value: string): HostHeader | undefined {
  let host = value;
  let portText: string | undefined;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close === -1) return undefined;
    const rest = host.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portText = rest.slice(1);
    }
    host = host.slice(0, close + 1);
    if (!IPV6_LITERAL.test(host)) return undefined;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) {
      portText = host.slice(colon + 1);
      host = host.slice(0, colon);
    }
    if (!REG_NAME.test(host)) return undefined;
  }
  if (host === '') return undefined;
  let port: number | undefined;
  if (portText !== undefined && portText !== '') {
    if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
    port = Number(portText);
    if (port > 65535) return undefined;
  }
  const hostname = normalizeHost(host);
  return port === undefined ? { hostname } : { hostname, port };
}

export function isWildcardHostname(hostname: string): boolean {
  return hostname.startsWith('*.') || hostname === ANY_HOST;
}

/** Lowercase and drop one trailing dot, as for Host headers; wildcards keep their `*.`. */
export function normalizeHostname(hostname: string): string {
  const h = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
  return h.toLowerCase();
}

/**
 * Does `pattern` (exact, `*.suffix`, or `*` for any) match the normalized request host?
 * `*.example.com` matches `a.example.com` and `a.b.example.com`, never `example.com`.
 */
export function hostnameMatches(pattern: string, host: string): boolean {
  if (pattern === ANY_HOST) return true;
  if (!pattern.startsWith('*.')) return pattern === host;
  const suffixWithDot = pattern.slice(1); // ".example.com"
  return host.length > suffixWithDot.length && host.endsWith(suffixWithDot);
}

/**
 * Is every host that `specific` matches also matched by `general`? Both may be wildcards:
 * `*.example.com` covers `a.example.com`, `*.a.example.com` and itself.
 */
export function hostnameCovers(general: string, specific: string): boolean {
  if (general === ANY_HOST) return true;
  if (specific === ANY_HOST) return false;
  if (!general.startsWith('*.')) return general === specific;
  if (!specific.startsWith('*.')) return hostnameMatches(general, specific);
  // Both wildcards: `*.a.example.com` ⊆ `*.example.com` when its suffix ends with ".example.com".
  const g = general.slice(2);
  const s = specific.slice(2);
  return s === g || s.endsWith(`.${g}`);
}

/**
 * The hostnames a route serves on a listener (Gateway API HTTPRouteSpec.Hostnames):
 * - neither sets hostnames: `[]`, any host;
 * - only one side sets them: that side's hostnames;
 * - both: each route hostname that intersects the listener hostname, as the more specific of the
 *   pair (listener `*.example.com` + route `test.example.com` → `test.example.com`; listener
 *   `test.example.com` + route `*.example.com` → `test.example.com`); route hostnames that do not
 *   match "MUST be ignored"; `null` when none intersects (the route is not Accepted on this
 *   listener: NoMatchingListenerHostname).
 * Results are normalized (lowercase, no trailing dot) and deduplicated, in route order.
 */
export function intersectHostnames(
  listenerHostname: string | undefined,
  routeHostnames: readonly string[],
): string[] | null {
  const listener =
    listenerHostname === undefined || listenerHostname === ''
      ? undefined
      : normalizeHostname(listenerHostname);
  const out: string[] = [];
  const add = (h: string): void => {
    if (!out.includes(h)) out.push(h);
  };
  if (listener === undefined || listener === ANY_HOST) {
    for (const h of routeHostnames) add(normalizeHostname(h));
    return out;
  }
  if (routeHostnames.length === 0) return [listener];
  for (const raw of routeHostnames) {
    const h = normalizeHostname(raw);
    if (hostnameCovers(listener, h)) add(h);
    else if (hostnameCovers(h, listener)) add(listener);
  }
  return out.length > 0 ? out : null;
}

/**
 * Order of host groups, most specific first (Gateway API: "precedence must be given to rules from
 * the HTTPRoute with the largest number of: characters in a matching non-wildcard hostname;
 * characters in a matching hostname"): exact names, then wildcards with the longer suffix first,
 * then the catch-all. Ties (which cannot both match one host) sort by name, for stable output.
 */
export function compareHostnameSpecificity(a: string, b: string): number {
  const rank = (h: string): number => (h === ANY_HOST ? 2 : h.startsWith('*.') ? 1 : 0);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (a.length !== b.length) return b.length - a.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
