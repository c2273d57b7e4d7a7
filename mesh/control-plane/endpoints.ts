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

export function mergeRegisteredEndpoints(
  services: readonly ServiceIR[],
  registered: readonly RegisteredEndpoint[],
  trustDomain: string,
): MergedServices {
  const sorted = [...registered].sort(compareEndpoints);
  const meshEndpoints: Record<string, MeshEndpoint[]> = {};
  const merged = services.map((svc) => {
    const selector = svc.selector;
    if (!selector || Object.keys(selector).length === 0) return svc;
    const members = sorted.filter(
      (r) => r.namespace === svc.namespace && matchesLabels(selector, r.labels),
    );
    if (members.length === 0) return svc;
    let changed = false;
    const ports = svc.ports.map((p) => {
      const sidecars = members.filter(
        (r) => typeof p.targetPort === 'number' && r.appPort === p.targetPort,
      );
      if (sidecars.length === 0) return p;
      changed = true;
      const seen = new Set(p.endpoints.map((e) => `${e.address}:${e.port}`));
      const endpoints: EndpointIR[] = [...p.endpoints];
      const mesh: MeshEndpoint[] = [];
      for (const r of sidecars) {
        const id = `${r.address}:${r.port}`;
        if (mesh.some((m) => `${m.address}:${m.port}` === id)) continue;
        mesh.push({
          address: r.address,
          port: r.port,
          spiffeId: workloadSpiffeId({
            namespace: r.namespace,
            serviceAccount: r.serviceAccount,
            trustDomain,
          }),
        });
        if (seen.has(id)) continue;
        seen.add(id);
        endpoints.push({ address: r.address, port: r.port });
      }
      meshEndpoints[servicePortKey(svc, p.port)] = mesh;
      return { ...p, endpoints };
    });
    return changed ? { ...svc, ports } : svc;
  });
  return { services: merged, meshEndpoints };
}
