// meshgate.io ApiDefinition → Snapshot.apis: an OpenAPI document bound to an accepted HTTPRoute.
// Status is `{ conditions: [Accepted, ResolvedRefs] }`, the shape Gateway API kinds use.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Ajv2020Module from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import Ajv04Module from 'ajv-draft-04';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import type { Resource } from '../resource.ts';
import { GATEWAY_GROUP } from '../schemas/gateway-api.ts';
import { MESHGATE_GROUP, type ApiDefinitionSpec } from '../schemas/meshgate.ts';
import type { ApiDefinitionIR, HTTPRouteIR, MatchIR } from '../snapshot.ts';
import type { Condition, RouteParentStatus } from './conditions.ts';
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
  /**
   * Set when an Enforce definition's document is missing or invalid: it is not published, and
   * the route's requests under basePath fail closed (500) rather than go through unchecked.
   */
  invalid?: Problem;
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
      // Enforcement is a security control: a broken document must not switch it off silently.
      const failClosed =
        def.spec.enforcement.mode === 'Enforce' &&
        route !== undefined &&
        (problem.reason === 'Invalid' || problem.reason === 'FileNotFound');
      const note = failClosed
        ? `; requests to HTTPRoute ${routeKey} under ${basePath} fail closed (500) until the document is fixed`
        : '';
      ctx.setStatus(def, {
        conditions: [
          c.make('Accepted', false, problem.reason, `${problem.message}${note}`),
          resolvedRefs,
        ],
      });
      if (failClosed)
        out.push({
          namespace: ns,
          name: def.metadata.name,
          route: routeKey,
          spec: {
            source: source.ir,
            basePath,
            enforcement: def.spec.enforcement,
            publish: def.spec.publish,
            invalid: problem,
          } satisfies ApiDefinitionSpecIR,
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
  markReservedPaths(ctx, routes, out);
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
  const errors = validateOpenApiDocument(doc);
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

// ---------------------------------------------------------------------------------------------
// The document check: the shape meshgate relies on (above), then the OpenAPI JSON Schema of the
// document's version, then every $ref, then (3.1) each Schema Object against JSON Schema 2020-12.

/** How many problems a condition message names before "and N more". */
const MAX_REPORTED = 3;

/**
 * Everything wrong with an OpenAPI 3.0/3.1 document, as `document…: message` lines; [] when it
 * can be published and enforced. Also used by the gateway for documents it fetches at run time.
 */
export function validateOpenApiDocument(doc: unknown): string[] {
  const basic = checkOpenApiDocument(doc);
  if (basic.length > 0) return basic;
  const d = doc as Record<string, unknown>;
  const is31 = (d.openapi as string).startsWith('3.1.');
  for (const check of [oasSchemaErrors, refErrors, is31 ? schemaObjectErrors : () => []]) {
    const errors = check(d, is31);
    if (errors.length > 0) return capped(errors);
  }
  return [];
}

function capped(errors: string[]): string[] {
  const unique = [...new Set(errors)];
  if (unique.length <= MAX_REPORTED) return unique;
  return [...unique.slice(0, MAX_REPORTED), `and ${unique.length - MAX_REPORTED} more`];
}

type AjvClass = typeof Ajv2020Module.default;
const Ajv2020 = Ajv2020Module.default;
const Ajv04 = Ajv04Module.default as unknown as AjvClass;
const addFormats = addFormatsModule.default;

let oasValidators: { v30: ValidateFunction; v31: ValidateFunction } | undefined;
let schemaChecker: InstanceType<AjvClass> | undefined;

/**
 * The official OAS 3.0 and 3.1 schemas as @seriousme/openapi-schema-validator maintains them for
 * ajv (3.0 is draft-04, 3.1 is 2020-12); compiled once, on the first document.
 */
function oasSchemaValidators(): { v30: ValidateFunction; v31: ValidateFunction } {
  if (oasValidators) return oasValidators;
  const require = createRequire(import.meta.url);
  const load = (v: string) =>
    JSON.parse(
      readFileSync(
        require.resolve(`@seriousme/openapi-schema-validator/schemas/v${v}/schema.json`),
        'utf8',
      ),
    ) as Record<string, unknown>;
  const make = (Ajv: AjvClass) => {
    const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
    addFormats(ajv);
    ajv.addFormat('media-range', true);
    return ajv;
  };
  oasValidators = {
    v30: make(Ajv04).compile(load('3.0')),
    v31: make(Ajv2020).compile(load('3.1')),
  };
  return oasValidators;
}

function oasSchemaErrors(doc: Record<string, unknown>, is31: boolean): string[] {
  const validators = oasSchemaValidators();
  const validate = is31 ? validators.v31 : validators.v30;
  if (validate(doc)) return [];
  return mostSpecific(validate.errors ?? []).map(
    (e) => `${documentPointer(e.instancePath)}: ${ajvMessage(e)}`,
  );
}

/**
 * ajv reports every branch of a oneOf/anyOf that failed; the errors at the deepest location say
 * what is actually wrong, so only those are kept (combinator summaries dropped when others remain).
 */
function mostSpecific(errors: readonly ErrorObject[]): ErrorObject[] {
  const depth = (e: ErrorObject) => (e.instancePath === '' ? 0 : e.instancePath.split('/').length);
  const deepest = Math.max(...errors.map(depth));
  const atDeepest = errors.filter((e) => depth(e) === deepest);
  const summaries = new Set(['oneOf', 'anyOf', 'if', 'not', 'false schema']);
  // "required property $ref" is the Reference Object alternative of a oneOf: never the point.
  const real = atDeepest.filter(
    (e) =>
      !summaries.has(e.keyword) &&
      !(
        e.keyword === 'required' &&
        (e.params as { missingProperty?: string }).missingProperty === '$ref'
      ),
  );
  return real.length > 0 ? real : atDeepest;
}

function ajvMessage(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties' || e.keyword === 'unevaluatedProperties')
    return `property "${String(p.additionalProperty ?? p.unevaluatedProperty)}" is not allowed`;
  if (e.keyword === 'required')
    return `required property "${String(p.missingProperty)}" is missing`;
  if (e.keyword === 'enum')
    return `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  return e.message ?? e.keyword;
}

/** `document#/paths/~1orders/get`: a JSON pointer into the document (RFC 6901). */
function documentPointer(pointer: string): string {
  return pointer === '' ? 'document' : `document#${pointer}`;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The value a local JSON pointer ("/a/b", without "#") names, or undefined. */
export function resolvePointer(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  let node: unknown = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!node || typeof node !== 'object' || !Object.prototype.hasOwnProperty.call(node, key))
      return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Keys whose values are literal data, never OpenAPI or Schema objects. */
const LITERAL_KEYS = new Set(['example', 'default', 'enum', 'const']);

/**
 * Every $ref must point inside the document: meshgate neither reads other files nor fetches URLs
 * when it loads config, so an external reference is refused with a hint to bundle.
 */
function refErrors(doc: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (node: unknown, pointer: string, parentKey: string): void => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      if (parentKey === 'examples') return; // 3.1 schema `examples`: literal values
      node.forEach((v, i) => walk(v, `${pointer}/${i}`, ''));
      return;
    }
    const o = node as Record<string, unknown>;
    if (typeof o.$ref === 'string') {
      const ref = o.$ref;
      const at = `${documentPointer(pointer)}/$ref`;
      if (!ref.startsWith('#'))
        out.push(
          `${at}: external reference "${ref}" is not supported; bundle the document into one file`,
        );
      else if (ref.length > 1 && !ref.startsWith('#/'))
        out.push(`${at}: "${ref}" is an anchor; only JSON pointers (#/…) are supported`);
      else if (resolvePointer(doc, ref.slice(1)) === undefined)
        out.push(`${at}: "${ref}" does not resolve to anything in the document`);
    }
    for (const [k, v] of Object.entries(o)) {
      if (LITERAL_KEYS.has(k) || (k === 'value' && parentKey === 'example-object')) continue;
      walk(v, `${pointer}/${escapePointer(k)}`, parentKey === 'examples' ? 'example-object' : k);
    }
  };
  walk(doc, '', '');
  return out;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * The OAS 3.1 schema leaves Schema Objects unchecked ("without Schema Object validation"); they
 * are JSON Schema 2020-12, so each one is checked against the 2020-12 meta-schema here.
 */
function schemaObjectErrors(doc: Record<string, unknown>): string[] {
  schemaChecker ??= new Ajv2020({ strict: false, allErrors: true, logger: false });
  const checker = schemaChecker;
  const out: string[] = [];
  for (const [pointer, schema] of schemaObjects(doc)) {
    if (typeof schema === 'boolean') continue;
    if (!checker.validateSchema(schema as Record<string, unknown>))
      for (const e of mostSpecific(checker.errors ?? []))
        out.push(`${documentPointer(pointer + e.instancePath)}: ${ajvMessage(e)}`);
  }
  return out;
}

/** Where a document holds Schema Objects: components, parameters, bodies, responses, headers. */
function schemaObjects(doc: Record<string, unknown>): [string, unknown][] {
  const out: [string, unknown][] = [];
  const obj = (v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  const entries = (v: unknown) => Object.entries(obj(v) ?? {});
  const content = (c: unknown, at: string) => {
    for (const [type, media] of entries(c))
      if (obj(media)?.schema !== undefined)
        out.push([`${at}/content/${escapePointer(type)}/schema`, obj(media)?.schema]);
  };
  const parameter = (p: unknown, at: string) => {
    if (obj(p)?.schema !== undefined) out.push([`${at}/schema`, obj(p)?.schema]);
    content(obj(p)?.content, at);
  };
  const response = (r: unknown, at: string) => {
    content(obj(r)?.content, at);
    for (const [h, header] of entries(obj(r)?.headers))
      parameter(header, `${at}/headers/${escapePointer(h)}`);
  };
  for (const [path, item] of entries(doc.paths)) {
    const at = `/paths/${escapePointer(path)}`;
    (obj(item)?.parameters as unknown[] | undefined)?.forEach?.((p, i) =>
      parameter(p, `${at}/parameters/${i}`),
    );
    for (const method of HTTP_METHODS) {
      const op = obj(obj(item)?.[method]);
      if (!op) continue;
      (op.parameters as unknown[] | undefined)?.forEach?.((p, i) =>
        parameter(p, `${at}/${method}/parameters/${i}`),
      );
      content(obj(op.requestBody)?.content, `${at}/${method}/requestBody`);
      for (const [code, r] of entries(op.responses))
        response(r, `${at}/${method}/responses/${escapePointer(code)}`);
    }
  }
  const components = obj(doc.components);
  for (const [name, s] of entries(components?.schemas))
    out.push([`/components/schemas/${escapePointer(name)}`, s]);
  for (const [name, p] of entries(components?.parameters))
    parameter(p, `/components/parameters/${escapePointer(name)}`);
  for (const [name, h] of entries(components?.headers))
    parameter(h, `/components/headers/${escapePointer(name)}`);
  for (const [name, b] of entries(components?.requestBodies))
    content(obj(b)?.content, `/components/requestBodies/${escapePointer(name)}`);
  for (const [name, r] of entries(components?.responses))
    response(r, `/components/responses/${escapePointer(name)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The /apis prefix. On a listener where an API is published, GET /apis… is meshgate's (catalog,
// documents, docs pages): predictable URLs matter more than a user route there, and the user
// opted in by publishing. A route on that listener whose matches reach /apis is told so.

export const API_PORTAL_PREFIX = '/apis';

export const PATHS_RESERVED_CONDITION = 'meshgate.io/PathsReserved';

function markReservedPaths(
  ctx: CompileContext,
  routes: CompiledRoutes,
  apis: readonly ApiDefinitionIR[],
): void {
  const publishing = new Map<string, string[]>();
  for (const api of apis)
    if (
      (api.spec as ApiDefinitionSpecIR).publish.enabled &&
      !(api.spec as ApiDefinitionSpecIR).invalid
    )
      publishing.set(api.route, [
        ...(publishing.get(api.route) ?? []),
        `${api.namespace}/${api.name}`,
      ]);
  if (publishing.size === 0) return;
  const listeners = new Map<string, { gateway: string; listener: string; apis: string[] }>();
  for (const site of routes.attachments) {
    if (site.kind !== 'listener') continue;
    const names = publishing.get(site.route);
    if (!names) continue;
    const gateway = `${site.gateway.ir.namespace}/${site.gateway.ir.name}`;
    const key = `${gateway}/${site.listener.ir.name}`;
    const entry = listeners.get(key) ?? { gateway, listener: site.listener.ir.name, apis: [] };
    entry.apis.push(...names);
    listeners.set(key, entry);
  }
  const byRoute = new Map(routes.routes.map((r) => [`${r.namespace}/${r.name}`, r]));
  for (const site of routes.attachments) {
    if (site.kind !== 'listener') continue;
    const gateway = site.gateway.ir;
    const reserved = listeners.get(`${gateway.namespace}/${gateway.name}/${site.listener.ir.name}`);
    const route = byRoute.get(site.route);
    if (!reserved || !route || !route.rules.some((r) => r.matches.some(reachesPortal))) continue;
    const resource = ctx.get('HTTPRoute', route.namespace, route.name);
    const status = resource && (ctx.getStatus(resource) as { parents?: RouteParentStatus[] });
    const parent = status?.parents?.find(
      (p) =>
        (p.parentRef.kind ?? 'Gateway') === 'Gateway' &&
        p.parentRef.name === gateway.name &&
        (p.parentRef.namespace ?? route.namespace) === gateway.namespace &&
        (p.parentRef.sectionName === undefined || p.parentRef.sectionName === reserved.listener),
    );
    if (!resource || !parent) continue;
    const apisNamed = [...new Set(reserved.apis)].sort().join(', ');
    const message = `on listener ${reserved.listener}, ${API_PORTAL_PREFIX} and the paths under it are served by meshgate's API catalog (published by ApiDefinition ${apisNamed}); this route does not receive them`;
    const existing = parent.conditions.find((c) => c.type === PATHS_RESERVED_CONDITION);
    if (existing) {
      if (!existing.message.includes(`listener ${reserved.listener},`))
        existing.message += `; ${message}`;
      continue;
    }
    const condition: Condition = ctx
      .conditions(resource)
      .make(PATHS_RESERVED_CONDITION, true, 'ApiCatalog', message);
    parent.conditions.push(condition);
  }
}

/** Whether a route match can take a request for /apis or a path under it. */
function reachesPortal(m: MatchIR): boolean {
  const { type, value } = m.path;
  const under = (p: string) => p === API_PORTAL_PREFIX || p.startsWith(`${API_PORTAL_PREFIX}/`);
  if (type === 'Exact') return under(value);
  if (type === 'PathPrefix') {
    const prefix = value.endsWith('/') ? value.slice(0, -1) : value;
    return prefix === '' || under(prefix) || API_PORTAL_PREFIX.startsWith(`${prefix}/`);
  }
  try {
    const re = new RegExp(`^(?:${value})$`);
    return re.test(API_PORTAL_PREFIX) || re.test(`${API_PORTAL_PREFIX}/x`);
  } catch {
    return false;
  }
}
