// meshgate.io ApiDefinition → Snapshot.apis: an OpenAPI document bound to an accepted HTTPRoute.
// Status is `{ conditions: [Accepted, ResolvedRefs] }`, the shape Gateway API kinds use.

import { parse as parseYaml } from 'yaml';
import type { Resource } from '../resource.ts';
import { GATEWAY_GROUP } from '../schemas/gateway-api.ts';
import { MESHGATE_GROUP, type ApiDefinitionSpec } from '../schemas/meshgate.ts';
import type { ApiDefinitionIR, HTTPRouteIR } from '../snapshot.ts';
import type { CompileContext } from './context.ts';
import type { CompiledRoutes } from './http-routes.ts';
import { comparePolicyPrecedence } from './policies.ts';

/** Reads a file of the config folder by its relative path; undefined when it does not exist. */
export type ConfigFileReader = (relativePath: string) => string | undefined;

/** The document's origin as the data plane needs it; the document itself is `spec.document`. */
export type ApiSourceIR =
  { type: 'Inline' } | { type: 'File'; file: string } | { type: 'URL'; url: string };

export interface ApiDefinitionSpecIR {
  source: ApiSourceIR;
  /** The OpenAPI document, when it is inline or its file was read. */
  document?: Record<string, unknown>;
  basePath: string;
  enforcement: ApiDefinitionSpec['enforcement'];
  publish: ApiDefinitionSpec['publish'];
}

interface Problem {
  reason: string;
  message: string;
}

export function compileApiDefinitions(
  ctx: CompileContext,
  routes: CompiledRoutes,
  readFile?: ConfigFileReader,
): ApiDefinitionIR[] {
  const accepted = new Map(routes.routes.map((r) => [`${r.namespace}/${r.name}`, r]));
  const published = new Map<string, string>();
  const out: ApiDefinitionIR[] = [];

  for (const def of ctx.list<ApiDefinitionSpec>('ApiDefinition').sort(comparePolicyPrecedence)) {
    const c = ctx.conditions(def);
    const ns = def.metadata.namespace;
    const ref = def.spec.targetRef;
    const routeNs = ref.namespace ?? ns;
    const routeKey = `${routeNs}/${ref.name}`;
    const refProblem = resolveRoute(ctx, def, routeNs, ref.name);
    const source = loadDocument(def.spec, readFile);

    const resolved: Problem | undefined = refProblem ?? source.refProblem;
    const resolvedRefs = resolved
      ? c.make('ResolvedRefs', false, resolved.reason, resolved.message)
      : c.make('ResolvedRefs', true, 'ResolvedRefs', 'all references are resolved');

    let problem: Problem | undefined = resolved;
    const route = accepted.get(routeKey);
    if (!problem && !route)
      problem = {
        reason: 'TargetNotAccepted',
        message: `HTTPRoute ${routeKey} is not accepted by any parent; see its status`,
      };
    if (!problem && source.invalid) problem = { reason: 'Invalid', message: source.invalid };
    const basePath = def.spec.basePath ?? (route ? defaultBasePath(route) : '/');
    const publishKey = `${routeKey} ${basePath}`;
    const holder = published.get(publishKey);
    if (!problem && holder)
      problem = {
        reason: 'Conflicted',
        message: `ApiDefinition ${holder} already describes HTTPRoute ${routeKey} at ${basePath}`,
      };

    if (problem) {
      ctx.setStatus(def, {
        conditions: [c.make('Accepted', false, problem.reason, problem.message), resolvedRefs],
      });
      continue;
    }
    published.set(publishKey, `${ns}/${def.metadata.name}`);
    ctx.setStatus(def, {
      conditions: [
        c.make(
          'Accepted',
          true,
          'Accepted',
          `API published on HTTPRoute ${routeKey}${source.note}`,
        ),
        resolvedRefs,
      ],
    });
    const spec: ApiDefinitionSpecIR = {
      source: source.ir,
      ...(source.document ? { document: source.document } : {}),
      basePath,
      enforcement: def.spec.enforcement,
      publish: def.spec.publish,
    };
    out.push({ namespace: ns, name: def.metadata.name, route: routeKey, spec });
  }
  return out;
}

function resolveRoute(
  ctx: CompileContext,
  def: Resource<ApiDefinitionSpec>,
  routeNs: string,
  name: string,
): Problem | undefined {
  if (
    !ctx.referenceAllowed(
      { group: MESHGATE_GROUP, kind: 'ApiDefinition', namespace: def.metadata.namespace },
      { group: GATEWAY_GROUP, kind: 'HTTPRoute', namespace: routeNs, name },
    )
  )
    return {
      reason: 'RefNotPermitted',
      message: `targetRef: HTTPRoute ${routeNs}/${name} is in another namespace and no ReferenceGrant allows it`,
    };
  if (!ctx.get('HTTPRoute', routeNs, name))
    return {
      reason: 'TargetNotFound',
      message: `targetRef: HTTPRoute ${routeNs}/${name} not found`,
    };
  return undefined;
}

/** The route's first PathPrefix match, as the schema documents for an unset basePath. */
function defaultBasePath(route: HTTPRouteIR): string {
  for (const rule of route.rules)
    for (const m of rule.matches) if (m.path.type === 'PathPrefix') return m.path.value;
  return '/';
}

interface LoadedSource {
  ir: ApiSourceIR;
  document?: Record<string, unknown>;
  /** A file that is missing: a reference that does not resolve. */
  refProblem?: Problem;
  /** Why the document cannot be used. */
  invalid?: string;
  /** Added to the Accepted message. */
  note: string;
}

function loadDocument(
  spec: ApiDefinitionSpec,
  readFile: ConfigFileReader | undefined,
): LoadedSource {
  const src = spec.source;
  if (src.url !== undefined)
    return {
      ir: { type: 'URL', url: src.url },
      note: `; the document is fetched from ${src.url} at run time`,
    };
  if (src.inline !== undefined)
    return withDocument({ ir: { type: 'Inline' }, note: '' }, src.inline);
  const file = src.file ?? '';
  const ir: ApiSourceIR = { type: 'File', file };
  if (!readFile)
    return {
      ir,
      note: `; source.file ${file} was not read (the compiler was given no file reader)`,
    };
  const text = readFile(file);
  if (text === undefined)
    return {
      ir,
      note: '',
      refProblem: {
        reason: 'FileNotFound',
        message: `source.file: ${file} not found in the config folder`,
      },
    };
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return {
      ir,
      note: '',
      invalid: `source.file ${file}: cannot parse: ${firstLine((err as Error).message)}`,
    };
  }
  return withDocument({ ir, note: '' }, doc, `source.file ${file}: `);
}

function withDocument(base: LoadedSource, doc: unknown, prefix = ''): LoadedSource {
  const errors = checkOpenApiDocument(doc);
  if (errors.length > 0) return { ...base, invalid: `${prefix}${errors.join('; ')}` };
  return { ...base, document: doc as Record<string, unknown> };
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/**
 * The minimum meshgate needs to publish and enforce a document: OpenAPI 3.0.x or 3.1.x, an info
 * object with title and version, and paths (3.1 may leave paths out when it has components or
 * webhooks). Messages name the field as `document.<path>`.
 */
export function checkOpenApiDocument(doc: unknown): string[] {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    return ['document: must be an OpenAPI object'];
  const d = doc as Record<string, unknown>;
  const out: string[] = [];
  const version = d.openapi;
  if (version === undefined)
    out.push(
      d.swagger !== undefined
        ? `document.swagger: Swagger ${String(d.swagger)} is not supported; convert the document to OpenAPI 3.0 or 3.1`
        : 'document.openapi: required',
    );
  else if (typeof version !== 'string' || !/^3\.[01]\.\d+(-[0-9A-Za-z.-]+)?$/.test(version))
    out.push(`document.openapi: must be 3.0.x or 3.1.x, got ${JSON.stringify(version)}`);
  const info = d.info;
  if (!info || typeof info !== 'object' || Array.isArray(info)) out.push('document.info: required');
  else {
    const i = info as Record<string, unknown>;
    if (typeof i.title !== 'string') out.push('document.info.title: required (a string)');
    if (typeof i.version !== 'string') out.push('document.info.version: required (a string)');
  }
  const paths = d.paths;
  const is31 = typeof version === 'string' && version.startsWith('3.1.');
  if (paths === undefined) {
    if (!is31 || (d.components === undefined && d.webhooks === undefined))
      out.push('document.paths: required');
  } else if (!paths || typeof paths !== 'object' || Array.isArray(paths))
    out.push('document.paths: must be an object');
  else
    for (const p of Object.keys(paths))
      if (!p.startsWith('/')) out.push(`document.paths.${p}: a path must start with "/"`);
  return out;
}
