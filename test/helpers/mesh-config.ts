// YAML builders for mesh tests: Services whose targetPort is a test app's port (so the sidecar
// fronting that app registers as its endpoint), static EndpointSlices, GAMMA routes and Istio
// security policies.

export function serviceYaml(options: {
  name: string;
  namespace: string;
  /** Default { app: name }; null: a Service without selector (endpoints from slices). */
  selector?: Record<string, string> | null;
  port?: number;
  targetPort: number;
}): string {
  const selector =
    options.selector === null
      ? ''
      : `  selector: { ${Object.entries(options.selector ?? { app: options.name })
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')} }\n`;
  return `apiVersion: v1
kind: Service
metadata: { name: ${options.name}, namespace: ${options.namespace} }
spec:
${selector}  ports: [{ name: http, port: ${options.port ?? 9080}, targetPort: ${options.targetPort} }]
`;
}

/** A static EndpointSlice for a Service without sidecar: a plain HTTP endpoint on loopback. */
export function endpointSliceYaml(options: {
  service: string;
  namespace: string;
  port: number;
  address?: string;
}): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${options.service}-static
  namespace: ${options.namespace}
  labels: { kubernetes.io/service-name: ${options.service} }
addressType: IPv4
ports: [{ name: http, port: ${options.port} }]
endpoints: [{ addresses: ["${options.address ?? '127.0.0.1'}"] }]
`;
}

export function joinYaml(...docs: string[]): string {
  return docs.map((d) => d.trimEnd()).join('\n---\n') + '\n';
}
