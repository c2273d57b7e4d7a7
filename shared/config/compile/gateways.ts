import type { Resource } from '../resource.ts';
import type { GatewayClassSpec, GatewaySpec, Listener } from '../schemas/gateway-api.ts';
import { GATEWAY_GROUP } from '../schemas/gateway-api.ts';
import type { SecretBody } from '../schemas/kubernetes.ts';
import type { GatewayIR, ListenerIR, TLSCertificateIR } from '../snapshot.ts';
import type { Condition } from './conditions.ts';
import { normalizeCoreGroup, type CompileContext } from './context.ts';
import { loadTLSSecret } from './tls-secrets.ts';

/** Route kinds a listener of each protocol can take. */
const ROUTE_KINDS_BY_PROTOCOL: Record<string, { group: string; kind: string }[]> = {
  HTTP: [{ group: GATEWAY_GROUP, kind: 'HTTPRoute' }],
  HTTPS: [{ group: GATEWAY_GROUP, kind: 'HTTPRoute' }],
};

export interface CompiledListener {
  spec: Listener;
  index: number;
  ir: ListenerIR;
  /** Accepted, refs resolved and no conflict: traffic can be served. */
  ready: boolean;
  supportedKinds: { group: string; kind: string }[];
  attachedRoutes: number;
  problems: {
    accepted?: [string, string];
    resolvedRefs?: [string, string];
    conflicted?: [string, string];
  };
}

export interface CompiledGateway {
  resource: Resource<GatewaySpec>;
  ir: GatewayIR;
  listeners: CompiledListener[];
}

/** GatewayClasses naming our controller get Accepted; others are not ours and get no status. */
export function compileGatewayClasses(ctx: CompileContext): string[] {
  const ours: string[] = [];
  for (const gc of ctx.list<GatewayClassSpec>('GatewayClass')) {
    if (gc.spec.controllerName !== ctx.controllerName) continue;
    const c = ctx.conditions(gc);
    const conditions: Condition[] = [];
    if (gc.spec.parametersRef) {
      const p = gc.spec.parametersRef;
      conditions.push(
        c.make(
          'Accepted',
          false,
          'InvalidParameters',
          `parametersRef ${p.kind} ${p.name}: meshgate takes no GatewayClass parameters`,
        ),
      );
    } else {
      conditions.push(c.make('Accepted', true, 'Accepted', 'GatewayClass is accepted by meshgate'));
      ours.push(gc.metadata.name);
    }
    conditions.push(
      c.make('SupportedVersion', true, 'SupportedVersion', 'Gateway API v1 is supported'),
    );
    ctx.setStatus(gc, { conditions });
  }
  return ours;
}

export function compileGateways(
  ctx: CompileContext,
  classes: readonly string[],
  certificates: Map<string, TLSCertificateIR>,
): CompiledGateway[] {
  const out: CompiledGateway[] = [];
  for (const gw of ctx.list<GatewaySpec>('Gateway')) {
    if (!classes.includes(gw.spec.gatewayClassName)) continue;
    const listeners = gw.spec.listeners.map((l, i) => compileListener(ctx, gw, l, i, certificates));
    markConflicts(listeners);
    out.push({
      resource: gw,
      listeners,
      ir: {
        namespace: gw.metadata.namespace,
        name: gw.metadata.name,
        className: gw.spec.gatewayClassName,
        listeners: [],
      },
    });
  }
  return out;
}

function compileListener(
  ctx: CompileContext,
  gw: Resource<GatewaySpec>,
  l: Listener,
  index: number,
  certificates: Map<string, TLSCertificateIR>,
): CompiledListener {
  const problems: CompiledListener['problems'] = {};
  const protocolKinds = ROUTE_KINDS_BY_PROTOCOL[l.protocol];
  let supportedKinds = protocolKinds ?? [];
  if (!protocolKinds)
    problems.accepted = [
      'UnsupportedProtocol',
      `protocol ${l.protocol} is not supported; meshgate serves HTTP and HTTPS`,
    ];

  const rejected = gw.unsupported.filter(
    (u) => u.effect === 'reject' && u.path.startsWith(`spec.listeners[${index}]`),
  );
  if (rejected.length > 0 && !problems.accepted)
    problems.accepted = [
      'UnsupportedValue',
      rejected.map((u) => `${u.path}: ${u.message}`).join('; '),
    ];

  if (protocolKinds && l.allowedRoutes.kinds) {
    const wanted = l.allowedRoutes.kinds.map((k) => ({ group: k.group, kind: k.kind }));
    supportedKinds = wanted.filter((w) =>
      protocolKinds.some((p) => p.group === w.group && p.kind === w.kind),
    );
    const invalid = wanted.filter((w) => !supportedKinds.includes(w));
    if (invalid.length > 0)
      problems.resolvedRefs = [
        'InvalidRouteKinds',
        `route kinds not supported on ${l.protocol}: ${invalid.map((k) => `${k.group}/${k.kind}`).join(', ')}`,
      ];
  }

  const ir: ListenerIR = {
    name: l.name,
    port: l.port,
    protocol: l.protocol === 'HTTPS' ? 'HTTPS' : 'HTTP',
    ...(l.hostname ? { hostname: l.hostname } : {}),
    routes: [],
  };

  if (l.protocol === 'HTTPS' && l.tls) {
    if (l.tls.mode !== 'Terminate' && !problems.accepted)
      problems.accepted = [
        'UnsupportedValue',
        `tls.mode ${l.tls.mode} is not valid on an HTTPS listener; use Terminate`,
      ];
    const secrets: string[] = [];
    const errors: string[] = [];
    let refNotPermitted = false;
    for (const ref of l.tls.certificateRefs ?? []) {
      const ns = ref.namespace ?? gw.metadata.namespace;
      const label = `${ns}/${ref.name}`;
      if (normalizeCoreGroup(ref.group) !== '' || ref.kind !== 'Secret') {
        errors.push(`certificateRef ${ref.kind} ${label}: only core Secrets are supported`);
        continue;
      }
      if (
        !ctx.referenceAllowed(
          { group: GATEWAY_GROUP, kind: 'Gateway', namespace: gw.metadata.namespace },
          { group: '', kind: 'Secret', namespace: ns, name: ref.name },
        )
      ) {
        errors.push(
          `certificateRef Secret ${label} is in another namespace and no ReferenceGrant allows it`,
        );
        refNotPermitted = true;
        continue;
      }
      const secret = ctx.get<SecretBody>('Secret', ns, ref.name);
      if (!secret) {
        errors.push(`certificateRef Secret ${label} not found`);
        continue;
      }
      const loaded = certificates.get(label) ?? loadTLSSecret(secret);
      if ('error' in loaded) {
        errors.push(loaded.error);
        continue;
      }
      certificates.set(label, loaded);
      secrets.push(label);
    }
    if ((l.tls.certificateRefs ?? []).length === 0)
      errors.push('an HTTPS listener needs at least one certificateRef');
    if (errors.length > 0 && !problems.resolvedRefs)
      problems.resolvedRefs = [
        refNotPermitted && secrets.length === 0 ? 'RefNotPermitted' : 'InvalidCertificateRef',
        errors.join('; '),
      ];
    if (secrets.length > 0) ir.tls = { certificates: secrets };
  }

  const ready = !problems.accepted && !(l.protocol === 'HTTPS' && !ir.tls);
  return { spec: l, index, ir, ready, supportedKinds, attachedRoutes: 0, problems };
}

/** Listeners sharing a port must agree on protocol and differ in hostname. */
function markConflicts(listeners: CompiledListener[]): void {
  const byPort = new Map<number, CompiledListener[]>();
  for (const l of listeners) {
    if (l.problems.accepted) continue;
    const list = byPort.get(l.spec.port) ?? [];
    list.push(l);
    byPort.set(l.spec.port, list);
  }
  for (const [port, group] of byPort) {
    const protocols = new Set(group.map((l) => l.spec.protocol));
    if (protocols.size > 1) {
      for (const l of group) {
        l.problems.conflicted = [
          'ProtocolConflict',
          `port ${port} is used with protocols ${[...protocols].join(' and ')}`,
        ];
        l.ready = false;
      }
      continue;
    }
    const byHost = new Map<string, CompiledListener[]>();
    for (const l of group) {
      const h = l.spec.hostname ?? '';
      byHost.set(h, [...(byHost.get(h) ?? []), l]);
    }
    for (const [host, same] of byHost) {
      if (same.length < 2) continue;
      for (const l of same) {
        l.problems.conflicted = [
          'HostnameConflict',
          `listeners ${same.map((x) => x.spec.name).join(', ')} share port ${port} and ${host ? `hostname ${host}` : 'no hostname'}`,
        ];
        l.ready = false;
      }
    }
  }
}

/** Writes Gateway status once routes have attached, and fills the IR with ready listeners. */
export function finishGateway(ctx: CompileContext, g: CompiledGateway): void {
  const c = ctx.conditions(g.resource);
  const listenerStatuses = g.listeners.map((l) => {
    const p = l.problems;
    return {
      name: l.spec.name,
      supportedKinds: l.supportedKinds,
      attachedRoutes: l.attachedRoutes,
      conditions: [
        p.accepted
          ? c.make('Accepted', false, p.accepted[0], p.accepted[1])
          : c.make('Accepted', true, 'Accepted', 'listener is accepted'),
        p.resolvedRefs
          ? c.make('ResolvedRefs', false, p.resolvedRefs[0], p.resolvedRefs[1])
          : c.make('ResolvedRefs', true, 'ResolvedRefs', 'all references are resolved'),
        l.ready
          ? c.make('Programmed', true, 'Programmed', 'listener is programmed')
          : c.make(
              'Programmed',
              false,
              'Invalid',
              'listener is not served; see the other conditions',
            ),
        p.conflicted
          ? c.make('Conflicted', true, p.conflicted[0], p.conflicted[1])
          : c.make('Conflicted', false, 'NoConflicts', 'no conflicts'),
      ],
    };
  });
  const ready = g.listeners.filter((l) => l.ready);
  g.ir.listeners = ready.map((l) => l.ir);
  const ignored = g.resource.unsupported.filter((u) => u.effect === 'ignore');
  const note =
    ignored.length > 0
      ? `; ignored: ${ignored.map((u) => `${u.path} (${u.message})`).join('; ')}`
      : '';
  const conditions: Condition[] = [];
  if (ready.length === g.listeners.length)
    conditions.push(c.make('Accepted', true, 'Accepted', `Gateway is accepted${note}`));
  else if (ready.length > 0)
    conditions.push(
      c.make(
        'Accepted',
        true,
        'ListenersNotValid',
        `${g.listeners.length - ready.length} of ${g.listeners.length} listeners are not valid${note}`,
      ),
    );
  else
    conditions.push(c.make('Accepted', false, 'ListenersNotValid', `no listener is valid${note}`));
  conditions.push(
    ready.length > 0
      ? c.make('Programmed', true, 'Programmed', 'Gateway is compiled into the snapshot')
      : c.make('Programmed', false, 'Invalid', 'no listener can be served'),
  );
  ctx.setStatus(g.resource, { addresses: [], conditions, listeners: listenerStatuses });
}
