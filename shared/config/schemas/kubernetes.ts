import { z } from 'zod';
import { labels, portNumber } from './common.ts';

// Core Kubernetes kinds meshgate reads. Field names and enums follow k8s.io/api core/v1 and discovery/v1.

export const namespaceSpec = z.strictObject({
  finalizers: z.array(z.string()).optional(),
});

/** Secret has no spec: its body is these top-level fields. */
export const secretBody = z.strictObject({
  type: z.string().default('Opaque'),
  data: z.record(z.string(), z.string().regex(/^[A-Za-z0-9+/=\s]*$/, 'must be base64')).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
  immutable: z.boolean().optional(),
});
export type SecretBody = z.infer<typeof secretBody>;

const protocol = z.enum(['TCP', 'UDP', 'SCTP']);

export const servicePort = z.strictObject({
  name: z.string().optional(),
  protocol: protocol.default('TCP'),
  appProtocol: z.string().optional(),
  port: portNumber,
  targetPort: z.union([portNumber, z.string().min(1)]).optional(),
  nodePort: portNumber.optional(),
});

export const serviceSpec = z.strictObject({
  type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).default('ClusterIP'),
  selector: labels.optional(),
  ports: z.array(servicePort).optional(),
  clusterIP: z.string().optional(),
  clusterIPs: z.array(z.string()).optional(),
  externalName: z.string().optional(),
  externalIPs: z.array(z.string()).optional(),
  externalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
  internalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
  sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
  sessionAffinityConfig: z
    .strictObject({
      clientIP: z.strictObject({ timeoutSeconds: z.number().int().optional() }).optional(),
    })
    .optional(),
  loadBalancerIP: z.string().optional(),
  loadBalancerSourceRanges: z.array(z.string()).optional(),
  loadBalancerClass: z.string().optional(),
  allocateLoadBalancerNodePorts: z.boolean().optional(),
  healthCheckNodePort: portNumber.optional(),
  publishNotReadyAddresses: z.boolean().optional(),
  ipFamilies: z.array(z.enum(['IPv4', 'IPv6'])).optional(),
  ipFamilyPolicy: z.enum(['SingleStack', 'PreferDualStack', 'RequireDualStack']).optional(),
  trafficDistribution: z.string().optional(),
});
export type ServiceSpec = z.infer<typeof serviceSpec>;

const objectReference = z.looseObject({
  kind: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  uid: z.string().optional(),
  apiVersion: z.string().optional(),
});

export const endpoint = z.strictObject({
  addresses: z.array(z.string().min(1)).min(1).max(100),
  conditions: z
    .strictObject({
      ready: z.boolean().optional(),
      serving: z.boolean().optional(),
      terminating: z.boolean().optional(),
    })
    .optional(),
  hostname: z.string().optional(),
  targetRef: objectReference.optional(),
  nodeName: z.string().optional(),
  zone: z.string().optional(),
  hints: z
    .strictObject({
      forZones: z.array(z.strictObject({ name: z.string() })).optional(),
      forNodes: z.array(z.strictObject({ name: z.string() })).optional(),
    })
    .optional(),
  deprecatedTopology: labels.optional(),
});

/** EndpointSlice has no spec: its body is these top-level fields. */
export const endpointSliceBody = z.strictObject({
  addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
  endpoints: z.array(endpoint).max(1000).default([]),
  ports: z
    .array(
      z.strictObject({
        name: z.string().optional(),
        protocol: protocol.default('TCP'),
        port: portNumber.optional(),
        appProtocol: z.string().optional(),
      }),
    )
    .max(100)
    .default([]),
});
export type EndpointSliceBody = z.infer<typeof endpointSliceBody>;
