// The config folders meshgate's rows run on, generated at bench time: a GatewayClass, a Gateway
// with one HTTP listener, N HTTPRoutes of one PathPrefix rule each, and a Service with an
// EndpointSlice pointing at the nginx upstream.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const NAMESPACE = 'bench';
export const LISTENER_PORT = 8080;

/** `/svc-0001` … `/svc-1000`. */
export function routePrefix(i: number): string {
  return `/svc-${String(i).padStart(4, '0')}`;
}

function gatewayYaml(): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${NAMESPACE}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: meshgate
spec:
  controllerName: meshgate.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: ${NAMESPACE}
spec:
  gatewayClassName: meshgate
  listeners:
    - name: http
      port: ${LISTENER_PORT}
      protocol: HTTP
`;
}

function servicesYaml(upstreamPort: number): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: upstream
  namespace: ${NAMESPACE}
spec:
  ports:
    - name: http
      port: 80
      targetPort: ${upstreamPort}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: upstream
  namespace: ${NAMESPACE}
  labels:
    kubernetes.io/service-name: upstream
addressType: IPv4
ports:
  - name: http
    port: ${upstreamPort}
endpoints:
  - addresses: ['127.0.0.1']
`;
}

function routeYaml(i: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: svc-${String(i).padStart(4, '0')}
  namespace: ${NAMESPACE}
spec:
  parentRefs:
    - name: edge
  rules:
    - matches:
        - path: { type: PathPrefix, value: ${routePrefix(i)} }
      backendRefs:
        - { name: upstream, port: 80 }
`;
}

/**
 * Writes a config folder whose routes are the indexes in `routes` (one HTTPRoute each) into
 * `dir`, all to the one upstream Service.
 */
export function writeMeshgateConfig(dir: string, routes: number[], upstreamPort: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml());
  writeFileSync(join(dir, 'services.yaml'), servicesYaml(upstreamPort));
  writeFileSync(join(dir, 'routes.yaml'), routes.map(routeYaml).join('---\n'));
}
