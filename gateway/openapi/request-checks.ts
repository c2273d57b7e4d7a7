// A request's parameters against its operation: values read the way the parameter's style says
// (OpenAPI §4.8.12.4: form, simple, label, matrix, spaceDelimited, pipeDelimited, deepObject),
// then checked by the parameter's schema, strings coerced to its types.

import { cookie } from '../auth/credentials.ts';
import type { CompiledOperation, CompiledParameter } from './compiled-api.ts';
import { describeSchemaError } from './schema-validators.ts';

export type ViolationLocation = 'path' | 'query' | 'header' | 'cookie' | 'body' | 'operation';

export interface Violation {
  location: ViolationLocation;
  message: string;
}

export interface RequestParts {
  pathParams: Record<string, string>;
  query: URLSearchParams;
  /** Every value of a header, joined with ", " (lowercase name). */
  header(name: string): string | undefined;
}

/** Parameter violations, the first only when `all` is false. */
export function checkParameters(
  op: CompiledOperation,
  req: RequestParts,
  all: boolean,
): Violation[] {
  const out: Violation[] = [];
  for (const p of op.parameters) {
    const v = checkParameter(p, req);
    if (!v) continue;
    out.push(v);
    if (!all) break;
  }
  return out;
}

function checkParameter(p: CompiledParameter, req: RequestParts): Violation | undefined {
  const field = `${p.in}.${p.name}`;
  let value: unknown;
  try {
    value = readParameter(p, req);
  } catch (err) {
    return { location: p.in, message: `${field}: ${(err as Error).message}` };
  }
  if (value === undefined)
    return p.required ? { location: p.in, message: `${field}: is required` } : undefined;
  if (!p.validate || p.validate(value)) return undefined;
  const e = p.validate.errors?.[0];
  return {
    location: p.in,
    message: e ? describeSchemaError(field, e) : `${field}: is not valid`,
  };
}

/** The parameter's value as its schema sees it (before coercion), or undefined when absent. */
function readParameter(p: CompiledParameter, req: RequestParts): unknown {
  switch (p.in) {
    case 'path': {
      const raw = req.pathParams[p.name];
      return raw === undefined ? undefined : fromSimple(p, stripPathStyle(p, raw));
    }
    case 'header': {
      const raw = req.header(p.name.toLowerCase());
      return raw === undefined ? undefined : fromSimple(p, raw);
    }
    case 'cookie': {
      const raw = cookie(req.header('cookie'), p.name);
      return raw === undefined ? undefined : fromForm(p, raw);
    }
    case 'query':
      return readQuery(p, req.query);
  }
}

function readQuery(p: CompiledParameter, q: URLSearchParams): unknown {
  if (p.style === 'deepObject') {
    const out: Record<string, string> = {};
    let found = false;
    const prefix = `${p.name}[`;
    for (const [k, v] of q)
      if (k.startsWith(prefix) && k.endsWith(']')) {
        out[k.slice(prefix.length, -1)] = v;
        found = true;
      }
    return found ? out : undefined;
  }
  if (p.shape === 'object' && p.explode && !p.json) {
    // form + explode: each property is a parameter of its own.
    const out: Record<string, string> = {};
    let found = false;
    for (const name of p.properties) {
      const v = q.get(name);
      if (v !== null) {
        out[name] = v;
        found = true;
      }
    }
    return found ? out : undefined;
  }
  if (!q.has(p.name)) return undefined;
  if (p.shape === 'array') {
    if (p.explode && p.style === 'form') return q.getAll(p.name);
    const raw = q.get(p.name) as string;
    const sep = p.style === 'spaceDelimited' ? ' ' : p.style === 'pipeDelimited' ? '|' : ',';
    return raw === '' ? [] : raw.split(sep);
  }
  return fromForm(p, q.get(p.name) as string);
}

function fromForm(p: CompiledParameter, raw: string): unknown {
  if (p.json) return parseJson(raw);
  if (p.shape === 'array') return raw === '' ? [] : raw.split(',');
  if (p.shape === 'object') return pairs(raw.split(','));
  return raw;
}

/** style simple (path, header): "a,b,c"; objects "k,v,k,v", or "k=v,k=v" when exploded. */
function fromSimple(p: CompiledParameter, raw: string, sep = ','): unknown {
  if (p.json) return parseJson(raw);
  if (p.shape === 'array') return raw === '' ? [] : raw.split(sep).map((s) => s.trim());
  if (p.shape === 'object') {
    const parts = raw.split(sep).map((s) => s.trim());
    if (p.explode)
      return Object.fromEntries(
        parts.map((kv) => {
          const eq = kv.indexOf('=');
          return eq < 0 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
        }),
      );
    return pairs(parts);
  }
  return raw;
}

/** label (".a.b") and matrix (";id=5") prefixes, so the rest reads as simple. */
function stripPathStyle(p: CompiledParameter, raw: string): string {
  if (p.style === 'label' && raw.startsWith('.'))
    return p.explode ? raw.slice(1).split('.').join(',') : raw.slice(1);
  if (p.style === 'matrix' && raw.startsWith(`;${p.name}=`))
    return raw
      .slice(1)
      .split(';')
      .map((kv) => kv.slice(kv.indexOf('=') + 1))
      .join(',');
  return raw;
}

function pairs(parts: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) out[parts[i] as string] = parts[i + 1] as string;
  return out;
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new Error('must be JSON');
  }
}
