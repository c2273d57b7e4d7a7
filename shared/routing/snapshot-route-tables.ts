// Route tables cut from a snapshot: one per Gateway port (its listeners share the port and are
// told apart by hostname, which the table's host groups already do), one per mesh Service port.
// Built once per snapshot and cached, so proxies and `explain` share the same structures.

import type {
  GatewayIR,
  HTTPRouteIR,
  ListenerIR,
  ServiceIR,
  Snapshot,
} from '../config/snapshot.ts';
import {
  compileRouteTable,
  listenerRouteEntries,
  type RouteTable,
  type RouteTableEntry,
} from './route-table.ts';

export interface ListenerAttachment {
  listener: ListenerIR;
  /** Index-aligned with the route's rules (RouteAttachmentIR.rules). */
  attachment: ListenerIR['routes'][number];
}

export interface PortRouteTable {
  port: number;
  protocol: ListenerIR['protocol'];
  listeners: ListenerIR[];
  table: RouteTable<ListenerAttachment>;
}

const routeMaps = new WeakMap<Snapshot, Map<string, HTTPRouteIR>>();

/** Routes by "namespace/name". */
export function routesByKey(snapshot: Snapshot): Map<string, HTTPRouteIR> {
  let m = routeMaps.get(snapshot);
  if (!m) {
    m = new Map(snapshot.routes.map((r) => [`${r.namespace}/${r.name}`, r]));
    routeMaps.set(snapshot, m);
  }
  return m;
}

/** The route tables of one Gateway, one per listener port, in port order. */
export function gatewayRouteTables(snapshot: Snapshot, gateway: GatewayIR): PortRouteTable[] {
  const routes = routesByKey(snapshot);
  const byPort = new Map<number, ListenerIR[]>();
  for (const l of gateway.listeners) byPort.set(l.port, [...(byPort.get(l.port) ?? []), l]);
  return [...byPort.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, listeners]) => {
      const entries: RouteTableEntry<ListenerAttachment>[] = listeners.flatMap((listener) =>
        listenerRouteEntries(listener, routes).map((e) => ({
          ...e,
          attachment: { listener, attachment: e.attachment } satisfies ListenerAttachment,
        })),
      );
      return {
        port,
        protocol: (listeners[0] as ListenerIR).protocol,
        listeners,
        table: compileRouteTable(entries),
      };
    });
}

export interface MeshAttachment {
  service: ServiceIR;
  /** Absent for the default route (a Service without mesh routes sends everything to itself). */
  attachment?: ServiceIR['meshRoutes'][number];
}

/**
 * The mesh route table for calls to one Service port: its GAMMA HTTPRoutes for that port, or,
 * when it has none, a default route that sends every request to the Service itself.
 */
export function meshRouteTable(
  snapshot: Snapshot,
  service: ServiceIR,
  port: number,
): RouteTable<MeshAttachment> {
  const routes = routesByKey(snapshot);
  const attached = service.meshRoutes.filter((a) => a.port === undefined || a.port === port);
  const entries: RouteTableEntry<MeshAttachment>[] = attached.flatMap((a) => {
    const route = routes.get(a.route);
    // GAMMA: the Service is the parent, so hostnames do not narrow which calls the route takes.
    return route
      ? [{ route, hostnames: [], attachment: { service, attachment: a } satisfies MeshAttachment }]
      : [];
  });
  if (entries.length === 0)
    entries.push({
      route: defaultMeshRoute(service, port),
      hostnames: [],
      attachment: { service } satisfies MeshAttachment,
    });
  return compileRouteTable(entries);
}

function defaultMeshRoute(service: ServiceIR, port: number): HTTPRouteIR {
  return {
    namespace: service.namespace,
    name: service.name,
    hostnames: [],
    rules: [
      {
        index: 0,
        matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
        filters: [],
        backends: [
          {
            kind: 'Service',
            namespace: service.namespace,
            name: service.name,
            port,
            weight: 1,
            filters: [],
          },
        ],
      },
    ],
  };
}
