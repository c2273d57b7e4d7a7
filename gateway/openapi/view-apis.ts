// The ApiDefinitions of one edge view, compiled once per snapshot: which rules validate requests
// against which document (bindings on CompiledRule.openapi), and what each port publishes under
// /apis (EdgePort.apis). Documents from files or inline are in the snapshot; URL documents come
// from the RemoteDocuments store the view takes over from the previous one.

import { BlockList, isIP } from 'node:net';
import type { ApiDefinitionSpecIR } from '../../shared/config/compile/api-definitions.ts';
import type { SecurityPolicySpec } from '../../shared/config/schemas/envoy-gateway.ts';
import type {
  ApiDefinitionIR,
  ListenerIR,
  RulePoliciesIR,
  Snapshot,
} from '../../shared/config/snapshot.ts';
import { hostnameMatches, normalizeHost } from '../../shared/routing/hostname.ts';
import type { EdgePort, RouteHit } from '../edge-view.ts';
import { CompiledApi } from './compiled-api.ts';
import {
  deriveSecurity,
  NO_SECURITY,
  securedDocument,
  type DerivedSecurity,
} from './published-document.ts';
import {
  loadedDocument,
  RemoteDocuments,
  type FetchTarget,
  type LoadedDocument,
  type RemoteDocument,
} from './remote-documents.ts';

type Json = Record<string, unknown>;

/** One ApiDefinition as the view serves it. */
export class ViewApi {
  /** "namespace/name". */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** "namespace/name" of the HTTPRoute. */
  readonly route: string;
  readonly spec: ApiDefinitionSpecIR;
  private readonly fixed: LoadedDocument | undefined;
  private readonly remote: RemoteDocument | undefined;
  private compiledFor: CompiledApi | undefined;

  constructor(
    ir: ApiDefinitionIR,
    fixed: LoadedDocument | undefined,
    remote: RemoteDocument | undefined,
    previous?: ViewApi,
    private readonly unloaded?: string,
  ) {
    this.key = `${ir.namespace}/${ir.name}`;
    this.namespace = ir.namespace;
    this.name = ir.name;
    this.route = ir.route;
    this.spec = ir.spec as ApiDefinitionSpecIR;
    this.fixed = fixed;
    this.remote = remote;
    this.compiledFor = previous?.compiledFor;
  }

  /** The document now (a URL document may not be fetched yet: undefined, and a fetch starts). */
  document(): LoadedDocument | undefined {
    return this.fixed ?? this.remote?.current();
  }

  /** The document, waiting for a fetch under way. */
  async settledDocument(): Promise<LoadedDocument | undefined> {
    return this.fixed ?? (await this.remote?.settled());
  }

  /** An Enforce definition whose document is broken: its requests fail closed. */
  get invalid(): string | undefined {
    if (this.spec.invalid) return `${this.spec.invalid.reason}: ${this.spec.invalid.message}`;
    return this.unloaded;
  }

  /** Why there is no document (a URL document not fetched yet, or failing). */
  get unavailableReason(): string {
    if (this.remote?.error)
      return `the document at ${this.remote.url} cannot be used: ${this.remote.error}`;
    return `the document at ${this.remote?.url ?? '?'} has not been fetched yet`;
  }

  /** Validators for the current document, compiled once per document version. */
  compiled(): CompiledApi | undefined {
    const doc = this.document();
    if (!doc) return undefined;
    if (this.compiledFor?.hash !== doc.hash)
      this.compiledFor = new CompiledApi(doc.hash, doc.document);
    return this.compiledFor;
  }
}

/** A rule's link to an enforced API (CompiledRule.openapi holds them, longest base path first). */
export interface OpenApiBinding {
  api: ViewApi;
  basePath: string;
  /** basePath without its trailing "/" ("" for "/"), for the prefix test on the request path. */
  prefix: string;
  mode: 'ReportOnly' | 'Enforce';
  maxBodyBytes: number;
}

/** One API as published on one listener. */
export interface PublishedApi {
  /** The name in its URLs, /apis/ID/…: the ApiDefinition's name, or namespace.name when two share it. */
  id: string;
  api: ViewApi;
  /** Hosts it is published for (the route attachment's); empty: every host of the listener. */
  hostnames: string[];
  /** The document with derived security, for one document version (servers set per request). */
  secured(): { doc: LoadedDocument; published: Json } | undefined;
}

export interface ListenerPortal {
  listener: ListenerIR;
  apis: PublishedApi[];
  /** Whether X-Forwarded-Proto/Host may name the public URL (a ClientTrafficPolicy trusts proxies in front). */
  trustsForwarded(peer: string): boolean;
}

/** What a port serves under /apis: one portal per listener that publishes an API. */
export class ApiPortal {
  constructor(private readonly listeners: ListenerPortal[]) {}

  /**
   * The listener that takes a Host (its most specific hostname that matches), if it publishes
   * anything; undefined leaves /apis to the routes of that host.
   */
  forHost(host: string): ListenerPortal | undefined {
    const name = normalizeHost(host);
    let best: ListenerPortal | undefined;
    let bestScore = -1;
    for (const l of this.listeners) {
      const h = l.listener.hostname;
      const score = !h ? 0 : h.startsWith('*.') ? h.length : h.length + 1000;
      if ((!h || hostnameMatches(h, name)) && score > bestScore) {
        best = l;
        bestScore = score;
      }
    }
    return best;
  }
}

export class ViewApis {
  readonly byKey = new Map<string, ViewApi>();

  constructor(readonly remote: RemoteDocuments) {}
}

export interface ViewApisInput {
  snapshot: Snapshot;
  ports: ReadonlyMap<number, EdgePort>;
  problems: string[];
}

/** Builds the view's APIs: sets CompiledRule.openapi and EdgePort.apis. */
export function compileViewApis(view: ViewApisInput, previous: ViewApis | undefined): ViewApis {
  const out = new ViewApis(previous?.remote ?? new RemoteDocuments());
  const { snapshot } = view;
  if (snapshot.apis.length === 0) {
    out.remote.retain(new Set());
    return out;
  }
  // Each route's attachments, on every port and listener of this view.
  const hitsByRoute = new Map<string, RouteHit[]>();
  for (const port of view.ports.values())
    for (const hit of port.routes)
      hitsByRoute.set(hit.attachment.route, [
        ...(hitsByRoute.get(hit.attachment.route) ?? []),
        hit,
      ]);

  const remoteIds = new Set<string>();
  for (const ir of snapshot.apis) {
    const spec = ir.spec as ApiDefinitionSpecIR;
    const key = `${ir.namespace}/${ir.name}`;
    let remote: RemoteDocument | undefined;
    let fixed: LoadedDocument | undefined;
    let unloaded: string | undefined;
    // spec.invalid: nothing to load; the status says why its requests fail closed.
    if (spec.document) fixed = loadedDocument(spec.document);
    else if (spec.source.type === 'URL') {
      const url = spec.source.url;
      remoteIds.add(`${key} ${url}`);
      const hits = hitsByRoute.get(ir.route) ?? [];
      remote = out.remote.get(key, url, () => fetchTarget(url, hits));
    } else if (!spec.invalid) {
      // A file the compiler was given no reader for: not published; Enforce fails closed.
      unloaded = `the document ${spec.source.type === 'File' ? spec.source.file : ''} was not loaded with the config`;
      view.problems.push(`ApiDefinition ${key}: ${unloaded}`);
    }
    const api = new ViewApi(ir, fixed, remote, previous?.byKey.get(key), unloaded);
    out.byKey.set(key, api);
    if (fixed && spec.enforcement.mode !== 'Off') {
      const compiled = api.compiled();
      for (const p of compiled?.problems ?? []) view.problems.push(`ApiDefinition ${key}: ${p}`);
    }
    if (remote) remote.current(); // fetch now, so the API is published soon after the view
  }
  out.remote.retain(remoteIds);

  // Enforcement: bind every rule of an API's route, longest base path first.
  for (const api of out.byKey.values()) {
    if (api.spec.enforcement.mode === 'Off') continue;
    for (const hit of hitsByRoute.get(api.route) ?? [])
      for (const rule of hit.rules) {
        const binding: OpenApiBinding = {
          api,
          basePath: api.spec.basePath,
          prefix: api.spec.basePath.replace(/\/+$/, ''),
          mode: api.spec.enforcement.mode,
          maxBodyBytes: api.spec.enforcement.maxBodyBytes,
        };
        rule.openapi = [...(rule.openapi ?? []), binding].sort(
          (a, b) => b.prefix.length - a.prefix.length,
        );
      }
  }

  // Publishing: per port, per listener that carries a published API's route.
  const names = new Map<string, number>();
  for (const port of view.ports.values()) {
    const portals: ListenerPortal[] = [];
    for (const listener of port.listeners) {
      const hits = port.routes.filter((h) => h.listener === listener);
      const apis = [...out.byKey.values()].filter(
        (a) =>
          a.spec.publish.enabled &&
          a.invalid === undefined &&
          hits.some((h) => h.attachment.route === a.route),
      );
      if (apis.length === 0) continue;
      names.clear();
      for (const a of apis) names.set(a.name, (names.get(a.name) ?? 0) + 1);
      portals.push({
        listener,
        trustsForwarded: forwardedTrust(snapshot, listener),
        apis: apis.map((api) => {
          const hit = hits.find((h) => h.attachment.route === api.route) as RouteHit;
          return publishedApi(
            (names.get(api.name) ?? 0) > 1 ? `${api.namespace}.${api.name}` : api.name,
            api,
            hit,
            port,
            snapshot,
          );
        }),
      });
    }
    if (portals.length > 0) port.apis = new ApiPortal(portals);
  }
  return out;
}

function publishedApi(
  id: string,
  api: ViewApi,
  hit: RouteHit,
  port: EdgePort,
  snapshot: Snapshot,
): PublishedApi {
  const hostnames = hit.attachment.hostnames.length
    ? hit.attachment.hostnames
    : hit.listener.hostname
      ? [hit.listener.hostname]
      : [];
  let cache: { doc: LoadedDocument; published: Json } | undefined;
  return {
    id,
    api,
    hostnames,
    secured() {
      const doc = api.document();
      if (!doc) return undefined;
      if (cache?.doc.hash !== doc.hash)
        cache = {
          doc,
          published: securedDocument(doc.document, (method, template) =>
            operationSecurity(api, hit, port, snapshot, hostnames, method, template),
          ),
        };
      return cache;
    },
  };
}

/**
 * The SecurityPolicy of the rule that would take an operation: its path under the base path
 * (parameters filled with a sample value) through the port's own route table. When another
 * route would take it, or a header match keeps it from matching, the route's first rule decides.
 */
function operationSecurity(
  api: ViewApi,
  hit: RouteHit,
  port: EdgePort,
  snapshot: Snapshot,
  hostnames: string[],
  method: string,
  template: string,
): DerivedSecurity {
  const base = api.spec.basePath.endsWith('/') ? api.spec.basePath.slice(0, -1) : api.spec.basePath;
  const path = `${base}${template.replace(/\{[^}]+\}/g, 'x')}` || '/';
  const host = (hostnames[0] ?? 'meshgate.invalid').replace(/^\*\./, 'x.');
  const m = port.table.match({
    host,
    method,
    path,
    headers: () => undefined,
    query: () => undefined,
  });
  const ruleIndex = m && m.entry.attachment === hit ? m.ruleIndex : 0;
  const policies: RulePoliciesIR = hit.attachment.rules[ruleIndex] ?? {};
  const security = policies.securityPolicy
    ? snapshot.effectivePolicies[policies.securityPolicy]
    : undefined;
  const introspection = policies.tokenIntrospectionPolicy
    ? snapshot.effectivePolicies[policies.tokenIntrospectionPolicy]
    : undefined;
  if (!security && !introspection) return NO_SECURITY;
  const introspectionSpec = introspection?.spec as (Json & { invalid?: unknown }) | undefined;
  return deriveSecurity(
    security?.spec as SecurityPolicySpec | undefined,
    [...(security?.sources ?? []), ...(introspection?.sources ?? [])],
    introspectionSpec && !introspectionSpec.invalid ? introspectionSpec : undefined,
  );
}

/**
 * A path URL is fetched from one of the route's endpoints (the route's first rule that has a
 * ready one), with the route's first concrete hostname as Host; an absolute URL as it is.
 */
function fetchTarget(url: string, hits: readonly RouteHit[]): ReturnType<FetchTarget> {
  if (!url.startsWith('/')) return { url };
  for (const hit of hits)
    for (const rule of hit.rules) {
      if (!rule.hasBackends) continue;
      const backend = rule.backends.pick(Math.random);
      const endpoint = backend && !backend.invalid ? backend.endpoints.pick() : undefined;
      if (!endpoint) continue;
      const host = hit.attachment.hostnames.find((h) => !h.startsWith('*'));
      return { url: `${endpoint.origin}${url}`, ...(host ? { host } : {}) };
    }
  return `no ready endpoint of the route serves ${url}`;
}

/**
 * ClientTrafficPolicy clientIPDetection.xForwardedFor is how a user says proxies sit in front of
 * the gateway; then their X-Forwarded-Proto and -Host name the public URL (trustedCIDRs: only
 * from a peer in them). Without it those headers are the client's word and are not used.
 */
function forwardedTrust(snapshot: Snapshot, listener: ListenerIR): (peer: string) => boolean {
  const gateway = snapshot.gateways.find((g) => g.listeners.includes(listener));
  const id = listener.clientTrafficPolicy ?? gateway?.clientTrafficPolicy;
  const spec = id
    ? (snapshot.effectivePolicies[id]?.spec as
        | {
            clientIPDetection?: {
              xForwardedFor?: { numTrustedHops?: number; trustedCIDRs?: string[] };
            };
          }
        | undefined)
    : undefined;
  const xff = spec?.clientIPDetection?.xForwardedFor;
  if (!xff) return () => false;
  if (!xff.trustedCIDRs?.length) {
    const hops = xff.numTrustedHops ?? 0;
    return () => hops > 0;
  }
  const trusted = new BlockList();
  for (const cidr of xff.trustedCIDRs) {
    const [net, bits] = cidr.split('/') as [string, string];
    trusted.addSubnet(net, Number(bits), isIP(net) === 6 ? 'ipv6' : 'ipv4');
  }
  return (peer) => {
    const ip = peer.startsWith('::ffff:') && isIP(peer.slice(7)) === 4 ? peer.slice(7) : peer;
    return isIP(ip) !== 0 && trusted.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
  };
}
