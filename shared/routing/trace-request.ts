// One hypothetical request traced through a snapshot, for `meshgate explain` (and the admin API):
// the listener or mesh Service port that takes it, the rule that wins and why the rules ahead of
// it lost, the filters and policies that apply, and where the request would go.

import type {
  BackendIR,
  EffectivePolicyIR,
  FilterIR,
  GatewayIR,
  ServiceIR,
  Snapshot,
} from '../config/snapshot.ts';
import { parseHostHeader } from './hostname.ts';
import { normalizePath, type PathNormalization } from './normalize-path.ts';
import type { RouteExplanation, RouteMatch, RouteTable } from './route-table.ts';
import {
  gatewayRouteTables,
  meshRouteTable,
  type ListenerAttachment,
  type MeshAttachment,
} from './snapshot-route-tables.ts';

export interface TraceInput {
  /** "namespace/name" of a Gateway, or of a Service for a mesh route. */
  gateway?: string;
  service?: string;
  listener?: string;
  port?: number;
  host: string;
  method?: string;
  /** Path with its query, as a client sends it. */
  path: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

export interface TraceBackend {
  namespace: string;
  name: string;
  port: number;
  weight: number;
  /** Share of the rule's traffic, in percent. */
  percent: number;
  endpoints: { address: string; port: number }[];
  invalid?: string;
}

export interface TraceSkipped {
  route: string;
  rule: number;
  ruleName?: string;
  match: number;
  reasons: string[];
}

export interface TraceResult {
  matched: boolean;
  gateway?: string;
  service?: string;
  port?: number;
  listener?: string;
  request: { host: string; method: string; path: string; query: string };
  route?: string;
  /** Index in the HTTPRoute's spec.rules. */
  rule?: number;
  ruleName?: string;
  match?: number;
  skipped: TraceSkipped[];
  filters: FilterIR[];
  policies: Record<string, { id: string; sources: string[]; spec: unknown }>;
  backends: TraceBackend[];
  /** What the client gets when meshgate answers itself (no route, redirect, invalid backend…). */
  response?: { status: number; reason: string };
  /** Why nothing matched. */
  reasons: string[];
}

export class TraceInputError extends Error {}

export function traceRequest(snapshot: Snapshot, input: TraceInput): TraceResult {
  if (input.gateway) return traceGateway(snapshot, input.gateway, input);
  if (input.service) return traceMesh(snapshot, input.service, input);
  throw new TraceInputError('name a gateway (ns/name) or a service (ns/name)');
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  if (i <= 0 || i === key.length - 1) throw new TraceInputError(`"${key}" is not namespace/name`);
  return [key.slice(0, i), key.slice(i + 1)];
}

function emptyResult(input: TraceInput): TraceResult {
  return {
    matched: false,
    request: {
      host: input.host,
      method: (input.method ?? 'GET').toUpperCase(),
      path: input.path,
      query: '',
    },
    skipped: [],
    filters: [],
    policies: {},
    backends: [],
    reasons: [],
  };
}

function policy(
  snapshot: Snapshot,
  id: string | undefined,
): { id: string; sources: string[]; spec: unknown } | undefined {
  if (!id) return undefined;
  const p: EffectivePolicyIR | undefined = snapshot.effectivePolicies[id];
  return p ? { id, sources: p.sources, spec: p.spec } : undefined;
}

function traceGateway(snapshot: Snapshot, key: string, input: TraceInput): TraceResult {
  const [ns, name] = splitKey(key);
  const gateway: GatewayIR | undefined = snapshot.gateways.find(
    (g) => g.namespace === ns && g.name === name,
  );
  const result = emptyResult(input);
  result.gateway = key;
  if (!gateway) {
    const known = snapshot.gateways.map((g) => `${g.namespace}/${g.name}`);
    throw new TraceInputError(
      `Gateway ${key} is not in the snapshot (not found, not meshgate's, or not accepted); gateways: ${known.join(', ') || 'none'}`,
    );
  }
  const tables = gatewayRouteTables(snapshot, gateway);
  const hostPort = parseHostHeader(input.host)?.port;
  let port = input.port;
  if (input.listener) {
    const l = gateway.listeners.find((x) => x.name === input.listener);
    if (!l)
      throw new TraceInputError(
        `Gateway ${key} has no ready listener "${input.listener}"; listeners: ${gateway.listeners.map((x) => x.name).join(', ')}`,
      );
    port = l.port;
  }
  port ??= tables.length === 1 ? tables[0]?.port : tables.find((t) => t.port === hostPort)?.port;
  const table = tables.find((t) => t.port === port);
  if (!table)
    throw new TraceInputError(
      port === undefined
        ? `Gateway ${key} listens on ports ${tables.map((t) => t.port).join(', ')}: pass --port or --listener`
        : `Gateway ${key} has no ready listener on port ${port}`,
    );
  result.port = table.port;
  const ctpId =
    table.listeners.find((l) => l.clientTrafficPolicy)?.clientTrafficPolicy ??
    gateway.clientTrafficPolicy;
  const ctp = policy(snapshot, ctpId);
  if (ctp) result.policies.clientTrafficPolicy = ctp;
  const pathSettings = (ctp?.spec as { path?: PathNormalization } | undefined)?.path;
  const explanation = explainWith(table.table, input, result, pathSettings);
  if (!explanation) return result;
  const winner = explanation.winner as RouteMatch<ListenerAttachment> | undefined;
  if (!winner) {
    result.response = { status: 404, reason: 'NR: no route matches' };
    return result;
  }
  const { listener, attachment } = winner.entry.attachment as ListenerAttachment;
  result.listener = listener.name;
  const rulePolicies = attachment.rules[winner.ruleIndex] ?? {};
  const sp = policy(snapshot, rulePolicies.securityPolicy);
  if (sp) result.policies.securityPolicy = sp;
  const btp = policy(snapshot, rulePolicies.backendTrafficPolicy);
  if (btp) result.policies.backendTrafficPolicy = btp;
  fillWinner(snapshot, result, winner);
  return result;
}

function traceMesh(snapshot: Snapshot, key: string, input: TraceInput): TraceResult {
  const [ns, name] = splitKey(key);
  const service: ServiceIR | undefined = snapshot.services.find(
    (s) => s.namespace === ns && s.name === name,
  );
  const result = emptyResult(input);
  result.service = key;
  if (!service) throw new TraceInputError(`Service ${key} not found`);
  const hostPort = parseHostHeader(input.host)?.port;
  const port =
    input.port ??
    (service.ports.length === 1
      ? service.ports[0]?.port
      : service.ports.find((p) => p.port === hostPort)?.port);
  if (port === undefined || !service.ports.some((p) => p.port === port))
    throw new TraceInputError(
      `Service ${key} has ports ${service.ports.map((p) => p.port).join(', ') || 'none'}: pass --port`,
    );
  result.port = port;
  const svcPolicy = policy(snapshot, service.backendTrafficPolicy);
  if (svcPolicy) result.policies.backendTrafficPolicy = svcPolicy;
  const explanation = explainWith(
    meshRouteTable(snapshot, service, port),
    input,
    result,
    undefined,
  );
  if (!explanation) return result;
  const winner = explanation.winner as RouteMatch<MeshAttachment> | undefined;
  if (!winner) {
    result.response = { status: 404, reason: 'NR: no mesh route matches' };
    return result;
  }
  const mesh = winner.entry.attachment as MeshAttachment;
  const rulePolicies = mesh.attachment?.rules[winner.ruleIndex] ?? {};
  const btp = policy(snapshot, rulePolicies.backendTrafficPolicy);
  if (btp) result.policies.backendTrafficPolicy = btp;
  fillWinner(snapshot, result, winner);
  if (!mesh.attachment)
    result.reasons.push(
      'no mesh route attaches to this Service port: the default route sends every request to the Service',
    );
  return result;
}

function explainWith(
  table: RouteTable<unknown>,
  input: TraceInput,
  result: TraceResult,
  pathSettings: PathNormalization | undefined,
): RouteExplanation<unknown> | undefined {
  const normalized = normalizePath(input.path, pathSettings ?? {});
  if (!normalized.ok) {
    result.response = { status: 400, reason: `path rejected: ${normalized.reason}` };
    result.reasons.push(`path rejected before routing: ${normalized.reason}`);
    return undefined;
  }
  result.request.path = normalized.path;
  result.request.query = normalized.query;
  if (normalized.redirect) {
    result.response = {
      status: 301,
      reason: `escaped slashes are unescaped: redirect to ${normalized.path}`,
    };
    result.reasons.push(
      'the path holds %2F or %5C and escapedSlashesAction is UnescapeAndRedirect',
    );
    return undefined;
  }
  const explanation = table.explain(normalizeRequest(input, normalized.path, normalized.query));
  for (const step of explanation.steps) {
    if (step.mismatches.length === 0) continue;
    const rule = step.entry.route.rules[step.ruleIndex];
    result.skipped.push({
      route: step.route,
      rule: rule?.index ?? step.ruleIndex,
      ...(rule?.name ? { ruleName: rule.name } : {}),
      match: step.matchIndex,
      reasons: step.mismatches.map((m) => m.message),
    });
  }
  if (!explanation.winner) {
    result.reasons.push(
      explanation.selectedHostname === undefined
        ? `no route takes host "${explanation.host}"`
        : `routes for host ${explanation.selectedHostname} exist, but none matches`,
    );
  }
  return explanation;
}

function normalizeRequest(input: TraceInput, path: string, query: string) {
  const headers = new Map(
    Object.entries(input.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
  );
  const params = new URLSearchParams(query);
  for (const [k, v] of Object.entries(input.query ?? {})) params.append(k, v);
  return {
    host: input.host,
    method: (input.method ?? 'GET').toUpperCase(),
    path,
    headers: (n: string) => headers.get(n),
    query: params,
  };
}

function fillWinner(snapshot: Snapshot, result: TraceResult, winner: RouteMatch<unknown>): void {
  const rule = winner.rule;
  result.matched = true;
  result.route = `${winner.route.namespace}/${winner.route.name}`;
  result.rule = rule.index;
  if (rule.name) result.ruleName = rule.name;
  result.match = winner.matchIndex;
  result.filters = rule.filters;
  const total = rule.backends.reduce((n, b) => n + b.weight, 0);
  result.backends = rule.backends.map((b) => traceBackend(snapshot, b, total));
  result.response = directResponse(rule.filters, rule.backends, result.backends);
}

function traceBackend(snapshot: Snapshot, b: BackendIR, total: number): TraceBackend {
  const svc = snapshot.services.find((s) => s.namespace === b.namespace && s.name === b.name);
  const endpoints =
    svc?.ports
      .find((p) => p.port === b.port)
      ?.endpoints.map((e) => ({ address: e.address, port: e.port })) ?? [];
  return {
    namespace: b.namespace,
    name: b.name,
    port: b.port,
    weight: b.weight,
    percent: total > 0 ? Math.round((b.weight / total) * 1000) / 10 : 0,
    endpoints,
    ...(b.invalid ? { invalid: `${b.invalid.reason}: ${b.invalid.message}` } : {}),
  };
}

/** The answer meshgate gives itself for the winning rule, when it does not forward. */
function directResponse(
  filters: readonly FilterIR[],
  backends: readonly BackendIR[],
  traced: readonly TraceBackend[],
): TraceResult['response'] {
  for (const f of filters) {
    if (f.type === 'DirectResponse') return { status: f.status, reason: f.message };
    if (f.type === 'RequestRedirect')
      return { status: f.statusCode, reason: 'RequestRedirect filter' };
  }
  if (backends.length === 0) return { status: 500, reason: 'the rule has no backendRefs' };
  if (backends.every((b) => b.invalid))
    return { status: 500, reason: 'every backendRef is invalid' };
  if (traced.every((b) => b.invalid || b.endpoints.length === 0))
    return { status: 503, reason: 'UH: no ready endpoint (sidecars register theirs at run time)' };
  return undefined;
}
