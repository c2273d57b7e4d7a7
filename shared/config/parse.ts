import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Document,
  type Node,
} from 'yaml';
import type { z } from 'zod';
import { configError, type ConfigError } from './errors.ts';
import { isKnownGroup, lookupKind, splitApiVersion, type KindDefinition } from './kinds.ts';
import { objectMeta } from './schemas/common.ts';
import {
  formatPath,
  keyOf,
  type FieldPath,
  type Resource,
  type SourceLocation,
  type UnsupportedField,
} from './resource.ts';
import './model.ts';

/** A document of a kind outside the model (Deployment, ConfigMap, …): listed, not an error. */
export interface IgnoredDocument {
  location: SourceLocation;
  apiVersion: string;
  kind: string;
  name?: string;
  reason: string;
}

export interface ParseResult {
  resources: Resource[];
  ignored: IgnoredDocument[];
  errors: ConfigError[];
}

const CONFIG_EXTENSIONS = /\.(ya?ml|json)$/i;

/** Every config file under `dir`, recursively, in a stable order. Dot-folders and node_modules are skipped. */
export async function listConfigFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    const entries = await readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && CONFIG_EXTENSIONS.test(e.name)) out.push(p);
    }
  }
  await walk(dir);
  return out;
}

/** Loads and parses every config file under `dir`. File names in messages are relative to `dir`. */
export async function parseFolder(dir: string): Promise<ParseResult> {
  const files = await listConfigFiles(dir);
  const texts = await Promise.all(files.map((f) => readFile(f, 'utf8')));
  return parseTexts(files.map((f, i) => ({ file: relative(dir, f), text: texts[i] ?? '' })));
}

/** Parses named texts as one config set: duplicates are checked across all of them. */
export function parseTexts(inputs: readonly { file: string; text: string }[]): ParseResult {
  const result: ParseResult = { resources: [], ignored: [], errors: [] };
  for (const { file, text } of inputs) parseText(file, text, result);
  rejectDuplicates(result);
  return result;
}

function parseText(file: string, text: string, into: ParseResult): void {
  const lineCounter = new LineCounter();
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
    }) as Document.Parsed[];
  } catch (err) {
    into.errors.push(
      configError({ file, doc: 1, line: 1, col: 1 }, '', `cannot parse: ${(err as Error).message}`),
    );
    return;
  }
  if (!Array.isArray(docs)) docs = [docs];
  docs.forEach((doc, i) => parseDocument(file, i + 1, doc, lineCounter, into));
}

function positionAt(lineCounter: LineCounter, offset: number): { line: number; col: number } {
  const p = lineCounter.linePos(offset);
  return { line: p.line, col: p.col };
}

/** Finds the YAML node for a field path: the value node, or for a missing field the nearest parent. */
function locateNode(doc: Document.Parsed, path: FieldPath, preferKey: boolean): Node | undefined {
  let node: unknown = doc.contents;
  let best: Node | undefined = (doc.contents as Node | null) ?? undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
      );
      if (!pair) return best;
      if (preferKey && seg === path[path.length - 1]) return pair.key as Node;
      node = pair.value;
      best = (node as Node | null) ?? (pair.key as Node);
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (!node) return best;
      best = node as Node;
    } else return best;
  }
  return best;
}

function makeLocator(
  file: string,
  docIndex: number,
  doc: Document.Parsed,
  lc: LineCounter,
  fallback: SourceLocation,
) {
  return (path: FieldPath, preferKey = false): SourceLocation => {
    const node = locateNode(doc, path, preferKey);
    const range = node?.range;
    if (!range) return fallback;
    return { file, doc: docIndex, ...positionAt(lc, range[0]) };
  };
}

function parseDocument(
  file: string,
  docIndex: number,
  doc: Document.Parsed,
  lc: LineCounter,
  into: ParseResult,
): void {
  const startOffset = doc.contents?.range?.[0] ?? doc.range?.[0] ?? 0;
  const docLocation: SourceLocation = { file, doc: docIndex, ...positionAt(lc, startOffset) };
  if (doc.errors.length > 0) {
    // The first error is the cause; the ones after it are mostly its echoes.
    const e = doc.errors[0] as (typeof doc.errors)[number];
    into.errors.push(
      configError(
        { file, doc: docIndex, ...positionAt(lc, e.pos[0]) },
        '',
        `invalid YAML: ${firstLine(e.message)}`,
      ),
    );
    return;
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || raw === undefined) return; // an empty document (a trailing `---`)
  const locate = makeLocator(file, docIndex, doc, lc, docLocation);
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    into.errors.push(
      configError(
        docLocation,
        '',
        'expected a Kubernetes-style object with apiVersion, kind and metadata',
      ),
    );
    return;
  }
  const obj = raw as Record<string, unknown>;
  // An OpenAPI document kept beside the manifests for an ApiDefinition's `source.file`: not a
  // resource, and not a mistake either.
  const openapi = obj.openapi ?? obj.swagger;
  if (obj.apiVersion === undefined && obj.kind === undefined && typeof openapi === 'string') {
    into.ignored.push({
      location: docLocation,
      apiVersion: '',
      kind: 'OpenAPI document',
      reason: `OpenAPI ${openapi}, read by the ApiDefinition whose source.file names it`,
    });
    return;
  }
  if (typeof obj.apiVersion !== 'string' || obj.apiVersion === '') {
    into.errors.push(
      configError(
        locate(['apiVersion']),
        'apiVersion',
        'required: a string such as gateway.networking.k8s.io/v1',
      ),
    );
    return;
  }
  if (typeof obj.kind !== 'string' || obj.kind === '') {
    into.errors.push(configError(locate(['kind']), 'kind', 'required: a string such as HTTPRoute'));
    return;
  }
  if (obj.kind.endsWith('List') && Array.isArray(obj.items)) {
    into.errors.push(
      configError(
        docLocation,
        'kind',
        `${obj.kind} documents are not read; write each object as its own document`,
      ),
    );
    return;
  }
  const def = lookupKind(obj.apiVersion, obj.kind);
  const name = (obj.metadata as { name?: unknown } | undefined)?.name;
  if (!def) {
    const { group } = splitApiVersion(obj.apiVersion);
    into.ignored.push({
      location: docLocation,
      apiVersion: obj.apiVersion,
      kind: obj.kind,
      ...(typeof name === 'string' ? { name } : {}),
      reason:
        group !== '' && isKnownGroup(group)
          ? `${obj.kind} of ${group} is not supported by meshgate yet`
          : 'not part of the meshgate config model',
    });
    return;
  }
  const { version } = splitApiVersion(obj.apiVersion);
  if (!def.versions.includes(version)) {
    into.errors.push(
      configError(
        locate(['apiVersion']),
        'apiVersion',
        `${obj.kind} is read as ${def.versions.map((v) => `${groupPrefix(def)}${v}`).join(' or ')}, not ${obj.apiVersion}`,
      ),
    );
    return;
  }
  const errorsBefore = into.errors.length;
  const what = typeof name === 'string' ? `${obj.kind}/${name}` : obj.kind;
  const pushIssues = (issues: readonly z.core.$ZodIssue[], prefix: FieldPath) => {
    for (const issue of issues)
      for (const e of issueToErrors(issue, prefix, obj, locate, what)) into.errors.push(e);
  };

  const meta = objectMeta.safeParse(obj.metadata ?? undefined);
  if (!meta.success) pushIssues(meta.error.issues, ['metadata']);

  let bodyInput: unknown;
  let prefix: FieldPath;
  if (def.topLevelBody) {
    const { apiVersion: _a, kind: _k, metadata: _m, status: _s, ...rest } = obj;
    bodyInput = rest;
    prefix = [];
  } else {
    const extra = Object.keys(obj).filter(
      (k) => !['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(k),
    );
    for (const k of extra)
      into.errors.push(
        configError(
          locate([k], true),
          k,
          `unknown top-level field; ${obj.kind} has apiVersion, kind, metadata and spec`,
          what,
        ),
      );
    bodyInput = obj.spec ?? (def.specOptional ? {} : undefined);
    prefix = ['spec'];
  }
  const body = def.schema.safeParse(bodyInput);
  if (!body.success) pushIssues(body.error.issues, prefix);
  if (into.errors.length > errorsBefore || !meta.success || !body.success) return;

  const metadata = meta.data;
  const namespace = def.namespaced ? (metadata.namespace ?? 'default') : '';
  const parsed = body.data as Record<string, unknown>;
  const resource: Resource = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: { ...metadata, namespace, generation: metadata.generation ?? 1 },
    spec: parsed,
    source: docLocation,
    locate: (path) => locate(path),
    unsupported: findUnsupported(def, obj),
  };
  into.resources.push(resource);
}

function groupPrefix(def: KindDefinition): string {
  return def.group ? `${def.group}/` : '';
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string')
    return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function valueAt(root: unknown, path: FieldPath): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'an object',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

/** Turns one zod issue into messages a user can act on (`expected one of A, B`), with positions. */
function issueToErrors(
  issue: z.core.$ZodIssue,
  prefix: FieldPath,
  root: unknown,
  locate: (p: FieldPath, preferKey?: boolean) => SourceLocation,
  resource: string,
): ConfigError[] {
  const path = [...prefix, ...(issue.path as (string | number)[])];
  const actual = valueAt(root, path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => {
        const p = [...path, k];
        return configError(locate(p, true), p, 'unknown field', resource);
      });
    case 'invalid_type': {
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      const msg =
        actual === undefined
          ? `required: ${expected}`
          : `expected ${expected}, got ${describeValue(actual)}`;
      return [configError(locate(path), path, msg, resource)];
    }
    case 'invalid_value':
      return [
        configError(
          locate(path),
          path,
          issue.values.length === 1
            ? `expected ${String(issue.values[0])}, got ${describeValue(actual)}`
            : `expected one of ${issue.values.map(String).join(', ')}`,
          resource,
        ),
      ];
    case 'too_small': {
      const min = Number(issue.minimum);
      const msg =
        issue.origin === 'array'
          ? `must have at least ${min} item${min === 1 ? '' : 's'}`
          : issue.origin === 'string'
            ? min === 1
              ? 'must not be empty'
              : `must be at least ${min} characters`
            : `must be ${issue.inclusive ? '>=' : '>'} ${min}`;
      return [configError(locate(path), path, msg, resource)];
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      const msg =
        issue.origin === 'array'
          ? `must have at most ${max} items`
          : issue.origin === 'string'
            ? `must be at most ${max} characters`
            : `must be ${issue.inclusive ? '<=' : '<'} ${max}`;
      return [configError(locate(path), path, msg, resource)];
    }
    case 'invalid_union': {
      // Report the branch that got furthest, so a typo inside one option reads naturally.
      const branches = issue.errors.filter((b) => b.length > 0);
      const best = branches.sort((a, b) => depth(b) - depth(a))[0];
      if (best && depth(best) > 0)
        return best.flatMap((i) => issueToErrors(i, path, root, locate, resource));
      return [
        configError(locate(path), path, `${describeValue(actual)} is not valid here`, resource),
      ];
    }
    case 'invalid_format':
    case 'custom':
    default:
      return [configError(locate(path), path, issue.message, resource)];
  }
}

function depth(issues: readonly z.core.$ZodIssue[]): number {
  return Math.max(
    0,
    ...issues.map(
      (i) => i.path.length + (i.code === 'invalid_type' && i.path.length === 0 ? -1 : 0),
    ),
  );
}

/** Walks the raw document for fields listed as unsupported (`[]` expands to every index). */
function findUnsupported(def: KindDefinition, raw: Record<string, unknown>): UnsupportedField[] {
  const found: UnsupportedField[] = [];
  for (const rule of def.unsupported ?? []) {
    const segments = rule.path.replace(/\[\]/g, '.[]').split('.').filter(Boolean);
    const visit = (v: unknown, i: number, at: FieldPath) => {
      if (v === undefined || v === null) return;
      if (i === segments.length) {
        if (rule.when && !rule.when(v)) return;
        found.push({ path: formatPath(at), message: rule.message, effect: rule.effect });
        return;
      }
      const seg = segments[i] as string;
      if (seg === '[]') {
        if (Array.isArray(v)) v.forEach((item, j) => visit(item, i + 1, [...at, j]));
      } else if (typeof v === 'object' && !Array.isArray(v))
        visit((v as Record<string, unknown>)[seg], i + 1, [...at, seg]);
    };
    visit(raw, 0, []);
  }
  return found;
}

function rejectDuplicates(result: ParseResult): void {
  const seen = new Map<string, Resource>();
  const kept: Resource[] = [];
  for (const r of result.resources) {
    const key = keyOf(r);
    const first = seen.get(key);
    if (first) {
      const f = first.source;
      result.errors.push(
        configError(
          r.locate(['metadata', 'name']),
          'metadata.name',
          `duplicate ${key}: already defined at ${f.file} doc ${f.doc} (${f.line}:${f.col}); this copy is ignored`,
          key,
        ),
      );
      continue;
    }
    seen.set(key, r);
    kept.push(r);
  }
  result.resources = kept;
}
