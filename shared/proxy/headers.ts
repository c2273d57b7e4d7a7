// Header handling shared by every proxy stack: hop-by-hop removal (RFC 9110 §7.6.1), the
// request id, and the forwarded-for family.

import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export type HeaderMap = Record<string, string | string[]>;

/** Connection-specific headers: never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/** What the request path needs from the client's headers, gathered in the one pass that copies them. */
export interface ClientHeaders {
  headers: HeaderMap;
  host: string | undefined;
  requestId: string | undefined;
  forwardedFor: string | undefined;
  contentLength: string | undefined;
  hasBody: boolean;
  /** The client asked for trailers (`TE: trailers`), which the upstream may then send. */
  wantsTrailers: boolean;
}

/**
 * Copies request headers from Node's raw list, dropping hop-by-hop ones and those the Connection
 * header names, and HTTP/2 pseudo-headers (`:authority` becomes `host`).
 */
export function readClientHeaders(raw: readonly string[]): ClientHeaders {
  const headers: HeaderMap = {};
  let connection: string | undefined;
  const out: ClientHeaders = {
    headers,
    host: undefined,
    requestId: undefined,
    forwardedFor: undefined,
    contentLength: undefined,
    hasBody: false,
    wantsTrailers: false,
  };
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') out.host ??= value;
      continue;
    }
    switch (name) {
      case 'host':
        out.host ??= value;
        continue;
      case 'connection':
        connection = connection ? `${connection},${value}` : value;
        continue;
      case 'te':
        if (/(^|,)\s*trailers\s*(,|;|$)/i.test(value)) out.wantsTrailers = true;
        continue;
      case 'transfer-encoding':
        out.hasBody = true;
        continue;
      case 'content-length':
        out.contentLength = value;
        if (value !== '0') out.hasBody = true;
        break;
      case 'x-request-id':
        out.requestId = value;
        break;
      case 'x-forwarded-for':
        out.forwardedFor = out.forwardedFor ? `${out.forwardedFor}, ${value}` : value;
        continue;
    }
    if (HOP_BY_HOP.has(name)) continue;
    addValue(headers, name, value);
  }
  if (connection)
    for (const token of connection.split(',')) delete headers[token.trim().toLowerCase()];
  return out;
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** A client's X-Request-Id is kept when it is one printable token of at most 128 characters. */
export function requestIdFor(given: string | undefined): string {
  return given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Adds the header names a Connection header value lists to `named`, leaving out those that are
 * hop-by-hop anyway ("keep-alive", "close"…), so that the usual value costs no second pass.
 */
function connectionNamed(value: string, named: Set<string> | undefined): Set<string> | undefined {
  if (value === 'keep-alive' || value === 'close') return named;
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token !== 'close' && !HOP_BY_HOP.has(token)) (named ??= new Set()).add(token);
  }
  return named;
}

/**
 * An upstream response's raw header list (undici's name, value, … Buffers) as the flat string
 * list HTTP/1's writeHead takes, hop-by-hop headers removed (RFC 9110 §7.6.1).
 */
export function rawResponseHeaders(raw: readonly Buffer[]): string[] {
  let named: Set<string> | undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    const lower = name.toLowerCase();
    const value = (raw[i + 1] as Buffer).toString('latin1');
    if (!HOP_BY_HOP.has(lower)) out.push(name, value);
    else if (lower === 'connection') named = connectionNamed(value, named);
  }
  if (!named) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2)
    if (!named.has((out[i] as string).toLowerCase()))
      kept.push(out[i] as string, out[i + 1] as string);
  return kept;
}

/** The same, as a map of lower-case names for a hook to edit; repeated names become lists. */
export function responseHeaderMap(raw: readonly Buffer[]): HeaderMap {
  let named: Set<string> | undefined;
  const out: HeaderMap = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1').toLowerCase();
    const value = (raw[i + 1] as Buffer).toString('latin1');
    if (!HOP_BY_HOP.has(name)) addValue(out, name, value);
    else if (name === 'connection') named = connectionNamed(value, named);
  }
  if (named) for (const name of named) delete out[name];
  return out;
}

/** A raw header list (trailers, an upgrade's 101) as Node's header object, nothing removed. */
export function headerObject(raw: readonly Buffer[]): IncomingHttpHeaders {
  const out: HeaderMap = {};
  for (let i = 0; i < raw.length; i += 2)
    addValue(
      out,
      (raw[i] as Buffer).toString('latin1').toLowerCase(),
      (raw[i + 1] as Buffer).toString('latin1'),
    );
  return out;
}

function addValue(headers: HeaderMap, name: string, value: string): void {
  const prev = headers[name];
  if (prev === undefined) headers[name] = value;
  else if (Array.isArray(prev)) prev.push(value);
  else headers[name] = [prev, value];
}

export interface HeaderOps {
  set: readonly { name: string; value: string }[];
  add: readonly { name: string; value: string }[];
  remove: readonly string[];
}

/** Gateway API header modifier semantics: set overwrites, add appends, remove deletes. */
export function applyHeaderOps(headers: HeaderMap, ops: HeaderOps): void {
  for (const { name, value } of ops.set) headers[name.toLowerCase()] = value;
  // The spec's example: "my-header: foo" plus add "bar,baz" gives "my-header: foo,bar,baz".
  for (const { name, value } of ops.add) {
    const key = name.toLowerCase();
    const prev = headers[key];
    headers[key] =
      prev === undefined ? value : `${Array.isArray(prev) ? prev.join(',') : prev},${value}`;
  }
  for (const name of ops.remove) delete headers[name.toLowerCase()];
}
