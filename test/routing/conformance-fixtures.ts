// Loads upstream Gateway API conformance manifests (../shared/conformance, YAML unchanged) into
// route table entries without the config compiler: just enough of HTTPRoute/Gateway to route
// (defaults, parentRef/sectionName attachment, hostname intersection). The compiler has its own
// golden tests; these tests are about what the matcher does with the result.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { HTTPRouteIR, MatchIR, ValueMatchIR } from '../../shared/config/snapshot.ts';
import { intersectHostnames } from '../../shared/routing/hostname.ts';
import type { RouteTableEntry } from '../../shared/routing/route-table.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const CONFORMANCE_MANIFESTS = resolve(
  here,
  '../../../shared/conformance/gateway-api/manifests',
);

interface Doc {
  kind?: string;
  metadata?: { name?: string; namespace?: string; creationTimestamp?: string };
  spec?: Record<string, unknown>;
}

export function loadManifests(...files: string[]): Doc[] {
  const docs: Doc[] = [];
  for (const f of files) {
    const text = readFileSync(resolve(CONFORMANCE_MANIFESTS, f), 'utf8');
    for (const d of parseAllDocuments(text)) {
      const js = d.toJS() as Doc | null;
      if (js) docs.push(js);
    }
  }
  return docs;
}

interface RawValueMatch {
  type?: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}
interface RawMatch {
  path?: { type?: MatchIR['path']['type']; value?: string };
  method?: string;
  headers?: RawValueMatch[];
  queryParams?: RawValueMatch[];
}
interface RawRule {
  matches?: RawMatch[];
  backendRefs?: { name: string; port?: number }[];
}

function valueMatches(list: RawValueMatch[] | undefined, lower: boolean): ValueMatchIR[] {
  return (list ?? []).map((h) => ({
    type: h.type ?? 'Exact',
    name: lower ? h.name.toLowerCase() : h.name,
    value: h.value,
  }));
}

export function toRouteIR(doc: Doc): HTTPRouteIR {
  const spec = doc.spec ?? {};
  const rules = (spec.rules as RawRule[] | undefined) ?? [{}];
  const route: HTTPRouteIR = {
    namespace: doc.metadata?.namespace ?? 'default',
    name: doc.metadata?.name ?? '',
    hostnames: (spec.hostnames as string[] | undefined) ?? [],
    rules: rules.map((r, index) => ({
      index,
      matches: (r.matches && r.matches.length > 0 ? r.matches : [{}]).map((m) => {
        const match: MatchIR = {
          path: { type: m.path?.type ?? 'PathPrefix', value: m.path?.value ?? '/' },
          headers: valueMatches(m.headers, true),
          queryParams: valueMatches(m.queryParams, false),
        };
        if (m.method) match.method = m.method;
        return match;
      }),
      filters: [],
      backends: (r.backendRefs ?? []).map((b) => ({
        kind: 'Service' as const,
        namespace: doc.metadata?.namespace ?? 'default',
        name: b.name,
        port: b.port ?? 80,
        weight: 1,
        filters: [],
      })),
    })),
  };
  if (doc.metadata?.creationTimestamp) route.creationTimestamp = doc.metadata.creationTimestamp;
  return route;
}

interface RawListener {
  name: string;
  port: number;
  hostname?: string;
}

/**
 * Entries for every listener of `gateway` on `port`, one table per port as a gateway serves it.
 * Routes attach by parentRef name (and sectionName when set); non-intersecting hostnames drop.
 */
export function entriesForGateway(docs: Doc[], gateway: string, port = 80): RouteTableEntry[] {
  const gw = docs.find((d) => d.kind === 'Gateway' && d.metadata?.name === gateway);
  if (!gw) throw new Error(`no Gateway ${gateway}`);
  const listeners = ((gw.spec?.listeners as RawListener[] | undefined) ?? []).filter(
    (l) => l.port === port,
  );
  const entries: RouteTableEntry[] = [];
  for (const doc of docs) {
    if (doc.kind !== 'HTTPRoute') continue;
    const route = toRouteIR(doc);
    const refs = (doc.spec?.parentRefs as { name: string; sectionName?: string }[]) ?? [];
    for (const l of listeners) {
      if (!refs.some((r) => r.name === gateway && (!r.sectionName || r.sectionName === l.name))) {
        continue;
      }
      const hostnames = intersectHostnames(l.hostname, route.hostnames);
      if (hostnames === null) continue;
      entries.push({ route, hostnames, attachment: { listener: l.name } });
    }
  }
  return entries;
}
