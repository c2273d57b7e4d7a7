import type { EndpointSliceBody, ServiceSpec } from '../schemas/kubernetes.ts';
import type { EndpointIR, MeshRouteAttachmentIR, ServiceIR } from '../snapshot.ts';
import type { CompileContext } from './context.ts';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/**
 * Services with their ready endpoints. Kubernetes semantics: a slice belongs to the Service named
 * by its kubernetes.io/service-name label, and the endpoint port for a Service port is the slice
 * port with the same name.
 */
export function compileServices(
  ctx: CompileContext,
  meshAttachments: Map<string, MeshRouteAttachmentIR[]>,
): ServiceIR[] {
  const slicesByService = new Map<string, EndpointSliceBody[]>();
  for (const slice of ctx.list<EndpointSliceBody>('EndpointSlice')) {
    const svc = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = `${slice.metadata.namespace}/${svc}`;
    slicesByService.set(key, [...(slicesByService.get(key) ?? []), slice.spec]);
  }
  return ctx.list<ServiceSpec>('Service').map((svc) => {
    const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
    const slices = slicesByService.get(key) ?? [];
    const ir: ServiceIR = {
      namespace: svc.metadata.namespace,
      name: svc.metadata.name,
      ...(svc.spec.selector ? { selector: svc.spec.selector } : {}),
      ports: (svc.spec.ports ?? []).map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        targetPort: p.targetPort ?? p.port,
        protocol: p.protocol,
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
        endpoints: endpointsFor(slices, p.name ?? ''),
      })),
      meshRoutes: meshAttachments.get(key) ?? [],
    };
    return ir;
  });
}

function endpointsFor(slices: readonly EndpointSliceBody[], portName: string): EndpointIR[] {
  const out: EndpointIR[] = [];
  const seen = new Set<string>();
  for (const slice of slices) {
    const port = slice.ports.find((p) => (p.name ?? '') === portName)?.port;
    if (port === undefined) continue;
    for (const e of slice.endpoints) {
      // An unset ready condition means unknown, which consumers treat as ready.
      if (e.conditions?.ready === false) continue;
      for (const address of e.addresses) {
        const id = `${address}:${port}`;
        if (seen.has(id)) continue;
        seen.add(id);
        out.push({
          address,
          port,
          ...(e.hostname ? { hostname: e.hostname } : {}),
          ...(e.nodeName ? { nodeName: e.nodeName } : {}),
          ...(e.zone ? { zone: e.zone } : {}),
          ...(e.targetRef?.name
            ? {
                targetRef: `${e.targetRef.kind ?? 'Pod'}/${e.targetRef.namespace ?? ''}/${e.targetRef.name}`,
              }
            : {}),
        });
      }
    }
  }
  return out;
}
