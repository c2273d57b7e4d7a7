// The endpoints of a Service port as a mesh client sees them: the sidecars the control plane
// lists in `meshEndpoints` are reached over mTLS (origin https://…) and must prove the SPIFFE id
// listed for them; every other endpoint (a static EndpointSlice: a workload without a sidecar) is
// plain HTTP. Used by the sidecar's outbound and by the edge gateway when it joins the mesh.

import { endpointOrigin, type Endpoint } from '../backend/endpoint-set.ts';
import type { ServiceIR } from '../config/snapshot.ts';
import type { ProxyView } from '../discovery/protocol.ts';

export interface ServiceEndpoint extends Endpoint {
  /** Set for a sidecar: the identity its certificate must carry. */
  spiffeId?: string;
}

export type MeshEndpoints = ProxyView['meshEndpoints'];

/** "namespace/name:port", the key of `meshEndpoints`. */
export function servicePortKey(namespace: string, name: string, port: number): string {
  return `${namespace}/${name}:${port}`;
}

/**
 * The endpoints of `service`'s `port`. A static endpoint at the address and port of a listed
 * sidecar is that sidecar; listed sidecars the Service's endpoints do not name are added (the
 * control plane lists every registered sidecar there).
 */
export function serviceEndpoints(
  service: ServiceIR | undefined,
  port: number,
  meshEndpoints: MeshEndpoints | undefined,
): ServiceEndpoint[] {
  if (!service) return [];
  const mesh = meshEndpoints?.[servicePortKey(service.namespace, service.name, port)] ?? [];
  const identities = new Map(mesh.map((m) => [`${m.address}|${m.port}`, m.spiffeId]));
  const out: ServiceEndpoint[] = [];
  const seen = new Set<string>();
  for (const e of service.ports.find((p) => p.port === port)?.endpoints ?? []) {
    const key = `${e.address}|${e.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(endpointOf(e.address, e.port, identities.get(key)));
  }
  for (const m of mesh) {
    const key = `${m.address}|${m.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(endpointOf(m.address, m.port, m.spiffeId));
  }
  return out;
}

function endpointOf(address: string, port: number, spiffeId: string | undefined): ServiceEndpoint {
  return spiffeId === undefined
    ? { address, port, origin: endpointOrigin(address, port) }
    : { address, port, origin: endpointOrigin(address, port, 'https'), spiffeId };
}
