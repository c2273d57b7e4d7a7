import type { Resource } from '../resource.ts';
import { GATEWAY_GROUP } from '../schemas/gateway-api.ts';
import type { ServiceSpec } from '../schemas/kubernetes.ts';
import type { BackendIR } from '../snapshot.ts';
import { normalizeCoreGroup, type CompileContext } from './context.ts';

export interface BackendRefInput {
  group: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
  port?: number | undefined;
}

/** A reference problem in the Gateway API's ResolvedRefs vocabulary. */
export interface RefProblem {
  reason: 'InvalidKind' | 'BackendNotFound' | 'RefNotPermitted' | 'UnsupportedProtocol';
  message: string;
}

/** Resolves a backendRef of an HTTPRoute to a Service port; an unusable ref stays, marked invalid (its share gets 500). */
export function resolveBackendRef(
  ctx: CompileContext,
  route: Resource,
  ref: BackendRefInput,
  weight: number,
  where: string,
): { backend: BackendIR; problem?: RefProblem } {
  const namespace = ref.namespace ?? route.metadata.namespace;
  const port = ref.port ?? 0;
  const backend: BackendIR = {
    kind: 'Service',
    namespace,
    name: ref.name,
    port,
    weight,
    filters: [],
  };
  const fail = (reason: RefProblem['reason'], message: string) => {
    backend.invalid = { reason, message: `${where}: ${message}` };
    return { backend, problem: { reason, message: `${where}: ${message}` } };
  };
  if (normalizeCoreGroup(ref.group) !== '' || ref.kind !== 'Service')
    return fail(
      'InvalidKind',
      `${ref.group ? `${ref.group}/` : ''}${ref.kind} is not a supported backend kind; use a core Service`,
    );
  const service = ctx.get<ServiceSpec>('Service', namespace, ref.name);
  if (
    !ctx.referenceAllowed(
      { group: GATEWAY_GROUP, kind: 'HTTPRoute', namespace: route.metadata.namespace },
      { group: '', kind: 'Service', namespace, name: ref.name },
    )
  )
    return fail(
      'RefNotPermitted',
      `Service ${namespace}/${ref.name} is in another namespace and no ReferenceGrant in ${namespace} allows HTTPRoutes from ${route.metadata.namespace}`,
    );
  if (!service) return fail('BackendNotFound', `Service ${namespace}/${ref.name} not found`);
  const servicePort = service.spec.ports?.find((p) => p.port === port);
  if (!servicePort)
    return fail('BackendNotFound', `Service ${namespace}/${ref.name} has no port ${port}`);
  if (servicePort.protocol !== 'TCP')
    return fail(
      'UnsupportedProtocol',
      `Service ${namespace}/${ref.name} port ${port} is ${servicePort.protocol}, not TCP`,
    );
  const app = servicePort.appProtocol;
  if (app && !SUPPORTED_APP_PROTOCOLS.has(app.toLowerCase()))
    return fail(
      'UnsupportedProtocol',
      `Service ${namespace}/${ref.name} port ${port} has appProtocol ${app}; meshgate speaks ${[...SUPPORTED_APP_PROTOCOLS].join(', ')}`,
    );
  return { backend };
}

/** KEP-3726 standard application protocols plus plain names, for an HTTP route. */
const SUPPORTED_APP_PROTOCOLS = new Set([
  'http',
  'https',
  'kubernetes.io/h2c',
  'kubernetes.io/ws',
  'kubernetes.io/wss',
  'h2c',
  'http2',
  'grpc',
]);
