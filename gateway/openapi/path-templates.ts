// OpenAPI path templates ("/pets/{petId}", "/files/{name}.{ext}") compiled into matchers once per
// document. OpenAPI §4.8.8: concrete paths match before templated ones, so at the first segment
// where two templates differ, the literal one is tried first.

export interface PathTemplateMatch<T> {
  template: string;
  value: T;
  /** Path parameters, percent-decoded. */
  params: Record<string, string>;
}

type Segment = string | { re: RegExp; names: string[] };

interface CompiledTemplate<T> {
  template: string;
  segments: Segment[];
  value: T;
}

export class PathTemplates<T> {
  /** By segment count: a request path is only compared with templates of its length. */
  private readonly byLength = new Map<number, CompiledTemplate<T>[]>();

  constructor(templates: Iterable<[string, T]>) {
    for (const [template, value] of templates) {
      const segments = template.split('/').map(compileSegment);
      const list = this.byLength.get(segments.length) ?? [];
      list.push({ template, segments, value });
      this.byLength.set(segments.length, list);
    }
    for (const list of this.byLength.values()) list.sort(compareTemplates);
  }

  /** The template a path (relative to the API's base path, starting with "/") falls under. */
  match(path: string): PathTemplateMatch<T> | undefined {
    const found = this.matchExact(path);
    // "/pets/" is taken as "/pets" when no template has the trailing slash.
    if (found || path.length <= 1 || !path.endsWith('/')) return found;
    return this.matchExact(path.slice(0, -1));
  }

  private matchExact(path: string): PathTemplateMatch<T> | undefined {
    const parts = path.split('/');
    const candidates = this.byLength.get(parts.length);
    if (!candidates) return undefined;
    next: for (const c of candidates) {
      let params: Record<string, string> | undefined;
      for (let i = 0; i < parts.length; i++) {
        const seg = c.segments[i] as Segment;
        const part = parts[i] as string;
        if (typeof seg === 'string') {
          if (seg !== part) continue next;
          continue;
        }
        const m = seg.re.exec(part);
        if (!m) continue next;
        params ??= {};
        seg.names.forEach((name, j) => {
          (params as Record<string, string>)[name] = decode(m[j + 1] as string);
        });
      }
      return { template: c.template, value: c.value, params: params ?? {} };
    }
    return undefined;
  }
}

function compileSegment(segment: string): Segment {
  if (!segment.includes('{')) return segment;
  const names: string[] = [];
  let source = '';
  let rest = segment;
  for (let m = /\{([^}]+)\}/.exec(rest); m; m = /\{([^}]+)\}/.exec(rest)) {
    source += escapeRegExp(rest.slice(0, m.index)) + '(.+?)';
    names.push(m[1] as string);
    rest = rest.slice(m.index + m[0].length);
  }
  source += escapeRegExp(rest);
  return { re: new RegExp(`^${source}$`), names };
}

function compareTemplates<T>(a: CompiledTemplate<T>, b: CompiledTemplate<T>): number {
  for (let i = 0; i < a.segments.length; i++) {
    const x = typeof a.segments[i] === 'string';
    const y = typeof b.segments[i] === 'string';
    if (x !== y) return x ? -1 : 1;
  }
  return a.template < b.template ? -1 : a.template > b.template ? 1 : 0;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
