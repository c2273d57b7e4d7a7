// Registered sidecars merged into the compiled Services, as Kubernetes' EndpointSlice controller
// would do for Pods: a sidecar belongs to Service S when it is in S's namespace and S's selector
// matches its labels (a Service without a selector gets none: its endpoints are managed by hand).
// For S's port P with targetPort T, the sidecar is an endpoint (address, inboundPort) when T equals
// its appPort. A named targetPort matches no sidecar: a sidecar registers one numbered app port
// and no container port names, so only numbers are compared.
//
// Registered endpoints are sorted, so the merged Services (and the view hashes cut from them) do
// not depend on the order in which sidecars connected: after a control plane restart, the same
// sidecars give the same versions.
//
// After a restart, a reconnecting proxy's view may also keep the sidecar endpoints it already
// knew (`kept`, from its hello) that have not registered again yet: they are merged like
// registered ones, into the Service ports a registered sidecar could join, so a proxy whose peers
// all came back gets the very view (and version) it had.

import { matchesLabels } from '../../shared/config/compile/label-selector.ts';
import type { EndpointIR, ServiceIR } from '../../shared/config/snapshot.ts';
import type { RegisteredEndpoint } from '../../shared/discovery/protocol.ts';
import { workloadSpiffeId } from '../../shared/identity/spiffe.ts';

export interface MeshEndpoint {
  address: string;
  port: number;
  spiffeId: string;
}

export interface MergedServices {
  /** The snapshot's Services, each port's endpoints static first, then registered sidecars. */
  services: ServiceIR[];
  /** "namespace/name:port" (a Service port) → its sidecar endpoints, with their identities. */
  meshEndpoints: Record<string, MeshEndpoint[]>;
}

/** "namespace/name:port" of a Service port, the key of ProxyView.meshEndpoints. */
export function servicePortKey(service: { namespace: string; name: string }, port: number): string {
  return `${service.namespace}/${service.name}:${port}`;
}

function compareEndpoints(a: RegisteredEndpoint, b: RegisteredEndpoint): number {
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  if (a.port !== b.port) return a.port - b.port;
  return a.proxyId < b.proxyId ? -1 : a.proxyId > b.proxyId ? 1 : 0;
}

/** By address and port only; a stable sort keeps registered entries before kept ones. */
function compareAddresses(a: MeshEndpoint, b: MeshEndpoint): number {
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  return a.port - b.port;
}

export function mergeRegisteredEndpoints(
  services: readonly ServiceIR[],
  registered: readonly RegisteredEndpoint[],
  trustDomain: string,
  kept?: Readonly<Record<string, readonly MeshEndpoint[]>>,
): MergedServices {
  const sorted = [...registered].sort(compareEndpoints);
  const meshEndpoints: Record<string, MeshEndpoint[]> = {};
  const merged = services.map((svc) => {
    const selector = svc.selector;
    if (!selector || Object.keys(selector).length === 0) return svc;
    const members = sorted.filter(
      (r) => r.namespace === svc.namespace && matchesLabels(selector, r.labels),
    );
    if (members.length === 0 && !kept) return svc;
    let changed = false;
    const ports = svc.ports.map((p) => {
      if (typeof p.targetPort !== 'number') return p;
      const key = servicePortKey(svc, p.port);
      let sidecars: MeshEndpoint[] = members
        .filter((r) => r.appPort === p.targetPort)
        .map((r) => ({
          address: r.address,
          port: r.port,
          spiffeId: workloadSpiffeId({
            namespace: r.namespace,
            serviceAccount: r.serviceAccount,
            trustDomain,
          }),
        }));
      const keptHere = kept?.[key];
      if (keptHere?.length) sidecars = [...sidecars, ...keptHere].sort(compareAddresses);
      if (sidecars.length === 0) return p;
      changed = true;
      const seen = new Set(p.endpoints.map((e) => `${e.address}:${e.port}`));
      const endpoints: EndpointIR[] = [...p.endpoints];
      const mesh: MeshEndpoint[] = [];
      for (const m of sidecars) {
        const id = `${m.address}:${m.port}`;
        if (mesh.some((x) => `${x.address}:${x.port}` === id)) continue;
        mesh.push({ address: m.address, port: m.port, spiffeId: m.spiffeId });
        if (seen.has(id)) continue;
        seen.add(id);
        endpoints.push({ address: m.address, port: m.port });
      }
      meshEndpoints[key] = mesh;
      return { ...p, endpoints };
    });
    return changed ? { ...svc, ports } : svc;
  });
  return { services: merged, meshEndpoints };
}
