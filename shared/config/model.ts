import { registerKind, type KindDefinition } from './kinds.ts';
import { endpointSliceBody, namespaceSpec, secretBody, serviceSpec } from './schemas/kubernetes.ts';
import {
  GATEWAY_GROUP,
  gatewayClassSpec,
  gatewaySpec,
  httpRouteSpec,
  referenceGrantSpec,
} from './schemas/gateway-api.ts';
import { istioSecurityKinds } from './schemas/istio-security.ts';
import { envoyGatewayKinds } from './schemas/envoy-gateway.ts';
import { meshgateKinds } from './schemas/meshgate.ts';

// The config model: every kind meshgate reads, in one list.

const gatewayApiVersions = ['v1', 'v1beta1'] as const;

const kubernetesKinds: KindDefinition[] = [
  {
    group: '',
    kind: 'Namespace',
    versions: ['v1'],
    namespaced: false,
    schema: namespaceSpec,
    specOptional: true,
  },
  {
    group: '',
    kind: 'Secret',
    versions: ['v1'],
    namespaced: true,
    schema: secretBody,
    topLevelBody: true,
  },
  {
    group: '',
    kind: 'Service',
    versions: ['v1'],
    namespaced: true,
    schema: serviceSpec,
    unsupported: [
      {
        path: 'spec.sessionAffinity',
        message:
          'session affinity is not implemented; use a BackendTrafficPolicy loadBalancer with consistentHash',
        effect: 'ignore',
      },
      {
        path: 'spec.externalName',
        message:
          'ExternalName Services are not resolved; use an EndpointSlice with addressType FQDN',
        effect: 'ignore',
      },
    ],
  },
  {
    group: 'discovery.k8s.io',
    kind: 'EndpointSlice',
    versions: ['v1'],
    namespaced: true,
    schema: endpointSliceBody,
    topLevelBody: true,
  },
];

const gatewayApiKinds: KindDefinition[] = [
  {
    group: GATEWAY_GROUP,
    kind: 'GatewayClass',
    versions: gatewayApiVersions,
    namespaced: false,
    schema: gatewayClassSpec,
  },
  {
    group: GATEWAY_GROUP,
    kind: 'Gateway',
    versions: gatewayApiVersions,
    namespaced: true,
    schema: gatewaySpec,
    unsupported: [
      {
        path: 'spec.addresses',
        message:
          'addresses are not requested from config; the gateway serves on --listen-host and reports it in status.addresses',
        effect: 'ignore',
      },
      {
        path: 'spec.infrastructure',
        message: 'infrastructure settings are not used',
        effect: 'ignore',
      },
      {
        path: 'spec.allowedListeners',
        message: 'ListenerSets are not supported',
        effect: 'ignore',
      },
      {
        path: 'spec.backendTLS',
        message:
          'gateway client certificates towards backends are not supported; the gateway uses its mesh identity',
        effect: 'ignore',
      },
      {
        path: 'spec.tls',
        message: 'gateway-level TLS settings are not supported',
        effect: 'ignore',
      },
      {
        path: 'spec.listeners[].tls.frontendValidation',
        message:
          'client certificate validation at the edge is not supported; the listener is not accepted rather than served without it',
        effect: 'reject',
      },
      {
        path: 'spec.listeners[].tls.options',
        message: 'TLS options are not supported',
        effect: 'ignore',
      },
    ],
  },
  {
    group: GATEWAY_GROUP,
    kind: 'HTTPRoute',
    versions: gatewayApiVersions,
    namespaced: true,
    schema: httpRouteSpec,
    unsupported: [
      {
        path: 'spec.rules[].sessionPersistence',
        message: 'session persistence is not supported',
        effect: 'reject',
      },
      {
        path: 'spec.useDefaultGateways',
        message: 'default Gateways are not supported; name the Gateway in parentRefs',
        effect: 'ignore',
      },
    ],
  },
  {
    group: GATEWAY_GROUP,
    kind: 'ReferenceGrant',
    versions: ['v1beta1', 'v1'],
    namespaced: true,
    schema: referenceGrantSpec,
  },
];

for (const def of [
  ...kubernetesKinds,
  ...gatewayApiKinds,
  ...istioSecurityKinds,
  ...envoyGatewayKinds,
  ...meshgateKinds,
])
  registerKind(def);
