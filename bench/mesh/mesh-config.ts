// The control plane's config folder for rows 4 and 5, generated at bench time:
//   - bench-app and bench-app-rbac: the upstream nginx as the app behind sidecar B (row 4, row 5),
//     and bench-client, the workload of sidecar A;
//   - mesh-wide STRICT PeerAuthentication: sidecar B accepts mTLS only;
//   - an ALLOW AuthorizationPolicy of 50 rules selecting bench-app-rbac, the one that matches the
//     bench's request last;
//   - 100 more Services with static EndpointSlices in 10 namespaces, never called: every sidecar's
//     view holds every Service (mesh/control-plane/views.ts), so each sidecar carries 103.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const MESH_NAMESPACE = 'bench';
export const ROOT_NAMESPACE = 'meshgate-system';
export const SERVICE_PORT = 9080;
export const CLIENT = 'bench-client';
export const APP = 'bench-app';
export const APP_RBAC = 'bench-app-rbac';
export const FILLER_SERVICES = 100;
export const POLICY_RULES = 50;

/** The principal sidecar A proves (its service account is the workload's name). */
export const CLIENT_PRINCIPAL = `cluster.local/ns/${MESH_NAMESPACE}/sa/${CLIENT}`;

function serviceYaml(name: string, namespace: string, targetPort: number): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: ${SERVICE_PORT}, targetPort: ${targetPort} }]
`;
}

/** A Service without selector and its EndpointSlice of two endpoints (addresses never dialled). */
function fillerYaml(i: number): string {
  const namespace = `team-${String(i % 10).padStart(2, '0')}`;
  const name = `svc-${String(i).padStart(3, '0')}`;
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  ports: [{ name: http, port: 8080, targetPort: 8080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-static
  namespace: ${namespace}
  labels: { kubernetes.io/service-name: ${name} }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: ["10.1.${i}.1"] }, { addresses: ["10.1.${i}.2"] }]
`;
}

/**
 * Rule i of the 50: the first 49 are what a shared service accumulates (other callers, other
 * paths, writes allowed to some), each failing on a different field for the bench's request
 * (`GET prefix/…` from bench-client); the last one allows it.
 */
function policyRule(i: number, pathPrefix: string): string {
  const other = `cluster.local/ns/team-${String(i % 10).padStart(2, '0')}/sa/svc-${String(i).padStart(3, '0')}`;
  if (i === POLICY_RULES - 1)
    return `    - from: [{ source: { principals: ["${CLIENT_PRINCIPAL}"] } }]
      to: [{ operation: { methods: ["GET", "HEAD"], paths: ["${pathPrefix}/*"] } }]`;
  switch (i % 4) {
    case 0: // the bench's caller, another API
      return `    - from: [{ source: { principals: ["${CLIENT_PRINCIPAL}"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/api/v${i}/reports", "/api/v${i}/reports/*"] } }]`;
    case 1: // another caller, the bench's path
      return `    - from: [{ source: { principals: ["${other}", "${other}-canary"] } }]
      to: [{ operation: { paths: ["${pathPrefix}/*"] } }]`;
    case 2: // the bench's caller and path, writes only
      return `    - from: [{ source: { principals: ["${CLIENT_PRINCIPAL}"] } }]
      to: [{ operation: { methods: ["POST", "PUT", "DELETE"], paths: ["${pathPrefix}/*"] } }]`;
    default: // a whole namespace, admin paths
      return `    - from: [{ source: { namespaces: ["team-${String(i % 10).padStart(2, '0')}"] } }]
      to: [{ operation: { methods: ["GET", "POST"], paths: ["/admin/${i}/*", "*/debug"] } }]`;
  }
}

/** Writes the config folder into `dir`; the two apps are the upstream nginx on `upstreamPort`. */
export function writeMeshConfig(dir: string, upstreamPort: number, pathPrefix: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'bench.yaml'),
    [
      serviceYaml(CLIENT, MESH_NAMESPACE, upstreamPort),
      serviceYaml(APP, MESH_NAMESPACE, upstreamPort),
      serviceYaml(APP_RBAC, MESH_NAMESPACE, upstreamPort),
      `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${ROOT_NAMESPACE} }
spec:
  mtls: { mode: STRICT }
`,
    ].join('---\n'),
  );
  writeFileSync(
    join(dir, 'authorization.yaml'),
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${APP_RBAC}-callers, namespace: ${MESH_NAMESPACE} }
spec:
  selector: { matchLabels: { app: ${APP_RBAC} } }
  action: ALLOW
  rules:
${Array.from({ length: POLICY_RULES }, (_, i) => policyRule(i, pathPrefix)).join('\n')}
`,
  );
  writeFileSync(
    join(dir, 'services.yaml'),
    Array.from({ length: FILLER_SERVICES }, (_, i) => fillerYaml(i + 1)).join('---\n'),
  );
}
