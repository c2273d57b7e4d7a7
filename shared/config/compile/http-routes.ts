import { intersectHostnames } from '../../routing/hostname.ts';
import type { Resource } from '../resource.ts';
import { durationToMs } from '../duration.ts';
import {
  GATEWAY_GROUP,
  type HTTPRouteFilter,
  type HTTPRouteRule,
  type HTTPRouteSpec,
  type ParentReference,
} from '../schemas/gateway-api.ts';
import type { ServiceSpec } from '../schemas/kubernetes.ts';
import type {
  FilterIR,
  HeaderModifierIR,
  HTTPRouteIR,
  HTTPRouteRuleIR,
  MatchIR,
  MeshRouteAttachmentIR,
  RouteAttachmentIR,
} from '../snapshot.ts';
import { resolveBackendRef, type RefProblem } from './backends.ts';
import type { Condition, ParentRefStatus, RouteParentStatus } from './conditions.ts';
import { normalizeCoreGroup, type CompileContext } from './context.ts';
import type { CompiledGateway, CompiledListener } from './gateways.ts';
import { matchesLabelSelector } from './label-selector.ts';

export interface CompiledRoutes {
  routes: HTTPRouteIR[];
  /** GAMMA attachments by Service "namespace/name". */
  meshAttachments: Map<string, MeshRouteAttachmentIR[]>;
  /** Where each accepted route is attached: for policy targeting. */
  attachments: RouteAttachmentSite[];
}

export type RouteAttachmentSite =
  | {
      kind: 'listener';
      route: string;
      gateway: CompiledGateway;
      listener: CompiledListener;
      attachment: RouteAttachmentIR;
    }
  | { kind: 'service'; route: string; service: string; attachment: MeshRouteAttachmentIR };

interface RuleOutcome {
  ir?: HTTPRouteRuleIR;
  /** Why the rule was dropped (PartiallyInvalid / Accepted=False). */
  dropped?: string;
  problems: RefProblem[];
}

/** Compiles every HTTPRoute: rules (once), then each parentRef; writes RouteParentStatus per parent. */
export function compileHTTPRoutes(
  ctx: CompileContext,
  gateways: readonly CompiledGateway[],
): CompiledRoutes {
  const out: CompiledRoutes = { routes: [], meshAttachments: new Map(), attachments: [] };
  const gatewaysByKey = new Map(gateways.map((g) => [`${g.ir.namespace}/${g.ir.name}`, g]));

  for (const route of ctx.list<HTTPRouteSpec>('HTTPRoute')) {
    const outcomes = route.spec.rules.map((rule, i) => compileRule(ctx, route, rule, i));
    const rules = outcomes.flatMap((o) => (o.ir ? [o.ir] : []));
    const dropped = outcomes.flatMap((o, i) => (o.dropped ? [`rules[${i}]: ${o.dropped}`] : []));
    const problems = outcomes.flatMap((o) => o.problems);
    const c = ctx.conditions(route);
    const routeKey = `${route.metadata.namespace}/${route.metadata.name}`;
    const ignored = route.unsupported.filter((u) => u.effect === 'ignore');
    const parents: RouteParentStatus[] = [];
    let attachedSomewhere = false;

    for (const parentRef of route.spec.parentRefs ?? []) {
      const result = attachToParent(ctx, route, parentRef, gatewaysByKey, rules.length > 0);
      if (result === 'not-ours') continue;
      const conditions: Condition[] = [];
      if (result.accepted && rules.length === 0) {
        conditions.push(
          c.make('Accepted', false, 'UnsupportedValue', `no valid rule: ${dropped.join('; ')}`),
        );
      } else if (result.accepted) {
        const note = ignored.length
          ? `; ignored: ${ignored.map((u) => `${u.path} (${u.message})`).join('; ')}`
          : '';
        conditions.push(c.make('Accepted', true, 'Accepted', `${result.message}${note}`));
      } else {
        conditions.push(c.make('Accepted', false, result.reason, result.message));
      }
      conditions.push(
        problems.length > 0
          ? c.make(
              'ResolvedRefs',
              false,
              (problems[0] as RefProblem).reason,
              problems.map((p) => p.message).join('; '),
            )
          : c.make('ResolvedRefs', true, 'ResolvedRefs', 'all references are resolved'),
      );
      if (dropped.length > 0 && rules.length > 0)
        conditions.push(
          c.make('PartiallyInvalid', true, 'UnsupportedValue', `dropped ${dropped.join('; ')}`),
        );
      parents.push({
        parentRef: parentRefStatus(parentRef),
        controllerName: ctx.controllerName,
        conditions,
      });

      if (!result.accepted || rules.length === 0) continue;
      attachedSomewhere = true;
      for (const site of result.sites) {
        if (site.kind === 'listener') {
          const attachment: RouteAttachmentIR = {
            route: routeKey,
            hostnames: site.hostnames,
            rules: rules.map(() => ({})),
          };
          site.listener.ir.routes.push(attachment);
          out.attachments.push({
            kind: 'listener',
            route: routeKey,
            gateway: site.gateway,
            listener: site.listener,
            attachment,
          });
        } else {
          const attachment: MeshRouteAttachmentIR = {
            route: routeKey,
            hostnames: route.spec.hostnames ?? [],
            rules: rules.map(() => ({})),
            ...(site.port !== undefined ? { port: site.port } : {}),
          };
          const list = out.meshAttachments.get(site.service) ?? [];
          list.push(attachment);
          out.meshAttachments.set(site.service, list);
          out.attachments.push({
            kind: 'service',
            route: routeKey,
            service: site.service,
            attachment,
          });
        }
      }
    }
    if (parents.length > 0) ctx.setStatus(route, { parents });
    if (attachedSomewhere)
      out.routes.push({
        namespace: route.metadata.namespace,
        name: route.metadata.name,
        ...(route.metadata.creationTimestamp
          ? { creationTimestamp: route.metadata.creationTimestamp }
          : {}),
        hostnames: route.spec.hostnames ?? [],
        rules,
      });
  }
  return out;
}

function parentRefStatus(p: ParentReference): ParentRefStatus {
  return {
    group: p.group,
    kind: p.kind,
    ...(p.namespace ? { namespace: p.namespace } : {}),
    name: p.name,
    ...(p.sectionName ? { sectionName: p.sectionName } : {}),
    ...(p.port ? { port: p.port } : {}),
  };
}

type AttachSite =
  | { kind: 'listener'; gateway: CompiledGateway; listener: CompiledListener; hostnames: string[] }
  | { kind: 'service'; service: string; port?: number };

type AttachResult =
  | 'not-ours'
  | { accepted: true; message: string; sites: AttachSite[] }
  | { accepted: false; reason: string; message: string };

function attachToParent(
  ctx: CompileContext,
  route: Resource<HTTPRouteSpec>,
  ref: ParentReference,
  gateways: Map<string, CompiledGateway>,
  hasRules: boolean,
): AttachResult {
  const ns = ref.namespace ?? route.metadata.namespace;
  const group = normalizeCoreGroup(ref.group);
  if (group === '' && ref.kind === 'Service') return attachToService(ctx, ns, ref);
  if (group !== GATEWAY_GROUP || ref.kind !== 'Gateway') return 'not-ours';

  const gateway = gateways.get(`${ns}/${ref.name}`);
  if (!gateway) {
    // A Gateway of another controller is not ours to report on; a missing one is a dangling reference.
    return ctx.get('Gateway', ns, ref.name)
      ? 'not-ours'
      : {
          accepted: false,
          reason: 'NoMatchingParent',
          message: `Gateway ${ns}/${ref.name} not found`,
        };
  }
  const selected = gateway.listeners.filter(
    (l) =>
      (ref.sectionName === undefined || l.spec.name === ref.sectionName) &&
      (ref.port === undefined || l.spec.port === ref.port),
  );
  if (selected.length === 0) {
    const what = [
      ref.sectionName && `sectionName ${ref.sectionName}`,
      ref.port && `port ${ref.port}`,
    ]
      .filter(Boolean)
      .join(' and ');
    return {
      accepted: false,
      reason: 'NoMatchingParent',
      message: `Gateway ${ns}/${ref.name} has no listener with ${what}`,
    };
  }
  const sites: AttachSite[] = [];
  const refusals = {
    namespace: [] as string[],
    kind: [] as string[],
    hostname: [] as string[],
    notReady: [] as string[],
  };
  for (const l of selected) {
    if (!l.supportedKinds.some((k) => k.group === GATEWAY_GROUP && k.kind === 'HTTPRoute')) {
      refusals.kind.push(l.spec.name);
      continue;
    }
    if (!namespaceAllowed(ctx, gateway, l, route.metadata.namespace)) {
      refusals.namespace.push(l.spec.name);
      continue;
    }
    // Attachment (and attachedRoutes) depends only on allowedRoutes and parentRef, not hostnames.
    if (hasRules) l.attachedRoutes++;
    const hostnames = intersectHostnames(l.spec.hostname, route.spec.hostnames ?? []);
    if (hostnames === null) {
      refusals.hostname.push(l.spec.name);
      continue;
    }
    if (!l.ready) {
      refusals.notReady.push(l.spec.name);
      continue;
    }
    sites.push({ kind: 'listener', gateway, listener: l, hostnames });
  }
  const gw = `Gateway ${ns}/${ref.name}`;
  if (sites.length > 0)
    return {
      accepted: true,
      message: `attached to ${gw} listener${sites.length > 1 ? 's' : ''} ${sites.map((s) => (s.kind === 'listener' ? s.listener.spec.name : '')).join(', ')}`,
      sites,
    };
  if (refusals.hostname.length > 0 && refusals.namespace.length === 0 && refusals.kind.length === 0)
    return {
      accepted: false,
      reason: 'NoMatchingListenerHostname',
      message: `no hostname of the route intersects listener ${refusals.hostname.join(', ')} of ${gw}`,
    };
  if (refusals.namespace.length > 0)
    return {
      accepted: false,
      reason: 'NotAllowedByListeners',
      message: `listener ${refusals.namespace.join(', ')} of ${gw} does not allow routes from namespace ${route.metadata.namespace}`,
    };
  if (refusals.kind.length > 0)
    return {
      accepted: false,
      reason: 'NotAllowedByListeners',
      message: `listener ${refusals.kind.join(', ')} of ${gw} does not allow HTTPRoute`,
    };
  if (refusals.hostname.length > 0)
    return {
      accepted: false,
      reason: 'NoMatchingListenerHostname',
      message: `no hostname of the route intersects listener ${refusals.hostname.join(', ')} of ${gw}`,
    };
  return {
    accepted: false,
    reason: 'NoMatchingParent',
    message: `listener ${refusals.notReady.join(', ')} of ${gw} is not valid; see the Gateway's status`,
  };
}

function namespaceAllowed(
  ctx: CompileContext,
  gateway: CompiledGateway,
  l: CompiledListener,
  routeNamespace: string,
): boolean {
  const ns = l.spec.allowedRoutes.namespaces;
  switch (ns.from) {
    case 'All':
      return true;
    case 'Same':
      return routeNamespace === gateway.ir.namespace;
    case 'None':
      return false;
    case 'Selector':
      return (
        ns.selector !== undefined &&
        matchesLabelSelector(ns.selector, ctx.namespaceLabels(routeNamespace))
      );
  }
}

function attachToService(ctx: CompileContext, ns: string, ref: ParentReference): AttachResult {
  const service = ctx.get<ServiceSpec>('Service', ns, ref.name);
  if (!service)
    return {
      accepted: false,
      reason: 'NoMatchingParent',
      message: `Service ${ns}/${ref.name} not found`,
    };
  if (ref.port !== undefined && !service.spec.ports?.some((p) => p.port === ref.port))
    return {
      accepted: false,
      reason: 'NoMatchingParent',
      message: `Service ${ns}/${ref.name} has no port ${ref.port}`,
    };
  return {
    accepted: true,
    message: `mesh route for Service ${ns}/${ref.name}${ref.port ? ` port ${ref.port}` : ''}`,
    sites: [
      {
        kind: 'service',
        service: `${ns}/${ref.name}`,
        ...(ref.port !== undefined ? { port: ref.port } : {}),
      },
    ],
  };
}

// --- rules ---

const UNSUPPORTED_FILTERS: Partial<Record<HTTPRouteFilter['type'], string>> = {
  ExternalAuth: 'the ExternalAuth filter is not supported; use a SecurityPolicy',
};

function compileRule(
  ctx: CompileContext,
  route: Resource<HTTPRouteSpec>,
  rule: HTTPRouteRule,
  index: number,
): RuleOutcome {
  const rejected = route.unsupported.filter(
    (u) => u.effect === 'reject' && u.path.startsWith(`spec.rules[${index}]`),
  );
  if (rejected.length > 0)
    return {
      dropped: rejected
        .map((u) => `${u.path.slice(`spec.rules[${index}].`.length)}: ${u.message}`)
        .join('; '),
      problems: [],
    };
  for (const f of [
    ...(rule.filters ?? []),
    ...(rule.backendRefs ?? []).flatMap((b) => b.filters ?? []),
  ]) {
    const why = UNSUPPORTED_FILTERS[f.type];
    if (why) return { dropped: why, problems: [] };
  }
  const problems: RefProblem[] = [];
  const where = `rules[${index}]`;
  const filters = compileFilters(ctx, route, rule.filters ?? [], `${where}.filters`, problems);
  const backends = (rule.backendRefs ?? []).map((b, j) => {
    const { backend, problem } = resolveBackendRef(
      ctx,
      route,
      b,
      b.weight,
      `${where}.backendRefs[${j}]`,
    );
    if (problem) problems.push(problem);
    backend.filters = compileFilters(
      ctx,
      route,
      b.filters ?? [],
      `${where}.backendRefs[${j}].filters`,
      problems,
    );
    return backend;
  });
  const matches: MatchIR[] = (
    rule.matches.length > 0 ? rule.matches : [{ path: { type: 'PathPrefix' as const, value: '/' } }]
  ).map((m) => ({
    path: { type: m.path.type, value: m.path.value },
    ...(m.method ? { method: m.method } : {}),
    headers: firstOfEachName(m.headers ?? [], true).map((h) => ({
      type: h.type,
      name: h.name.toLowerCase(),
      value: h.value,
    })),
    queryParams: firstOfEachName(m.queryParams ?? [], false).map((q) => ({
      type: q.type,
      name: q.name,
      value: q.value,
    })),
  }));
  const ir: HTTPRouteRuleIR = {
    index,
    ...(rule.name ? { name: rule.name } : {}),
    matches,
    filters,
    backends,
  };
  if (rule.timeouts) {
    const t: NonNullable<HTTPRouteRuleIR['timeouts']> = {};
    if (rule.timeouts.request !== undefined) t.requestMs = durationToMs(rule.timeouts.request);
    if (rule.timeouts.backendRequest !== undefined)
      t.backendRequestMs = durationToMs(rule.timeouts.backendRequest);
    ir.timeouts = t;
  }
  if (rule.retry) {
    ir.retry = {
      codes: rule.retry.codes ?? [],
      ...(rule.retry.attempts !== undefined ? { attempts: rule.retry.attempts } : {}),
      ...(rule.retry.backoff !== undefined ? { backoffMs: durationToMs(rule.retry.backoff) } : {}),
    };
  }
  return { ir, problems };
}

/** The spec: when several entries name the same header (case-insensitively) or param, only the first counts. */
function firstOfEachName<T extends { name: string }>(
  list: readonly T[],
  caseInsensitive: boolean,
): T[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const k = caseInsensitive ? x.name.toLowerCase() : x.name;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function headerModifier(f: {
  set?: { name: string; value: string }[] | undefined;
  add?: { name: string; value: string }[] | undefined;
  remove?: string[] | undefined;
}): HeaderModifierIR {
  return { set: f.set ?? [], add: f.add ?? [], remove: f.remove ?? [] };
}

function compileFilters(
  ctx: CompileContext,
  route: Resource,
  filters: readonly HTTPRouteFilter[],
  where: string,
  problems: RefProblem[],
): FilterIR[] {
  const out: FilterIR[] = [];
  filters.forEach((f, i) => {
    switch (f.type) {
      case 'RequestHeaderModifier':
        if (f.requestHeaderModifier)
          out.push({
            type: 'RequestHeaderModifier',
            headers: headerModifier(f.requestHeaderModifier),
          });
        break;
      case 'ResponseHeaderModifier':
        if (f.responseHeaderModifier)
          out.push({
            type: 'ResponseHeaderModifier',
            headers: headerModifier(f.responseHeaderModifier),
          });
        break;
      case 'RequestRedirect': {
        const r = f.requestRedirect;
        if (!r) break;
        out.push({
          type: 'RequestRedirect',
          statusCode: r.statusCode,
          ...(r.scheme ? { scheme: r.scheme } : {}),
          ...(r.hostname ? { hostname: r.hostname } : {}),
          ...(r.port ? { port: r.port } : {}),
          ...(r.path ? { path: pathModifier(r.path) } : {}),
        });
        break;
      }
      case 'URLRewrite': {
        const r = f.urlRewrite;
        if (!r) break;
        out.push({
          type: 'URLRewrite',
          ...(r.hostname ? { hostname: r.hostname } : {}),
          ...(r.path ? { path: pathModifier(r.path) } : {}),
        });
        break;
      }
      case 'RequestMirror': {
        const m = f.requestMirror;
        if (!m) break;
        const { backend, problem } = resolveBackendRef(
          ctx,
          route,
          m.backendRef,
          1,
          `${where}[${i}].requestMirror.backendRef`,
        );
        // An unresolvable mirror is dropped (the spec says so); the request itself is unaffected.
        if (problem) {
          problems.push(problem);
          break;
        }
        const fraction = m.fraction
          ? { numerator: m.fraction.numerator, denominator: m.fraction.denominator }
          : { numerator: m.percent ?? 100, denominator: 100 };
        out.push({ type: 'RequestMirror', backend, fraction });
        break;
      }
      case 'CORS': {
        const c = f.cors;
        if (!c) break;
        out.push({
          type: 'CORS',
          allowOrigins: c.allowOrigins ?? [],
          allowCredentials: c.allowCredentials ?? false,
          allowMethods: c.allowMethods ?? [],
          allowHeaders: c.allowHeaders ?? [],
          exposeHeaders: c.exposeHeaders ?? [],
          maxAge: c.maxAge,
        });
        break;
      }
      case 'ExtensionRef': {
        // The spec forbids skipping an unresolved custom filter: the requests it covers fail with 500.
        const e = f.extensionRef;
        problems.push({
          reason: 'InvalidKind',
          message: `${where}[${i}].extensionRef ${e?.group}/${e?.kind} ${e?.name}: meshgate has no extension filters; matching requests get 500`,
        });
        out.push({
          type: 'DirectResponse',
          status: 500,
          message: `unresolved extensionRef ${e?.kind} ${e?.name}`,
        });
        break;
      }
      case 'ExternalAuth':
        break;
    }
  });
  return out;
}

function pathModifier(p: {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string | undefined;
  replacePrefixMatch?: string | undefined;
}) {
  return {
    type: p.type,
    value: (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) ?? '',
  };
}
