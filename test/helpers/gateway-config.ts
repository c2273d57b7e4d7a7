// Builds config sets for gateway tests: a GatewayClass, Gateways, routes, and Services whose
// EndpointSlices point at test upstreams on 127.0.0.1.

import { httpRouteYaml } from './config-folder.ts';

export const GATEWAY_CLASS = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: meshgate }
spec: { controllerName: meshgate.io/gateway-controller }
`;

/** A Service named `name` in `namespace` with port 80 whose one endpoint is 127.0.0.1:`port`. */
export function serviceYaml(
  namespace: string,
  name: string,
  port: number,
  servicePort = 80,
): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  ports: [{ name: http, port: ${servicePort} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: ${namespace}
  labels: { kubernetes.io/service-name: ${name} }
addressType: IPv4
ports: [{ name: http, port: ${port} }]
endpoints: [{ addresses: ["127.0.0.1"] }]
`;
}

export function gatewayYaml(namespace: string, name: string, listeners: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  gatewayClassName: meshgate
  listeners:
${listeners}
`;
}

export function docs(...parts: string[]): string {
  return parts.map((p) => p.trim()).join('\n---\n');
}

/**
 * A Service with one endpoint per upstream port, all on 127.0.0.1: one EndpointSlice per
 * endpoint, since a slice's port applies to all of its addresses.
 */
export function multiEndpointServiceYaml(
  namespace: string,
  name: string,
  ports: readonly number[],
  servicePort = 80,
): string {
  const slices = ports.map(
    (port, i) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-${i}
  namespace: ${namespace}
  labels: { kubernetes.io/service-name: ${name} }
addressType: IPv4
ports: [{ name: http, port: ${port} }]
endpoints: [{ addresses: ["127.0.0.1"] }]
`,
  );
  return docs(
    `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  ports: [{ name: http, port: ${servicePort} }]
`,
    ...slices,
  );
}

/** Gateway default/edge (HTTP on 8080) routing every request to Service default/web on `webPort`. */
export function webGatewayFiles(webPort: number): Record<string, string> {
  return {
    'gateway.yaml': docs(
      GATEWAY_CLASS,
      gatewayYaml('default', 'edge', '    - { name: http, port: 8080, protocol: HTTP }'),
    ),
    'services.yaml': serviceYaml('default', 'web', webPort),
    'routes.yaml': httpRouteYaml({ name: 'web', gateway: 'edge', backend: 'web' }),
  };
}
